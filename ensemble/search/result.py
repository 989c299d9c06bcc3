"""The selected ensemble G*: member names, objective values, and how it was chosen.

:class:`Ensemble` is the record; its ``selected.json`` form (``to_dict``, sorted keys, two-space
indent) is written by :meth:`Ensemble.save` and read by :meth:`Ensemble.load`, the one writer and
reader of that file (:mod:`ensemble.search.outputs` goes through them). The export and downstream
stages read it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zoo.io import atomic_write

__all__ = ["Ensemble"]


@dataclass
class Ensemble:
    """A chosen ensemble. ``members`` are generator names as in the catalog and score tables.

    ``objectives``: the values of the objectives it was searched on (``{"intra-d": ..., "inter-d":
    ...}`` by default); ``meta["objectives"]`` names them in order.
    """

    members: list[str]
    intra_d: float = float("nan")
    inter_d: float = float("nan")
    rule: str = "manual"
    rule_params: dict = field(default_factory=dict)
    note: str = ""
    meta: dict = field(default_factory=dict)
    objectives: dict = field(default_factory=dict)  # {objective name: value}, as searched

    def __post_init__(self) -> None:
        self.members = [str(m) for m in self.members]
        if len(self.members) == 0:
            raise ValueError("an ensemble needs at least one member; got an empty list")
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"ensemble members repeat: {self.members}")

    def verify(self, catalog) -> None:
        """Refuse a member whose catalog entry is not the generator that was scored.

        ``selected.json`` records each member's sha256 as scored (``meta["members_sha256"]``);
        a zoo retrained or re-registered under the same names has other files, and exporting or
        evaluating from it would silently use other generators. Older files without the record
        pass. Raises ``ValueError`` naming the member, both hashes and the fix.
        """
        recorded = (self.meta or {}).get("members_sha256") or {}
        for name in self.members:
            want = recorded.get(name)
            if not want:
                continue
            try:
                have = str(catalog.get(name)["sha256"])
            except KeyError:
                raise ValueError(f"ensemble member {name!r} is not in the catalog {catalog!r}; pass the zoo "
                                 "the ensemble was selected from") from None
            if have != want:
                raise ValueError(
                    f"ensemble member {name!r} in {catalog!r} has sha256 {have[:12]}..., but "
                    f"{want[:12]}... was scored and selected: the zoo changed since the search (retrained "
                    "or re-registered under the same name). Pass the zoo the ensemble was selected from, "
                    "or score and search this zoo again")

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.members)

    def to_dict(self) -> dict:
        """The JSON-able fields, as written to ``selected.json``."""
        return asdict(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``selected.json`` atomically."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        return atomic_write(path, lambda p: p.write_text(text + "\n"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ensemble:
        """Read a ``selected.json`` (unknown keys are ignored).

        Raises:
            FileNotFoundError: no such file. ValueError: not JSON, or no ``members`` list.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"selected-ensemble file {str(p)!r} not found; run `gan-ensemble search` first")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p} is not valid JSON ({exc})") from exc
        if "members" not in d:
            raise ValueError(f"{p} has no 'members' list; is it a selected.json from `gan-ensemble search`?")
        known = {"members", "intra_d", "inter_d", "rule", "rule_params", "note", "meta", "objectives"}
        return cls(**{k: v for k, v in d.items() if k in known})
