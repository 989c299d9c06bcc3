"""The zoo catalog: one SQLite file (``catalog.sqlite``) listing every generator of a zoo folder.

Each row records what a generator is (kind, architecture, config, dataset, image shape, classes,
iteration), where it lives (a path relative to the zoo folder, so the folder can move; for
callables the ``module:function`` reference) and the sha256 of its bytes (of the module source for
callables), checked again before it is loaded. Several training processes may write to one
catalog at once: the database runs in WAL mode and every operation is a short transaction.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import sqlite3
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo.generator import (
    CallableGenerator,
    Generator,
    TorchScriptGenerator,
    normalize_image_shape,
    parse_ref,
)
from zoo.io import atomic_write, sha256_file
from zoo.samples import SampleSetGenerator, sample_set_digest

__all__ = ["Catalog", "GeneratorNotFoundError", "CATALOG_FILE", "KINDS", "COLUMNS", "MANIFEST_COLUMNS",
           "parse_image_shape", "file_arguments", "ref_source_file", "catalog_writable"]

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
KINDS = ("native", "torchscript", "callable", "samples")
#: Columns of a bulk-import manifest (:meth:`Catalog.import_manifest`).
MANIFEST_COLUMNS = ("name", "run", "iteration", "kind", "path", "latent_dim", "num_classes",
                    "image_shape", "kwargs", "dataset", "replace")
COLUMNS = ("id", "name", "run", "kind", "architecture", "config", "dataset", "image_shape",
           "num_classes", "iteration", "path", "sha256", "created")
SCHEMA_VERSION = 2  # 2: kind 'samples' (a version-1 catalog is upgraded when one is added)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generators (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL UNIQUE,
    run          TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('native', 'torchscript', 'callable', 'samples')),
    architecture TEXT    NOT NULL,
    config       TEXT    NOT NULL,
    dataset      TEXT    NOT NULL,
    image_shape  TEXT    NOT NULL,
    num_classes  INTEGER NOT NULL,
    iteration    INTEGER NOT NULL,
    path         TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    created      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS generators_run ON generators (run);
"""


class _ManifestCellError(Exception):
    """A bad manifest cell: the column and what is wrong (the row is added by the caller)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(column, message)
        self.column = column
        self.message = message


def parse_image_shape(text: str) -> tuple[int, ...]:
    """``"28x28"``, ``"28,28"``, ``"64x64x3"`` -> a normalised image shape."""
    parts = [p for p in re.split(r"[,x\s]+", str(text).strip().lower()) if p]
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"image_shape must look like 28x28 or 64x64x3, got {text!r}") from None
    return normalize_image_shape(dims)


class GeneratorNotFoundError(KeyError, ValueError):
    """No catalog row with that id or name (a KeyError and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "generator"


def _callable_digest(source_sha256: str, files: Mapping[str, str],
                     kwargs: Mapping[str, Any] | None = None) -> str:
    """A callable's catalog hash: its module source's sha256, combined with the sha256 of each file
    named in its arguments (``files``: argument name -> sha256) and with its other arguments
    (the same factory called with other arguments is another generator, and the hash keys the
    feature cache); the source hash alone if it takes none. File arguments count by content, not
    by path, so a zoo that moves keeps its hashes."""
    rest = {k: v for k, v in (kwargs or {}).items() if k not in files}
    if not files and not rest:
        return source_sha256
    h = hashlib.sha256(b"gan-ensemble callable v1\n" + source_sha256.encode("ascii") + b"\n")
    for key in sorted(files):
        h.update(f"{key}\0{files[key]}\n".encode())
    if rest:
        h.update(b"kwargs\0" + json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def file_arguments(kwargs: Mapping[str, Any], base: str | os.PathLike | None = None) -> dict[str, Path]:
    """The factory arguments whose string value is a path to an existing file, as absolute paths.

    Only values that look like paths count (with a folder part or a file extension: ``w.pt``,
    ``run/config``), so a short word such as ``"cpu"`` stays an ordinary argument even if a file
    of that name happens to exist. A relative value is looked up in ``base`` first (the
    manifest's folder), then the working directory. These files are hashed into the catalog
    entry and checked again before loading.
    """
    found = {}
    for key, value in kwargs.items():
        if not isinstance(value, str) or not value or "\n" in value:
            continue
        p = Path(value).expanduser()
        if len(p.parts) < 2 and not p.suffix:
            continue
        candidates = [p] if p.is_absolute() else ([Path(base) / p] if base is not None else []) + [p]
        for c in candidates:
            try:
                if c.is_file():
                    found[key] = c.resolve()
                    break
            except OSError:  # e.g. a name too long to be a path
                break
    return found


def ref_source_file(ref: str) -> Path:
    """The source file of the module named in ``"module:function"`` (hashed to notice changes)."""
    module_name, _ = parse_ref(ref)
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"cannot find module {module_name!r} of {ref!r} ({exc}); install it or add "
                         "its folder to PYTHONPATH") from exc
    if spec is None:
        raise ValueError(f"cannot find module {module_name!r} of {ref!r}; install it or add its "
                         "folder to PYTHONPATH")
    origin = spec.origin
    if not origin or not Path(origin).is_file():
        raise ValueError(f"module {module_name!r} of {ref!r} has no source file to hash "
                         f"(origin {origin!r}); put the factory in a regular .py module")
    return Path(origin)


def catalog_writable(zoo_dir: str | os.PathLike) -> bool:
    """Whether this process may write the catalog of ``zoo_dir``: the folder (SQLite writes its
    journal beside the file) and the file where they exist, else the nearest existing parent.

    A read-only mount fails this check even for root (``access(2)`` reports ``EROFS``)."""
    folder = Path(zoo_dir).expanduser()
    path = folder / CATALOG_FILE
    if path.exists() and not os.access(path, os.W_OK):
        return False
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK | os.X_OK)


class Catalog:
    """The generators of one zoo folder, stored in ``zoo_dir/catalog.sqlite``.

    ``create=False`` refuses a folder without a catalog (useful for read-only commands) and reads
    through read-only connections; so does a zoo whose folder is not writable (a read-only mount).
    """

    def __init__(self, zoo_dir: str | os.PathLike, create: bool = True) -> None:
        self.zoo_dir = Path(zoo_dir).expanduser()
        self.path = self.zoo_dir / CATALOG_FILE
        if self.zoo_dir.exists() and not self.zoo_dir.is_dir():
            raise ValueError(f"zoo folder {str(self.zoo_dir)!r} is a file; pass a folder")
        if not self.path.is_file() and not create:
            raise FileNotFoundError(
                f"no zoo catalog at {str(self.path)!r}; train one with "
                "`gan-ensemble zoo train --out DIR` or open it with create=True"
            )
        # Reading never writes: with create=False, or when the folder or file is not writable (a
        # read-only mount, another user's zoo), every read opens the database with mode=ro. The
        # file and its tables are made by the first write (add), so a failed registration into a
        # new folder leaves no empty catalog behind.
        self.writable = catalog_writable(self.zoo_dir)
        self.read_only = not create or not self.writable
        if self.path.is_file():
            with self._connect() as con:
                version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ValueError(f"catalog {str(self.path)!r} has schema version {version}, newer "
                                 f"than this gan-ensemble reads ({SCHEMA_VERSION}); upgrade gan-ensemble")

    # ------------------------------------------------------------------ sqlite plumbing

    def _sqlite_error(self, exc: sqlite3.Error) -> Exception:
        """A one-line error naming the catalog file and the fix for a failed SQLite operation."""
        text = str(exc)
        low = text.lower()
        if "locked" in low or "busy" in low:
            return ValueError(f"catalog {str(self.path)!r} stayed locked by another process for 60 s "
                              f"({text}); wait for the other command (training?) and run again")
        if "readonly" in low or "read-only" in low:
            return PermissionError(f"catalog {str(self.path)!r} is read-only ({text}); copy the zoo "
                                   "folder somewhere writable to add or remove generators")
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError) \
                or "malformed" in low or "not a database" in low:
            return ValueError(f"{str(self.path)!r} is not a SQLite catalog or is corrupted ({text}); "
                              "restore it from a backup, or move it away and register the "
                              "generators again (`gan-ensemble zoo register-...`)")
        return ValueError(f"cannot use catalog {str(self.path)!r}: {text}")

    def _require_writable(self) -> None:
        if not self.writable:
            raise PermissionError(
                f"zoo folder {str(self.zoo_dir)!r} is read-only; copy it to a writable folder "
                "to add or remove generators (reading, scoring and exporting work as it is)")

    def _open_read(self) -> sqlite3.Connection:
        """A connection that cannot write: mode=ro (immutable=1 when a read-only folder holds a
        WAL database without its -shm file, which SQLite would otherwise need to create)."""
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0)
        try:
            con.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            con.close()
            if self.writable:
                raise
            con = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=60.0)
        return con

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for reading (read-only where :attr:`read_only`), or with ``write`` for
        adding and removing rows (the folder, the file and the table are made then)."""
        if write:
            self._require_writable()
        try:
            if not write and not self.path.is_file():  # no catalog yet: read as an empty one
                con = sqlite3.connect(":memory:")
                con.executescript(_SCHEMA)
            elif not write and self.read_only:
                con = self._open_read()
            else:
                if write:
                    self.zoo_dir.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(self.path, timeout=60.0)
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from exc
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout = 60000")
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "generators" not in tables:
                raise ValueError(f"{str(self.path)!r} is not a gan-ensemble catalog (no generators "
                                 "table); pass the zoo folder that `gan-ensemble zoo train` created")
            if write:
                mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":  # e.g. a filesystem without shared memory
                    log.debug("catalog %s runs in journal mode %s", self.path, mode)
                if not tables:
                    with con:
                        con.executescript(_SCHEMA)
                        if con.execute("PRAGMA user_version").fetchone()[0] == 0:
                            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif not tables:  # an empty database file (a creation that never wrote a row)
                con.close()
                con = sqlite3.connect(":memory:")
                con.row_factory = sqlite3.Row
                con.executescript(_SCHEMA)
            yield con
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from exc
        finally:
            con.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.zoo_dir)!r}, {len(self)} generators)"

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM generators").fetchone()[0])

    def __contains__(self, id_or_name: object) -> bool:
        try:
            self._find(id_or_name)
        except (GeneratorNotFoundError, ValueError):
            return False
        return True

    def names(self) -> list[str]:
        """Generator names, in id order."""
        with self._connect() as con:
            return [r[0] for r in con.execute("SELECT name FROM generators ORDER BY id")]

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict:
        out = {k: row[k] for k in COLUMNS}
        out["config"] = json.loads(out["config"])
        out["image_shape"] = tuple(json.loads(out["image_shape"]))
        return out

    def _find(self, id_or_name: object) -> dict:
        if isinstance(id_or_name, (bool, np.bool_)) or not isinstance(id_or_name, (int, np.integer, str)):
            raise ValueError(f"a generator is named by its id (int) or name (str), got {id_or_name!r}")
        with self._connect() as con:
            if isinstance(id_or_name, str):
                row = con.execute("SELECT * FROM generators WHERE name = ?", (id_or_name,)).fetchone()
                if row is None and id_or_name.strip().isdigit():
                    row = con.execute("SELECT * FROM generators WHERE id = ?",
                                      (int(id_or_name),)).fetchone()
            else:
                row = con.execute("SELECT * FROM generators WHERE id = ?", (int(id_or_name),)).fetchone()
            if row is not None:
                return self._decode(row)
            known = [r[0] for r in con.execute("SELECT name FROM generators ORDER BY id LIMIT 8")]
            total = con.execute("SELECT COUNT(*) FROM generators").fetchone()[0]
        what = "id" if not isinstance(id_or_name, str) else "name or id"
        if total == 0:
            hint = "the catalog is empty; train generators or register some first"
        else:
            more = f", ... ({total} in all)" if total > len(known) else ""
            hint = f"known: {', '.join(known)}{more}"
        raise GeneratorNotFoundError(
            f"no generator with {what} {id_or_name!r} in {str(self.path)!r}; {hint}"
        )

    def get(self, id_or_name: int | str) -> dict:
        """The catalog row of a generator (``config`` a dict, ``image_shape`` a tuple)."""
        return self._find(id_or_name)

    def list(self) -> pd.DataFrame:
        """All generators as a DataFrame, sorted by id."""
        with self._connect() as con:
            rows = [self._decode(r) for r in con.execute("SELECT * FROM generators ORDER BY id")]
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def file_path(self, id_or_name: int | str) -> Path | None:
        """Absolute path of a generator's file (a folder for a sample folder; None for callables)."""
        return self._file_of(self._find(id_or_name))

    def _file_of(self, row: Mapping[str, Any]) -> Path | None:
        if row["kind"] == "callable":
            return None
        p = Path(row["path"])
        return p if p.is_absolute() else self.zoo_dir / p

    # ------------------------------------------------------------------ writing

    def _relative(self, path: str | os.PathLike, folder_ok: bool = False) -> tuple[Path, str]:
        """Resolve a file path (relative to the zoo folder, else the working directory); with
        ``folder_ok`` a folder is accepted too (sample sets)."""
        def found(q: Path) -> bool:
            return q.is_file() or (folder_ok and q.is_dir())

        p = Path(path).expanduser()
        if not p.is_absolute():
            in_zoo = self.zoo_dir / p
            p = in_zoo if found(in_zoo) or not found(p) else p
        p = p.resolve()
        if not found(p):
            raise FileNotFoundError(f"generator file {str(path)!r} not found (looked in "
                                    f"{str(self.zoo_dir)!r} and the working directory)")
        try:
            return p, p.relative_to(self.zoo_dir.resolve()).as_posix()
        except ValueError:
            log.warning("%s lies outside the zoo folder %s; recording its absolute path", p, self.zoo_dir)
            return p, str(p)

    def add(self, **row: Any) -> int:
        """Add one generator; return its id.

        Keys: ``path`` (required), ``run``, ``iteration``, ``name`` (default ``"{run}@{iteration}"``),
        ``kind`` (default ``"native"``), ``architecture``, ``config``, ``dataset``, ``image_shape``,
        ``num_classes``, ``sha256`` (computed from the file when left out, verified when given).
        For native checkpoints, missing architecture/config/iteration/shape come from the file.
        A ``samples`` path is a sample folder or npz, hashed with :func:`zoo.samples.sample_set_digest`.
        """
        values = self._prepare_row(row)
        with self._connect(write=True) as con:
            if values[2] == "samples":
                self._allow_samples(con)
            with con:
                new_id = self._insert(con, values)
        log.info("catalog %s: added %s (id %d)", self.path, values[0], new_id)
        return new_id

    def _prepare_row(self, row: Mapping[str, Any]) -> tuple:
        """Validate and complete one row (hashing its file); return the values to insert."""
        allowed = set(COLUMNS) - {"id", "created"}
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise ValueError(f"unknown catalog field(s) {unknown}; allowed: {sorted(allowed)}")
        if "path" not in row:
            raise ValueError("add() needs path=, the generator file (or 'module:function' for callables)")
        kind = row.get("kind", "native")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        rec = dict(row)
        rec["kind"] = kind
        if kind == "callable":
            parse_ref(rec["path"])
            digest = _callable_digest(sha256_file(ref_source_file(rec["path"])),
                                      (rec.get("config") or {}).get("files", {}),
                                      (rec.get("config") or {}).get("kwargs", {}))
            stored_path = rec["path"]
        elif kind == "samples":
            abs_path, stored_path = self._relative(rec["path"], folder_ok=True)
            digest = sample_set_digest(abs_path)
        else:
            abs_path, stored_path = self._relative(rec["path"])
            digest = sha256_file(abs_path)
            if kind == "native" and not {"architecture", "config", "iteration"} <= rec.keys():
                from zoo.checkpoint import read_checkpoint

                payload = read_checkpoint(abs_path)
                rec.setdefault("architecture", payload["architecture"])
                rec.setdefault("config", payload["config"])
                rec.setdefault("iteration", int(payload["iteration"]))
        given = rec.get("sha256")
        if given is not None and given != digest:
            raise ValueError(f"sha256 {given!r} given for {rec['path']!r} does not match the file "
                             f"({digest}); leave sha256 out to have it computed")
        rec["sha256"] = digest
        rec["path"] = stored_path
        if kind == "native":
            from zoo.checkpoint import REQUIRED_CONFIG, config_image_shape

            cfg = rec.get("config")
            if isinstance(cfg, Mapping) and all(k in cfg for k in REQUIRED_CONFIG):
                rec.setdefault("image_shape", config_image_shape(cfg))
                rec.setdefault("num_classes", cfg["num_classes"])
        for key in ("architecture", "config", "image_shape", "num_classes"):
            if rec.get(key) is None:
                raise ValueError(f"add() needs {key}= for a {kind} generator")
        rec.setdefault("iteration", 0)
        it = rec["iteration"]
        if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or it < 0:
            raise ValueError(f"iteration must be a non-negative integer, got {it!r}")
        if "run" not in rec and "name" not in rec:
            raise ValueError("add() needs run= (the training run) or name=")
        rec.setdefault("run", rec.get("name"))
        rec.setdefault("name", f"{rec['run']}@{int(it)}")
        for key in ("name", "run", "architecture"):
            if not isinstance(rec[key], str) or not rec[key].strip():
                raise ValueError(f"{key} must be a non-empty string, got {rec[key]!r}")
        rec.setdefault("dataset", "unknown")
        if not isinstance(rec["config"], Mapping):
            raise ValueError(f"config must be a dict, got {type(rec['config']).__name__}")
        try:
            config_json = json.dumps(dict(rec["config"]), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config must be JSON-serialisable ({exc})") from exc
        shape = normalize_image_shape(rec["image_shape"])
        nc = rec["num_classes"]
        if isinstance(nc, bool) or not isinstance(nc, (int, np.integer)) or nc < 1:
            raise ValueError(f"num_classes must be a positive integer, got {nc!r}")
        return (rec["name"], rec["run"], kind, rec["architecture"], config_json, str(rec["dataset"]),
                json.dumps(list(shape)), int(nc), int(it), rec["path"], digest, _now())

    @staticmethod
    def _insert(con: sqlite3.Connection, values: tuple) -> int:
        """Insert one prepared row inside the caller's transaction; return its id."""
        try:
            cur = con.execute(
                "INSERT INTO generators (name, run, kind, architecture, config, dataset, "
                "image_shape, num_classes, iteration, path, sha256, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc).upper():
                other = con.execute("SELECT id FROM generators WHERE name = ?", (values[0],)).fetchone()
                raise ValueError(
                    f"a generator named {values[0]!r} is already in the catalog (id "
                    f"{other[0] if other else '?'}); choose another name or remove it first"
                ) from exc
            raise ValueError(f"cannot add {values[0]!r} to the catalog: {exc}") from exc
        return int(cur.lastrowid)

    def _allow_samples(self, con: sqlite3.Connection) -> None:
        """Upgrade a version-1 catalog, whose kind check predates ``samples``, to version 2.

        SQLite cannot alter a CHECK constraint, so the table is rebuilt (rows, ids and the id
        sequence kept) in one transaction.
        """
        sql = con.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='generators'").fetchone()[0]
        if "'samples'" in sql:
            return
        log.info("catalog %s: upgrading to schema version %d (sample-set members)", self.path, SCHEMA_VERSION)
        con.execute("BEGIN IMMEDIATE")  # explicit: sqlite3 would run the DDL outside a transaction
        try:
            seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'generators'").fetchone()
            con.execute("ALTER TABLE generators RENAME TO generators_v1")
            con.execute("DROP INDEX IF EXISTS generators_run")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
            cols = ", ".join(COLUMNS)
            con.execute(f"INSERT INTO generators ({cols}) SELECT {cols} FROM generators_v1")
            con.execute("DROP TABLE generators_v1")
            if seq is not None:
                con.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'generators'",
                            (seq[0],))
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.commit()
        except BaseException:
            con.rollback()
            raise

    def remove(self, id_or_name: int | str, delete_file: bool = False) -> dict:
        """Remove a generator's row (and, with ``delete_file``, its file); return the removed row."""
        row = self._find(id_or_name)
        with self._connect(write=True) as con, con:
            con.execute("DELETE FROM generators WHERE id = ?", (row["id"],))
        if delete_file:
            f = self._file_of(row)
            if f is not None and f.is_dir():  # a sample folder
                shutil.rmtree(f)
            elif f is not None:
                f.unlink(missing_ok=True)
        log.info("catalog %s: removed %s (id %d)", self.path, row["name"], row["id"])
        return row

    # ------------------------------------------------------------------ loading

    def _verify_file(self, row: Mapping[str, Any]) -> Path:
        f = self._file_of(row)
        assert f is not None
        label = f"generator {row['name']!r} (id {row['id']})"
        samples = row["kind"] == "samples"
        if not (f.is_file() or (samples and f.is_dir())):
            raise FileNotFoundError(
                f"{label}: file {str(f)!r} is missing; restore it, or remove the entry with "
                f"`gan-ensemble zoo remove {self.zoo_dir} {row['id']}`"
            )
        actual = sample_set_digest(f) if samples else sha256_file(f)
        if actual != row["sha256"]:
            raise ValueError(
                f"{label}: {'sample set' if samples else 'file'} {str(f)!r} has sha256 {actual[:12]}..., but the catalog recorded "
                f"{row['sha256'][:12]}...; the file was changed since it was registered: restore "
                f"it, or remove the entry (`gan-ensemble zoo remove {self.zoo_dir} {row['id']}`) "
                "and register the file again"
            )
        return f

    def load(self, id_or_name: int | str, device: str | torch.device = "auto",
             batch_size: int = 256) -> Generator:
        """Load a generator after checking its file (or module source) against the recorded sha256."""
        row = self._find(id_or_name)
        kind = row["kind"]
        if kind == "native":
            from zoo.checkpoint import load_generator

            gen: Any = load_generator(self._verify_file(row), device=device, batch_size=batch_size)
        elif kind == "torchscript":
            cfg = row["config"]
            gen = TorchScriptGenerator(self._verify_file(row), latent_dim=cfg["latent_dim"],
                                       num_classes=row["num_classes"], image_shape=row["image_shape"],
                                       device=device, batch_size=batch_size)
        elif kind == "samples":
            gen = SampleSetGenerator.from_path(self._verify_file(row), num_classes=row["num_classes"],
                                               replace=bool(row["config"].get("replace", False)))
        else:
            label = f"generator {row['name']!r} (id {row['id']})"
            again = (f"remove the entry (`gan-ensemble zoo remove {self.zoo_dir} {row['id']}`) and "
                     "register it again")
            kwargs = row["config"].get("kwargs", {})
            files = row["config"].get("files", {})
            for key, recorded in files.items():
                f = Path(kwargs[key])
                if not f.is_file():
                    raise FileNotFoundError(f"{label}: file {str(f)!r} (argument {key}) is missing; "
                                            f"restore it, or {again}")
                if sha256_file(f) != recorded:
                    raise ValueError(f"{label}: file {str(f)!r} (argument {key}) changed since it was "
                                     f"registered (sha256 differs); restore it, or {again}")
            src = ref_source_file(row["path"])
            source = sha256_file(src)
            # entries registered before the arguments were hashed carry the older digest
            if row["sha256"] not in (_callable_digest(source, files, kwargs), _callable_digest(source, files)):
                raise ValueError(
                    f"{label}: module source {str(src)!r} changed since it was registered (sha256 "
                    f"differs); undo the change, or {again}"
                )
            gen = CallableGenerator(row["path"], num_classes=row["num_classes"],
                                    image_shape=row["image_shape"], **kwargs)
        gen.name = row["name"]  # errors and warnings while sampling name the catalog entry
        if tuple(gen.image_shape) != tuple(row["image_shape"]) or gen.num_classes != row["num_classes"]:
            raise ValueError(
                f"generator {row['name']!r} (id {row['id']}) loads with image_shape "
                f"{gen.image_shape} and {gen.num_classes} classes, but the catalog says "
                f"{row['image_shape']} and {row['num_classes']}; remove and re-register it"
            )
        return gen

    # ------------------------------------------------------------------ foreign generators

    def _check_new_name(self, name: object) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name in self.names():
            raise ValueError(f"a generator named {name!r} is already in the catalog; choose another "
                             "name or remove it first")
        return name

    def register_torchscript(self, path: str | os.PathLike, *, name: str, latent_dim: int,
                             num_classes: int, image_shape: Sequence[int], dataset: str = "unknown",
                             copy: bool = True, run: str | None = None, iteration: int = 0) -> int:
        """Register a TorchScript generator file (copied into ``zoo_dir/foreign/`` unless copy=False).

        The module is loaded and asked for two images first, so a file that cannot sample is refused.
        ``run`` (default: the name) and ``iteration`` keep a foreign zoo's family and step grouping.
        """
        name = self._check_new_name(name)
        made = [d for d in (self.zoo_dir, self.zoo_dir / "foreign") if not d.exists()]
        copied = None
        try:
            row, copied = self._torchscript_row(path, name=name, run=run, iteration=iteration,
                                                latent_dim=latent_dim, num_classes=num_classes,
                                                image_shape=image_shape, dataset=dataset, copy=copy)
            return self.add(**row)
        except BaseException:
            if copied is not None:
                copied.unlink(missing_ok=True)
            for d in reversed(made):  # the folders this failed registration made, if still empty
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise

    def _torchscript_row(self, path: str | os.PathLike, *, name: str, run: str | None, iteration: int,
                         latent_dim: int, num_classes: int, image_shape: Sequence[int], dataset: str,
                         copy: bool) -> tuple[dict, Path | None]:
        """Check a TorchScript file by sampling it, copy it if asked; return the row and the copy
        made (None if none was made, to remove if the registration fails)."""
        src = Path(path).expanduser()
        gen = TorchScriptGenerator(src, latent_dim=latent_dim, num_classes=num_classes,
                                   image_shape=image_shape, device="cpu")
        gen.name = name
        gen.sample(2, seed=0)
        digest = sha256_file(src)
        dest = src
        copied = None
        if copy:
            self._require_writable()
            dest = self.zoo_dir / "foreign" / f"{_safe_filename(name)}-{digest[:12]}{src.suffix or '.pt'}"
            if not dest.is_file():
                atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))
                copied = dest
        config = {"latent_dim": gen.latent_dim, "num_classes": gen.num_classes,
                  "image_shape": list(gen.image_shape), "source": str(src.resolve())}
        row = dict(path=dest, name=name, run=run or name, kind="torchscript", architecture="torchscript",
                   config=config, dataset=dataset, image_shape=gen.image_shape,
                   num_classes=gen.num_classes, iteration=iteration, sha256=digest)
        return row, copied

    def register_callable(self, ref: str, *, name: str, num_classes: int, image_shape: Sequence[int],
                          dataset: str = "unknown", run: str | None = None, iteration: int = 0,
                          **kwargs: Any) -> int:
        """Register a ``"module:function"`` factory (called with ``**kwargs``) as a generator.

        The sha256 is that of the module's source file, combined with that of every file named in
        ``kwargs`` (a string argument that is an existing file, recorded by its absolute path), so
        an edited module or a replaced weights file is noticed at load time. Other files the
        factory reads on its own are not tracked.
        """
        name = self._check_new_name(name)
        return self.add(**self._callable_row(ref, name=name, run=run, iteration=iteration,
                                             num_classes=num_classes, image_shape=image_shape,
                                             dataset=dataset, kwargs=kwargs))

    def _callable_row(self, ref: str, *, name: str, run: str | None, iteration: int, num_classes: int,
                      image_shape: Sequence[int], dataset: str, kwargs: Mapping[str, Any],
                      base: str | os.PathLike | None = None) -> dict:
        kwargs = dict(kwargs)
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"factory keyword arguments must be JSON-serialisable ({exc})") from exc
        files = file_arguments(kwargs, base)
        kwargs.update({key: str(f) for key, f in files.items()})
        gen = CallableGenerator(ref, num_classes=num_classes, image_shape=image_shape, **kwargs)
        gen.name = name
        gen.sample(2, seed=0)
        config: dict[str, Any] = {"kwargs": kwargs}
        if files:
            config["files"] = {key: sha256_file(f) for key, f in sorted(files.items())}
        return dict(path=ref, name=name, run=run or name, kind="callable", architecture="callable",
                    config=config, dataset=dataset, image_shape=gen.image_shape,
                    num_classes=gen.num_classes, iteration=iteration)

    def register_samples(self, path: str | os.PathLike, *, name: str, run: str | None = None,
                         iteration: int = 0, num_classes: int | None = None, dataset: str = "unknown",
                         replace: bool = False) -> int:
        """Register a set of generated images (a folder of class subfolders, or an npz with
        ``images`` and ``labels``) as a generator of kind ``samples``; see :mod:`zoo.samples`.

        The set is read once to check it; its content hash is recorded. ``num_classes`` defaults
        to the largest label + 1. ``replace=True`` lets sampling draw a class with replacement
        when more images are asked for than are stored (with a warning); otherwise that is an error.
        The files stay where they are (a path inside the zoo folder is recorded relative to it).
        """
        name = self._check_new_name(name)
        return self.add(**self._samples_row(path, name=name, run=run, iteration=iteration,
                                            num_classes=num_classes, dataset=dataset, replace=replace))

    def _samples_row(self, path: str | os.PathLike, *, name: str, run: str | None, iteration: int,
                     num_classes: int | None, dataset: str, replace: bool) -> dict:
        abs_path, _ = self._relative(path, folder_ok=True)
        gen = SampleSetGenerator.from_path(abs_path, num_classes=num_classes, replace=replace)
        config = {"replace": gen.replace, "format": "npz" if abs_path.is_file() else "folder",
                  "count": len(gen), "class_counts": gen.class_counts}
        return dict(path=abs_path, name=name, run=run or name, kind="samples", architecture="samples",
                    config=config, dataset=dataset, image_shape=gen.image_shape,
                    num_classes=gen.num_classes, iteration=iteration)

    # ------------------------------------------------------------------ bulk import

    def import_manifest(self, manifest: str | os.PathLike, copy: bool = True) -> list[int]:
        """Register every member listed in a CSV manifest, all or nothing; return their ids.

        Columns (see :data:`MANIFEST_COLUMNS`): ``name``, ``kind`` (native, torchscript, callable or
        samples) and ``path`` are required; ``run`` (default: the name), ``iteration``,
        ``latent_dim``, ``num_classes``, ``image_shape`` (``28x28``, ``64x64x3``), ``kwargs`` (the
        factory's arguments as a JSON object), ``dataset`` and ``replace`` (samples: true/false)
        as each kind needs. A relative path (and a relative file named in ``kwargs``) is relative
        to the manifest's folder. Every member is checked (loaded and sampled) first; then all rows
        are inserted in one SQLite transaction, so on any error nothing is registered (and files
        copied into ``foreign/`` are removed). Errors name the manifest row and column.
        """
        manifest = Path(manifest).expanduser()
        if not manifest.is_file():
            raise FileNotFoundError(f"manifest {str(manifest)!r} not found")
        base = manifest.resolve().parent
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise ValueError(f"manifest {str(manifest)!r} is empty; its first line names the "
                                 f"columns ({', '.join(MANIFEST_COLUMNS)})")
            unknown = [h for h in header if h not in MANIFEST_COLUMNS]
            missing = [h for h in ("name", "kind", "path") if h not in header]
            if unknown or missing:
                raise ValueError(f"manifest {str(manifest)!r}: "
                                 + (f"unknown column(s) {unknown}; " if unknown else "")
                                 + (f"missing column(s) {missing}; " if missing else "")
                                 + f"columns are {', '.join(MANIFEST_COLUMNS)}")
            rows = [({(k or "").strip(): (v or "").strip() for k, v in r.items() if k is not None},
                     reader.line_num) for r in reader]
        if not rows:
            raise ValueError(f"manifest {str(manifest)!r} lists no members")
        existing = set(self.names())
        seen: dict[str, int] = {}
        prepared: list[tuple[int, int, tuple]] = []
        copies: list[Path] = []
        try:
            for number, (cells, line) in enumerate(rows, start=1):
                where = f"manifest {str(manifest)!r}, row {number} (line {line})"
                try:
                    values = self._manifest_row(cells, base, existing, seen, copy, copies)
                except _ManifestCellError as exc:
                    raise ValueError(f"{where}, column {exc.column!r}: {exc.message}") from exc.__cause__
                seen[values[0]] = number
                prepared.append((number, line, values))
            with self._connect(write=True) as con:
                if any(v[2] == "samples" for *_, v in prepared):
                    self._allow_samples(con)
                with con:
                    ids = []
                    for number, line, values in prepared:
                        try:
                            ids.append(self._insert(con, values))
                        except ValueError as exc:
                            raise ValueError(f"manifest {str(manifest)!r}, row {number} (line {line}), "
                                             f"column 'name': {exc}") from exc
        except BaseException:
            for c in copies:
                c.unlink(missing_ok=True)
            raise
        log.info("catalog %s: imported %d generators from %s", self.path, len(ids), manifest)
        return ids

    def _manifest_row(self, cells: Mapping[str, str], base: Path, existing: set[str],
                      seen: Mapping[str, int], copy: bool, copies: list[Path]) -> tuple:
        """Check and build one manifest row; return its prepared values (see :meth:`_prepare_row`)."""
        name = cells.get("name", "")
        if not name:
            raise _ManifestCellError("name", "empty; every member needs a name")
        if name in existing:
            raise _ManifestCellError("name", f"a generator named {name!r} is already in the catalog")
        if name in seen:
            raise _ManifestCellError("name", f"{name!r} is also the name of row {seen[name]}")
        kind = cells.get("kind", "")
        if kind not in KINDS:
            raise _ManifestCellError("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        raw_path = cells.get("path", "")
        if not raw_path:
            raise _ManifestCellError("path", "empty")
        path: str | Path = raw_path
        if kind != "callable":
            p = Path(raw_path).expanduser()
            path = p if p.is_absolute() else base / p
            if not (path.is_file() or (kind == "samples" and path.is_dir())):
                raise _ManifestCellError("path", f"{str(path)!r} not found (a relative path is "
                                         "relative to the manifest's folder)")

        def integer(column: str, required: bool) -> int | None:
            text = cells.get(column, "")
            if not text:
                if required:
                    raise _ManifestCellError(column, f"a {kind} member needs {column}")
                return None
            try:
                return int(text)
            except ValueError:
                raise _ManifestCellError(column, f"must be an integer, got {text!r}") from None

        def unused(*columns: str) -> None:
            for column in columns:
                if cells.get(column, ""):
                    raise _ManifestCellError(column, f"does not apply to a {kind} member; leave it empty")

        iteration = integer("iteration", False)
        if iteration is not None and iteration < 0:
            raise _ManifestCellError("iteration", f"must be a non-negative integer, got {iteration}")
        run = cells.get("run", "") or None
        dataset = cells.get("dataset", "") or "unknown"
        shape_text = cells.get("image_shape", "")
        shape = None
        if shape_text:
            try:
                shape = parse_image_shape(shape_text)
            except ValueError as exc:
                raise _ManifestCellError("image_shape", str(exc)) from None
        try:
            if kind == "native":
                unused("latent_dim", "kwargs", "replace", "num_classes", "image_shape")
                row: dict[str, Any] = {"path": path, "name": name, "kind": "native", "dataset": dataset}
                row["run"] = run or name
                if iteration is not None:
                    row["iteration"] = iteration
                from zoo.checkpoint import load_generator

                load_generator(path, device="cpu").sample(2, seed=0)
            elif kind == "torchscript":
                unused("kwargs", "replace")
                latent = integer("latent_dim", True)
                nc = integer("num_classes", True)
                if shape is None:
                    raise _ManifestCellError("image_shape", "a torchscript member needs image_shape")
                row, copied = self._torchscript_row(path, name=name, run=run, iteration=iteration or 0,
                                                    latent_dim=latent, num_classes=nc, image_shape=shape,
                                                    dataset=dataset, copy=copy)
                if copied is not None:
                    copies.append(copied)
            elif kind == "callable":
                unused("latent_dim", "replace")
                nc = integer("num_classes", True)
                if shape is None:
                    raise _ManifestCellError("image_shape", "a callable member needs image_shape")
                text = cells.get("kwargs", "")
                try:
                    kwargs = json.loads(text) if text else {}
                except json.JSONDecodeError as exc:
                    raise _ManifestCellError("kwargs", f"not valid JSON ({exc})") from None
                if not isinstance(kwargs, dict):
                    raise _ManifestCellError("kwargs", f"must be a JSON object such as {{\"a\": 1}}, got {text!r}")
                row = self._callable_row(str(path), name=name, run=run, iteration=iteration or 0,
                                         num_classes=nc, image_shape=shape, dataset=dataset,
                                         kwargs=kwargs, base=base)
            else:
                unused("latent_dim", "kwargs")
                text = cells.get("replace", "").lower()
                if text not in ("", "true", "false", "1", "0", "yes", "no"):
                    raise _ManifestCellError("replace", f"must be true or false, got {cells['replace']!r}")
                nc = integer("num_classes", False)
                row = self._samples_row(path, name=name, run=run, iteration=iteration or 0, num_classes=nc,
                                        dataset=dataset, replace=text in ("true", "1", "yes"))
                if shape is not None and tuple(row["image_shape"]) != shape:
                    raise _ManifestCellError("image_shape", f"{shape} given, but the set holds "
                                             f"{tuple(row['image_shape'])} images")
            return self._prepare_row(row)
        except _ManifestCellError:
            raise
        except (ValueError, FileNotFoundError, KeyError) as exc:
            text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            # The column named first in the message (a shape error names image_shape, then
            # latent_dim); errors naming none come from reading or running the file: 'path'.
            words = {"latent_dim": "latent_dim", "num_classes": "num_classes", "image_shape": "image_shape",
                     "kwargs": "kwargs", "keyword argument": "kwargs"}
            named = [(text.find(w), c) for w, c in words.items() if w in text]
            column = min(named)[1] if named else "path"
            raise _ManifestCellError(column, text) from exc
