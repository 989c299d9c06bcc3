"""Flags that several commands share, defined once so that they read and behave the same.

Each ``add_*`` adds one flag (or one group) to a sub-command's parser. :func:`add_common` adds the
verbosity flags to every sub-command, so ``-v``/``-q`` work after the command name too.
"""

from __future__ import annotations

import argparse

__all__ = [
    "add_common",
    "add_seed",
    "add_device",
    "add_data",
    "add_out",
    "add_selected",
    "add_overwrite",
    "log_level",
]


def add_common(p: argparse.ArgumentParser) -> None:
    """``-v``/``--verbose`` (repeatable), ``-q``/``--quiet`` and ``--json``, accepted after the
    sub-command (``--json``: the command's result as one JSON object on stdout)."""
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="errors only")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print one JSON object (paths written, key figures) on stdout, nothing else")


def log_level(args: argparse.Namespace) -> int:
    """The logging level the verbosity flags ask for (warnings by default)."""
    import logging

    if getattr(args, "quiet", False):
        return logging.ERROR
    v = getattr(args, "verbose", 0) or 0
    return logging.WARNING if v == 0 else logging.INFO if v == 1 else logging.DEBUG


def add_seed(p: argparse.ArgumentParser, what: str = "every random choice") -> None:
    """``--seed``: the root seed; stage seeds derive from it (:mod:`ensemble.seeds`)."""
    p.add_argument("--seed", type=int, default=0,
                   help=f"root seed for {what} (default 0); the same as quickstart's --seed")


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps."""
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")


def add_data(p: argparse.ArgumentParser, *, required: bool = False, default: str | None = None,
             help_dataset: str | None = None) -> None:
    """``--dataset`` (MedMNIST flag, .npz file or ImageFolder), ``--data-root`` and ``--size``."""
    p.add_argument("--dataset", required=required, default=default,
                   help=help_dataset or "MedMNIST flag (e.g. pneumoniamnist), an .npz file or an "
                   "ImageFolder tree")
    p.add_argument("--data-root", default=None,
                   help="folder holding <flag>.npz (default: $GAN_ENSEMBLE_DATA; online: download)")
    p.add_argument("--size", type=int, default=28, choices=(28, 64, 128, 224),
                   help="image size of a MedMNIST flag: 28 (<flag>.npz, default) or MedMNIST+'s "
                   "64, 128, 224 (<flag>_<size>.npz)")


def add_out(p: argparse.ArgumentParser, help: str, *, default: str | None = None) -> None:
    """``--out``: where the command writes."""
    p.add_argument("--out", required=default is None, default=default, help=help)


def add_selected(p: argparse.ArgumentParser) -> None:
    """``--zoo`` and ``--selected``: the zoo and the ensemble ``gan-ensemble search`` picked in it."""
    p.add_argument("--zoo", required=True, help="zoo folder holding catalog.sqlite")
    p.add_argument("--selected", required=True, help="selected.json from `gan-ensemble search`")


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: replace what an earlier run of the same command wrote (never other files)."""
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} that an earlier run of this command wrote "
                   "(a folder holding anything else is refused)")
