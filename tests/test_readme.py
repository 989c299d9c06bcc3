"""The README's Python blocks run as written, in order, on real PneumoniaMNIST (a tiny zoo)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.slow


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_has_python_blocks():
    blocks = _blocks()
    assert len(blocks) >= 2
    assert any("from ensemble import" in b for b in blocks)


def test_readme_python_runs(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAN_ENSEMBLE_DATA", str(data_root))
    namespace: dict = {"__name__": "__readme__"}
    for i, code in enumerate(_blocks()):
        exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "my-synthetic" / "meta.json").is_file()
    assert len(namespace["g_star"].members) >= 2
    assert set(namespace["tables"].names) == set(namespace["catalog"].names())
