# Two entry points: `make quickstart` (the whole pipeline on real data) and `make test`.
# Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= $(if $(GAN_ENSEMBLE_DATA),$(GAN_ENSEMBLE_DATA),../shared/data)
OUT ?= runs/quick

.PHONY: venv quickstart test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

quickstart: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(VENV)/bin/gan-ensemble quickstart --dataset pneumoniamnist --data-root $(DATA) --out $(OUT)

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 GAN_ENSEMBLE_DATA=$(abspath $(DATA)) $(PY) -m pytest -q --durations=15

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check ensemble zoo tests benchmarks studies

clean:
	rm -rf $(VENV) build *.egg-info
