"""Small file helpers: atomic writes, content hashes, safe npz reading and run locks.

They exist so that every writer leaves either the old file or the new one (never half of one),
every npz is read without pickles and with an error that names the file, and two processes that
would write the same files never do so at once.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import logging
import os
import re
import socket
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

__all__ = ["sha256_file", "atomic_write", "read_npz", "exclusive_lock", "HOST", "process_alive"]

log = logging.getLogger(__name__)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


#: This machine's name, file-name safe: temporary files and folders record it with their process.
HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def process_alive(host: str, pid: int) -> bool:
    """Whether process ``pid`` of machine ``host`` may still be running (another machine's
    process always may: it is never ours to judge)."""
    if host != HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Remove ``path``'s temporary files left by killed processes of this machine."""
    prefix = f".{path.name}.{HOST}."
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(HOST)}.*.tmp"):
        pid = tmp.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(HOST, int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.info("removed %s, left by an interrupted write", tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A failure (or a kill) part-way leaves no half-written file at ``path``. The temporary file's
    name records this machine and process; a later write of the same ``path`` removes the ones a
    killed process left (only this machine's, only dead processes'). A folder that cannot be
    written (a read-only mount, no permission) raises a PermissionError naming ``path``.
    """
    path = Path(path)
    tag = f"{HOST}.{os.getpid()}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{tag}-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise PermissionError(f"cannot write {str(path)!r}: {exc.strerror.lower()}; choose a "
                                  "writable folder (or copy the folder somewhere writable)") from exc
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def read_npz(path: str | os.PathLike, keys: Sequence[str] | None = None, *,
             what: str = "npz file", fix: str = "write it again with numpy.savez") -> dict[str, np.ndarray]:
    """The arrays ``keys`` (default: all) of an ``.npz`` file, read without pickles.

    Every way the file can be wrong gives one ValueError (FileNotFoundError when it is missing)
    naming the file, what is wrong and ``fix``: not a zip archive (a truncated download, a
    ``.npy`` or a pickle renamed), a damaged member, an array of Python objects (never unpickled),
    or a missing key (the present keys are listed).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} not found; check the path")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{what} {str(path)!r} is not an .npz archive (not a zip file: truncated, "
                         f"or another format renamed); {fix}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = list(npz.files)
            wanted = present if keys is None else list(keys)
            missing = [k for k in wanted if k not in present]
            if missing:
                raise KeyError(missing)
            return {k: npz[k] for k in wanted}
    except KeyError as exc:
        raise ValueError(f"{what} {str(path)!r} has no array(s) {', '.join(map(repr, exc.args[0]))} "
                         f"(it holds: {', '.join(present) or 'nothing'}); {fix}") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ValueError(f"{what} {str(path)!r} holds an array of Python objects, which is never "
                             f"loaded (unpickling can run code); store plain numeric arrays; {fix}") from None
        raise ValueError(f"{what} {str(path)!r} is damaged ({exc}); {fix}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{what} {str(path)!r} is damaged ({type(exc).__name__}: {exc}); {fix}") from None


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` (created if needed) for the ``with`` block.

    A second process asking for the same lock while it is held gets a FileExistsError naming
    ``what`` and the process that holds it, instead of writing the same files at the same time.
    The lock is an ``flock`` on the file, so a killed holder releases it (the file stays).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # noqa: SIM115 - held open for the lifetime of the lock
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise FileExistsError(
                    f"{what} is in use by {holder} (lock {str(path)!r}); wait until it finishes and "
                    "run again (it then resumes), or use another name or folder"
                ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}\n")
        f.flush()
        yield path
    finally:
        f.close()
