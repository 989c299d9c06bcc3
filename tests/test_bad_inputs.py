"""The bad-input suite (issue 11): wrong data, zoos, tables, searches, exports and reruns.

Every case drives the real command line (``ensemble.cli.main``) or a public function of data/zoo
with one bad value, and asserts that it is refused cleanly: exit status 2 (or a ValueError,
FileNotFoundError, FileExistsError, PermissionError) with exactly one error line that names the
bad value and the fix, and never a traceback.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ensemble.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices

TOYS = Path(__file__).resolve().parent / "ensemble"  # _synth_toys.py: a real callable generator


# --------------------------------------------------------------------------- helpers


def run_cli(capsys, argv) -> tuple[int, str, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refusals
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def cli_ok(argv) -> bool:
    """Run a command that must succeed (a fixture step)."""
    return main([str(a) for a in argv]) == 0


def refused(capsys, argv, *needles: str, absent: tuple[str, ...] = ()) -> str:
    """Run ``argv``; assert exit 2, one error line containing every needle, no traceback."""
    rc, out, err = run_cli(capsys, argv)
    assert "Traceback" not in err + out, err
    assert rc == 2, f"exit {rc}; stdout {out!r}; stderr {err!r}"
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    # nothing else but argparse's usage lines and log records: the message is one line
    other = [line for line in err.splitlines() if line.strip() and line != lines[0]
             and not line.startswith(("usage:", " ", "WARNING ", "INFO ", "DEBUG "))]
    assert not other, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    for word in absent:
        assert word not in lines[0], f"{word!r} in {lines[0]!r}"
    return lines[0]


def raises(exc_type, fn, *needles: str) -> str:
    with pytest.raises(exc_type) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg.strip(), msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def _mini_arrays(n_train=60, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("val", 20), ("test", 20)):
        labels = np.arange(n) % 2
        images = (rng.integers(0, 60, size=(n, 28, 28)) + 150 * labels[:, None, None]).astype(np.uint8)
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels.reshape(-1, 1)
    return out


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


class TinyG(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 28 * 28)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z) + labels[:, None].float()).view(-1, 1, 28, 28)


class OnlyZ(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z)


class NaNG(nn.Module):
    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.full((z.shape[0], 1, 28, 28), float("nan"))


def _script(module: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small real setting: an npz dataset, a zoo of three callable toys, their score tables
    (``gan-ensemble score``), a search (``gan-ensemble search``) and bad files of every kind."""
    root = tmp_path_factory.mktemp("bad-inputs")
    sys.path.insert(0, str(TOYS))
    w = {"root": root}
    w["data"] = _npz(root / "mini.npz", **_mini_arrays())
    zoo = root / "zoo"
    for s in range(3):
        assert cli_ok(["zoo", "register-callable", zoo, "_synth_toys:make_toy", "--name", f"toy{s}@0",
                     "--num-classes", "2", "--image-shape", "28,28", "--dataset", "mini",
                     "--kwargs", json.dumps({"style": s})])
    w["zoo"] = zoo
    w["cache"] = root / "cache"
    w["score_args"] = ["--zoo", zoo, "--dataset", w["data"], "--n-samples", "24", "--image-size", "32",
                       "--batch-size", "32", "--device", "cpu", "--cache-dir", w["cache"], "--top", "0"]
    w["tables"] = root / "tables.npz"
    assert cli_ok(["score", *w["score_args"], "--out", w["tables"]])
    w["search"] = root / "search"
    assert cli_ok(["search", "--tables", w["tables"], "--out", w["search"], "--pop-size", "8",
                 "--n-gen", "3"])
    w["selected"] = w["search"] / "selected.json"
    # bad data files
    w["text_npz"] = root / "text.npz"
    w["text_npz"].write_text("train_images,train_labels\n")
    w["pickle_npz"] = root / "pickled.npz"
    w["pickle_npz"].write_bytes(pickle.dumps({"train_images": np.zeros(3)}))
    objects = _mini_arrays()
    objects["train_labels"] = objects["train_labels"].astype(object)
    w["object_npz"] = _npz(root / "objects.npz", **objects)
    gaps = _mini_arrays()
    gaps["train_labels"] = gaps["train_labels"] * 2  # labels 0 and 2: class 1 missing
    w["gaps_npz"] = _npz(root / "gaps.npz", **gaps)
    neg = _mini_arrays()
    neg["train_labels"] = neg["train_labels"] - 1
    w["negative_npz"] = _npz(root / "negative.npz", **neg)
    single = _mini_arrays()
    single["train_labels"][:] = 1
    w["single_npz"] = _npz(root / "single.npz", **single)
    empty = _mini_arrays()
    empty["train_images"], empty["train_labels"] = empty["train_images"][:0], empty["train_labels"][:0]
    w["empty_npz"] = _npz(root / "empty.npz", **empty)
    w["nosplit_npz"] = _npz(root / "nosplit.npz", images=np.zeros((4, 28, 28), np.uint8),
                            labels=np.array([0, 1, 0, 1]))
    w["broken_folder"] = root / "broken"
    w["mixed_folder"] = root / "mixed"
    for folder in (w["broken_folder"], w["mixed_folder"]):
        for c in ("a", "b"):
            (folder / c).mkdir(parents=True)
            for i in range(12):
                Image.fromarray(np.full((28, 28), 20 * i, np.uint8)).save(folder / c / f"{i}.png")
    (w["broken_folder"] / "b" / "5.png").write_bytes(b"\x89PNG\r\n not really")
    Image.fromarray(np.full((28, 28, 3), 99, np.uint8)).save(w["mixed_folder"] / "b" / "7.png")
    w["corrupt_zoo"] = root / "corrupt"
    w["corrupt_zoo"].mkdir()
    (w["corrupt_zoo"] / "catalog.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    w["afile"] = root / "a-file"
    w["afile"].write_text("x")
    w["good_ts"] = _script(TinyG(), root / "good.pt")
    w["onlyz_ts"] = _script(OnlyZ(), root / "onlyz.pt")
    w["nan_ts"] = _script(NaNG(), root / "nan.pt")
    w["not_ts"] = root / "not-a-module.pt"
    w["not_ts"].write_bytes(b"PK\x03\x04 not torchscript")
    yield w
    sys.path.remove(str(TOYS))


def _tables_without(w, key: str, *, shrink: bool = False) -> Path:
    with np.load(w["tables"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if shrink:
        arrays[key] = arrays[key][:-1]
    else:
        del arrays[key]
    return _npz(w["root"] / f"tables-{key}-{'short' if shrink else 'missing'}.npz", **arrays)


# --------------------------------------------------------------------------- data


DATA_CASES = {
    # id: (dataset from world or literal, needles, absent)
    "missing-npz": (lambda w: w["root"] / "nope.npz", ["nope.npz' not found"], ["unknown"]),
    "missing-folder": (lambda w: w["root"] / "no-such-folder", ["not found: no such file or folder"], ["unknown"]),
    "unknown-name": (lambda w: "pneumonia", ["'pneumonia' is neither a file or folder nor a known MedMNIST flag",
                                            "pneumoniamnist"], []),
    "multi-label-flag": (lambda w: "chestmnist", ["'chestmnist' is not supported", "multi-label"], ["unknown"]),
    "3d-flag": (lambda w: "organmnist3d", ["'organmnist3d' is not supported", "3-D"], ["unknown"]),
    "ordinal-flag": (lambda w: "retinamnist", ["'retinamnist' is not supported", "ordinal"], ["unknown"]),
    "npz-not-zip": (lambda w: w["text_npz"], ["text.npz' is not an .npz archive (not a zip file"], ["allow_pickle"]),
    "npz-is-pickle": (lambda w: w["pickle_npz"], ["pickled.npz' is not an .npz archive"], ["allow_pickle"]),
    "npz-object-array": (lambda w: w["object_npz"], ["holds an array of Python objects, which is never loaded"],
                         ["allow_pickle"]),
    "npz-no-split-arrays": (lambda w: w["nosplit_npz"], ["has no array(s) 'train_images', 'train_labels'",
                                                         "it holds: images, labels", "np.savez"], []),
    "labels-with-gaps": (lambda w: w["gaps_npz"], ["no images of class '1' (label 1)", "gaps", "relabel"], []),
    "negative-labels": (lambda w: w["negative_npz"], ["found -1", "cannot be negative"], []),
    "single-class": (lambda w: w["single_npz"], ["single class", "at least two classes"], []),
    "empty-split": (lambda w: w["empty_npz"], ["the train split of empty", "is empty"], []),
    "unreadable-image": (lambda w: w["broken_folder"], ["cannot read image", "b/5.png", "replace or delete"], []),
    "grayscale-and-colour": (lambda w: w["mixed_folder"], ["mix grayscale", "and colour", "b/7.png"], ["resize"]),
}


@pytest.mark.parametrize("case", DATA_CASES, ids=list(DATA_CASES))
def test_score_refuses_bad_data(case, world, capsys, tmp_path):
    dataset, needles, absent = DATA_CASES[case]
    out = tmp_path / "t.npz"
    refused(capsys, ["score", "--zoo", world["zoo"], "--dataset", dataset(world), "--out", out,
                     "--device", "cpu"], *needles, absent=tuple(absent))
    assert not out.exists()


def test_zoo_train_refuses_a_missing_dataset_file(world, capsys, tmp_path):
    refused(capsys, ["zoo", "train", "--dataset", tmp_path / "missing.npz", "--families", "dcgan",
                     "--iterations", "2", "--out", tmp_path / "zoo"], "missing.npz' not found", absent=("unknown",))
    assert not (tmp_path / "zoo").exists()


def test_a_flag_whose_file_is_missing_says_where_to_put_it(tmp_path):
    from ensemble.data import load_medmnist

    raises(FileNotFoundError, lambda: load_medmnist("pneumoniamnist", root=tmp_path, download=False),
           "'pneumoniamnist.npz' not found in", "GAN_ENSEMBLE_DATA")


def test_held_out_splits_of_an_unsplit_folder_are_refused_when_no_split_may_be_made(world):
    from ensemble.data import load_dataset

    raises(ValueError, lambda: load_dataset(world["mixed_folder"], split="test", make_split=False),
           "no train/, val/ and test/ folders", "held-out test split is required", "make_split=True")


def test_a_missing_split_folder_is_named(tmp_path, world):
    from ensemble.data import load_dataset

    (tmp_path / "train").symlink_to(world["broken_folder"])
    raises(FileNotFoundError, lambda: load_dataset(tmp_path, split="val"), "has train/ but no val/ folder")


def test_unknown_sizes_and_splits(world):
    from ensemble.data import load_dataset, load_medmnist

    raises(ValueError, lambda: load_medmnist("pneumoniamnist", size=50, download=False),
           "size must be one of 28, 64, 128, 224")
    raises(ValueError, lambda: load_dataset(world["data"], size=64), "holds 28x28 images, not 64x64")
    raises(ValueError, lambda: load_dataset(world["data"], split="training"), "unknown split 'training'")


# --------------------------------------------------------------------------- zoo


def test_zoo_list_refuses_folders_without_a_catalog(world, capsys, tmp_path):
    refused(capsys, ["zoo", "list", tmp_path / "nothing"], "no zoo catalog at", "zoo train --out")
    assert not (tmp_path / "nothing").exists()


def test_zoo_list_names_a_corrupted_catalog(world, capsys):
    refused(capsys, ["zoo", "list", world["corrupt_zoo"]], "corrupt/catalog.sqlite' is not a SQLite catalog",
            "restore it from a backup")


def test_zoo_list_refuses_a_file(world, capsys):
    refused(capsys, ["zoo", "list", world["afile"]], "is a file; pass a folder")


@pytest.mark.parametrize("argv, needles", [
    (["nosuch", "-n", "4", "--out", "{tmp}/g.png"], ["no generator with name or id 'nosuch'", "known: toy0@0"]),
    (["toy0@0", "-n", "4", "--out", "{tmp}/g.jpg"], ["--out must end in .png", "g.jpg"]),
    (["toy0@0", "-n", "0", "--out", "{tmp}/g.png"], ["n (number of images) must be at least 1, got 0"]),
    (["toy0@0", "-n", "4", "--labels", "7", "--out", "{tmp}/g.png"], ["label 7 out of range", "2 classes"]),
    (["toy0@0", "-n", "4", "--labels", "1,x", "--out", "{tmp}/g.png"], ["--labels must be comma-separated integers"]),
], ids=["unknown-generator", "bad-out-suffix", "zero-images", "label-out-of-range", "labels-not-ints"])
def test_zoo_sample_refuses(argv, needles, world, capsys, tmp_path):
    refused(capsys, ["zoo", "sample", world["zoo"], *[a.format(tmp=tmp_path) for a in argv]], *needles)
    assert not list(tmp_path.iterdir())


TS = ["--latent-dim", "8", "--num-classes", "2", "--image-shape", "28,28"]


def test_torchscript_with_the_wrong_forward_is_refused_and_leaves_nothing(world, capsys, tmp_path):
    zoo = tmp_path / "new-zoo"
    refused(capsys, ["zoo", "register-torchscript", zoo, world["onlyz_ts"], "--name", "g", *TS],
            "forward takes (z)", "must take (z, labels)")
    assert not zoo.exists()


def test_torchscript_that_is_not_one_is_refused(world, capsys, tmp_path):
    refused(capsys, ["zoo", "register-torchscript", tmp_path / "z", world["not_ts"], "--name", "g", *TS],
            "not-a-module.pt' is not a readable TorchScript file", "torch.jit.save")
    assert not (tmp_path / "z").exists()


def test_missing_torchscript_file(world, capsys, tmp_path):
    refused(capsys, ["zoo", "register-torchscript", tmp_path / "z", tmp_path / "gone.pt", "--name", "g", *TS],
            "gone.pt' not found")


def test_a_generator_that_outputs_nan_is_named(world, capsys, tmp_path):
    refused(capsys, ["zoo", "register-torchscript", tmp_path / "z", world["nan_ts"], "--name", "nanny", *TS],
            "generator 'nanny' produced NaN", "pick another snapshot")
    assert not (tmp_path / "z").exists()


@pytest.mark.parametrize("extra, needles", [
    (["nomodule", "--name", "c"], ["must look like 'package.module:function'", "'nomodule'"]),
    (["no_such_module_xyz:f", "--name", "c"], ["cannot import module 'no_such_module_xyz'", "PYTHONPATH"]),
    (["_synth_toys:make_toy", "--name", "c", "--kwargs", "[1"], ["--kwargs must be a JSON object", "'[1'"]),
    (["_synth_toys:make_toy", "--name", "c", "--kwargs", '{"colour": 1}'], ["unexpected keyword argument 'colour'",
                                                                           "check the keyword arguments"]),
    (["_synth_toys:make_toy", "--name", "toy1@0"], ["'toy1@0' is already in the catalog", "choose another name"]),
], ids=["ref-without-colon", "unknown-module", "kwargs-not-json", "kwargs-unknown", "duplicate-name"])
def test_register_callable_refuses(extra, needles, world, capsys):
    before = (world["zoo"] / "catalog.sqlite").read_bytes()
    refused(capsys, ["zoo", "register-callable", world["zoo"], *extra, "--num-classes", "2",
                     "--image-shape", "28,28"], *needles)
    assert (world["zoo"] / "catalog.sqlite").read_bytes() == before


def test_registering_into_a_read_only_zoo_says_so(world, capsys, monkeypatch, tmp_path):
    import zoo.catalog as catalog_mod

    monkeypatch.setattr(catalog_mod, "catalog_writable", lambda zoo_dir: False)
    refused(capsys, ["zoo", "register-torchscript", world["zoo"], world["good_ts"], "--name", "ro", *TS],
            "is read-only; copy it to a writable folder")
    rc, out, err = run_cli(capsys, ["zoo", "list", world["zoo"]])
    assert rc == 0 and "toy2@0" in out and "ro" not in out.split()


def test_zoo_remove_unknown(world, capsys):
    refused(capsys, ["zoo", "remove", world["zoo"], "toy9@0"], "no generator with name or id 'toy9@0'", "known:")


def test_zoo_train_unknown_family_and_bad_snapshots(world, capsys, tmp_path):
    refused(capsys, ["zoo", "train", "--dataset", world["data"], "--families", "dcgan,nosuchgan",
                     "--out", tmp_path / "z"], "nosuchgan", "dcgan")
    refused(capsys, ["zoo", "train", "--dataset", world["data"], "--families", "dcgan", "--iterations", "10",
                     "--snapshots", "5,99", "--out", tmp_path / "z"], "--snapshots [99] outside 1..10")
    assert not (tmp_path / "z").exists()


def test_a_changed_generator_file_is_refused(world, capsys, tmp_path):
    zoo = tmp_path / "ts-zoo"
    assert cli_ok(["zoo", "register-torchscript", zoo, world["good_ts"], "--name", "g", *TS])
    capsys.readouterr()
    copy = next((zoo / "foreign").iterdir())
    copy.write_bytes(copy.read_bytes() + b"\x00")
    refused(capsys, ["zoo", "sample", zoo, "g", "-n", "2", "--out", tmp_path / "g.png"],
            "generator 'g' (id 1)", "the file was changed since it was registered", "register the file again")


# --------------------------------------------------------------------------- scores


def test_score_refuses_bad_settings(world, capsys, tmp_path):
    refused(capsys, ["score", "--zoo", world["zoo"], "--dataset", world["data"], "--out", tmp_path / "t.txt"],
            "t.txt' must end in .npz")
    refused(capsys, ["score", "--zoo", tmp_path / "nozoo", "--dataset", world["data"], "--out", tmp_path / "t.npz"],
            "no zoo catalog at")
    refused(capsys, ["score", "--zoo", world["zoo"], "--dataset", world["data"], "--k", "0",
                     "--out", tmp_path / "t.npz"], "--k must be a positive integer, got 0")
    assert not list(tmp_path.iterdir())


def test_score_without_a_validation_split_says_there_is_no_label_agreement(world, capsys, tmp_path):
    """Issue 17: no validation split to early-stop the label classifier on: the score command
    says so and writes tables without label agreement (never a judge early-stopped on train)."""
    arrays = {k: v for k, v in _mini_arrays().items() if not k.startswith("val_")}
    data = _npz(tmp_path / "noval.npz", **arrays)
    args = [a if a != world["data"] else data for a in world["score_args"]]
    rc, out, err = run_cli(capsys, ["score", *args, "--out", tmp_path / "t.npz"])
    assert rc == 0, err
    assert "no label agreement: no validation split of" in out
    from ensemble.scoring.tables import ScoreTables

    assert ScoreTables.load(tmp_path / "t.npz").label_agreement is None
    refused(capsys, ["score", *args, "--label-epochs", "-1", "--out", tmp_path / "u.npz"],
            "--label-epochs must be 0")


def test_score_refuses_unknown_generator_names(world, capsys, tmp_path):
    refused(capsys, ["score", *world["score_args"], "--names", "toy0@0,nosuch", "--out", tmp_path / "t.npz"],
            "nosuch")


def test_search_refuses_missing_tables(world, capsys, tmp_path):
    refused(capsys, ["search", "--tables", tmp_path / "none.npz", "--out", tmp_path / "s"],
            "none.npz' not found", "gan-ensemble score")


def test_search_refuses_tables_that_are_not_an_npz(world, capsys, tmp_path):
    refused(capsys, ["search", "--tables", world["text_npz"], "--out", tmp_path / "s"],
            "text.npz", "not an .npz", absent=("allow_pickle",))


def test_search_names_the_array_a_tables_file_lacks(world, capsys, tmp_path):
    refused(capsys, ["search", "--tables", _tables_without(world, "density"), "--out", tmp_path / "s"],
            "tables-density-missing.npz", "'density'")


def test_search_refuses_tables_with_a_short_array(world, capsys, tmp_path):
    refused(capsys, ["search", "--tables", _tables_without(world, "d", shrink=True), "--out", tmp_path / "s"],
            "tables-d-short.npz", "'d'", "3 generators")


def test_a_corrupted_feature_cache_entry_is_recomputed(world, capsys, tmp_path):
    """Issue 11 item 2: same-size garbage in cached feature files is noticed and recomputed."""
    cache = tmp_path / "cache"
    args = [a if a != world["cache"] else cache for a in world["score_args"]]
    assert cli_ok(["score", *args, "--out", tmp_path / "a.npz"])
    entries = sorted((p for p in cache.rglob("*") if p.is_file() and p.stat().st_size > 1000),
                     key=lambda p: p.stat().st_size)
    assert entries
    for p in entries:  # same-size garbage in every cached feature file
        p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size))
    rc, out, err = run_cli(capsys, ["score", *args, "--out", tmp_path / "b.npz"])
    assert rc == 0 and "Traceback" not in err
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert np.array_equal(a["d"], b["d"]) and np.array_equal(a["counts"], b["counts"])


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("extra, needles", [
    (["--rule", "nosuch"], ["unknown selection rule 'nosuch'", "known rules:", "max-fidelity"]),
    (["--weights", "1"], ["expected two numbers", "'1'"]),
    (["--algorithm", "annealing"], ["invalid choice: 'annealing'", "nsga2"]),
    (["--min-size", "5"], ["min_size", "5", "3"]),
    (["--min-size", "3", "--max-size", "2"], ["max_size", "2", "min_size"]),
    (["--pop-size", "0"], ["pop_size", "0"]),
], ids=["unknown-rule", "bad-weights", "unknown-algorithm", "min-size-above-zoo", "max-below-min", "zero-pop"])
def test_search_refuses(extra, needles, world, capsys, tmp_path):
    refused(capsys, ["search", "--tables", world["tables"], "--out", tmp_path / "s", "--n-gen", "2", *extra],
            *needles)
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- export


def _export(world, out, *extra):
    return ["export", "--zoo", world["zoo"], "--selected", world["selected"], "--n-per-class", "3",
            "--device", "cpu", "--out", out, *extra]


def test_export_refuses_a_missing_or_broken_selection(world, capsys, tmp_path):
    refused(capsys, ["export", "--zoo", world["zoo"], "--selected", tmp_path / "none.json", "--out", tmp_path / "o"],
            "none.json' not found", "gan-ensemble search")
    bad = tmp_path / "bad.json"
    bad.write_text("{members: [")
    refused(capsys, ["export", "--zoo", world["zoo"], "--selected", bad, "--out", tmp_path / "o"],
            "bad.json is not valid JSON")
    assert not (tmp_path / "o").exists()


def test_export_refuses_a_member_the_zoo_lacks(world, capsys, tmp_path):
    sel = json.loads(world["selected"].read_text())
    sel["members"] = [*sel["members"][:1], "ghost@0"]
    path = tmp_path / "selected.json"
    path.write_text(json.dumps(sel))
    refused(capsys, ["export", "--zoo", world["zoo"], "--selected", path, "--n-per-class", "3",
                     "--out", tmp_path / "o"], "'ghost@0'")
    assert not (tmp_path / "o").exists()


def test_export_refuses_unknown_formats_and_counts(world, capsys, tmp_path):
    refused(capsys, _export(world, tmp_path / "o", "--formats", "png,gif"), "gif", "png")
    refused(capsys, [*_export(world, tmp_path / "o")[:-2], "--n-per-class", "0", "--out", tmp_path / "o"],
            "0")
    refused(capsys, ["export", "--zoo", tmp_path / "nozoo", "--selected", world["selected"],
                     "--n-per-class", "3", "--out", tmp_path / "o"], "no zoo catalog")
    assert not (tmp_path / "o").exists()


def test_export_never_replaces_what_it_did_not_write(world, capsys, tmp_path):
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    refused(capsys, _export(world, mine), "my-files", "--overwrite")
    refused(capsys, _export(world, mine, "--overwrite"), "my-files")
    refused(capsys, _export(world, world["zoo"], "--overwrite"), str(world["zoo"]))
    assert (mine / "thesis.tex").read_text() == "precious" and (world["zoo"] / "catalog.sqlite").is_file()


# --------------------------------------------------------------------------- reruns and resume


def test_a_quickstart_rerun_with_another_seed_is_refused_and_writes_nothing(capsys, tmp_path):
    from ensemble.pipeline import make_config

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(make_config("quick", seed=0).to_dict(), default=str))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused(capsys, ["quickstart", "--out", out, "--seed", "1", "--no-downstream"],
            "seed: 0 in the folder, 1 now", "--seed", "new --out folder")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _train_argv(world, out, *extra):
    return ["zoo", "train", "--dataset", world["data"], "--families", "dcgan", "--iterations", "2",
            "--snapshots", "1,2", "--batch-size", "8", "--name", "r", "--device", "cpu", "--out", out, *extra]


@pytest.mark.parametrize("extra, needles", [
    (["--lr", "0.01"], ["run 'r' exists with a different config", "lr"]),
    (["--seed", "3"], ["run 'r' exists with seed"]),  # the run's own seed, derived from --seed
], ids=["other-lr", "other-seed"])
def test_a_finished_zoo_run_rerun_with_other_settings_is_refused(extra, needles, world, capsys, tmp_path):
    assert cli_ok(_train_argv(world, tmp_path / "z"))
    capsys.readouterr()
    refused(capsys, _train_argv(world, tmp_path / "z", *extra), *needles)


def test_an_unfinished_zoo_run_extended_with_other_settings_is_refused(world, capsys, tmp_path):
    assert cli_ok(_train_argv(world, tmp_path / "z", "--snapshots", "1"))
    capsys.readouterr()
    refused(capsys, _train_argv(world, tmp_path / "z", "--lr", "0.01"),
            "run 'r' exists with a different config", "lr", "name=")


def test_a_damaged_training_state_is_named_on_resume(world, capsys, tmp_path):
    base = ["zoo", "train", "--dataset", world["data"], "--families", "dcgan", "--iterations", "3",
            "--batch-size", "8", "--name", "r", "--device", "cpu", "--out", tmp_path / "z"]
    assert cli_ok([*base, "--snapshots", "1"])
    capsys.readouterr()
    state = next((tmp_path / "z" / "runs" / "r").glob("state_*.pt"))
    state.write_bytes(b"garbage")
    refused(capsys, [*base, "--snapshots", "1,3"], "training state", "state_1.pt' is unreadable", "delete it")


def test_a_training_that_is_running_is_not_started_twice(world, capsys, tmp_path):
    from zoo.io import exclusive_lock

    with exclusive_lock(tmp_path / "z" / "runs" / "r" / ".lock", "run 'r'"):
        refused(capsys, ["zoo", "train", "--dataset", world["data"], "--families", "dcgan", "--iterations", "2",
                         "--snapshots", "2", "--batch-size", "8", "--name", "r", "--device", "cpu",
                         "--out", tmp_path / "z"], "run 'r' is in use by process", "wait until it finishes")
    assert not list((tmp_path / "z" / "runs" / "r").glob("G_*.pt"))
