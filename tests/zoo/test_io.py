"""File helpers: npz reading that never unpickles and names the file, and the run lock."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.io import exclusive_lock, read_npz


def test_read_npz_reads_and_names_what_is_wrong(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, a=np.arange(3), b=np.ones((2, 2)))
    assert sorted(read_npz(good)) == ["a", "b"]
    assert read_npz(good, ["a"])["a"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"has no array\(s\) 'c' \(it holds: a, b\); FIX"):
        read_npz(good, ["a", "c"], fix="FIX")
    with pytest.raises(FileNotFoundError, match="tables 'nope.npz' not found"):
        read_npz("nope.npz", what="tables")
    damaged = tmp_path / "damaged.npz"
    raw = bytearray(good.read_bytes())
    start = raw.index(b"\x93NUMPY")  # a member's bytes: the zip directory stays intact
    raw[start:start + 6] = b"XXXXXX"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"damaged\.npz' is damaged"):
        read_npz(damaged)


def test_exclusive_lock_refuses_a_second_holder_and_is_released(tmp_path):
    lock = tmp_path / "run" / ".lock"
    with exclusive_lock(lock, "run 'x'"):
        assert lock.read_text().startswith("process ")
        with pytest.raises(FileExistsError, match=r"run 'x' is in use by process \d+ \(lock .*\.lock'\); "
                                                  "wait until it finishes"):
            with exclusive_lock(lock, "run 'x'"):
                pass
    with exclusive_lock(lock, "run 'x'"):  # released: taken again
        pass


def test_two_identical_trainings_never_write_at_once(tmp_path, pneumonia_small):
    """While one training holds run 'r', the same training started again is refused before it
    writes a snapshot; once the first has finished, the second resumes to its results."""
    from zoo.catalog import Catalog
    from zoo.train import train

    images, labels = pneumonia_small.images[:64], pneumonia_small.labels[:64]
    kwargs = dict(out_dir=tmp_path, iterations=2, snapshots=[1, 2], batch_size=8, name="r",
                  device="cpu")
    with exclusive_lock(tmp_path / "runs" / "r" / ".lock", "run 'r'"):  # the other process, training
        with pytest.raises(FileExistsError, match="run 'r' is in use"):
            train("dcgan", images, labels, **kwargs)
        assert not list((tmp_path / "runs" / "r").glob("G_*.pt")) and len(Catalog(tmp_path)) == 0
    ids = train("dcgan", images, labels, **kwargs)
    assert ids == [1, 2] and train("dcgan", images, labels, **kwargs) == ids


def test_atomic_write_removes_temporary_files_of_killed_writers(tmp_path):
    """Issue 11 item 6: a kill part-way leaves a temporary file; the next write of the same file
    removes it (this machine's, dead processes' only) and leaves others alone."""
    import os
    import subprocess
    import sys

    from zoo.io import HOST, atomic_write

    target = tmp_path / "tables.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a process that has exited
    stale = tmp_path / f".tables.npz.{HOST}.{dead}-abc123.tmp"
    live = tmp_path / f".tables.npz.{HOST}.{os.getppid()}-def456.tmp"  # our parent: alive
    other_host = tmp_path / ".tables.npz.elsewhere.1-ghi789.tmp"
    other_file = tmp_path / f".other.npz.{HOST}.{dead}-jkl012.tmp"
    for f in (stale, live, other_host, other_file):
        f.write_bytes(b"half")
    atomic_write(target, lambda p: p.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole"
    assert not stale.exists()
    assert live.exists() and other_host.exists() and other_file.exists()
