"""The ``gan-ensemble`` command line: one sub-command per pipeline stage.

Each stage lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func(args) -> int``. Errors the user can fix are printed as one line, without
a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys

from ensemble.cli.common import add_common, log_level

__all__ = ["main", "build_parser"]

# Sub-command modules, in the order they appear in --help.
COMMANDS = ("zoo", "score", "search", "export", "evaluate", "quickstart")


def build_parser() -> argparse.ArgumentParser:
    from ensemble.version import __version__

    parser = argparse.ArgumentParser(
        prog="gan-ensemble",
        description="Pick a Pareto-optimal ensemble of GAN generators and export its synthetic data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only")
    for name in COMMANDS:
        importlib.import_module(f"ensemble.cli.{name}").register(sub)
    for p in _subparsers(parser):
        add_common(p)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every sub-command parser, nested ones included (``zoo train``)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in dict.fromkeys(action.choices.values()):
                found.append(p)
                found.extend(_subparsers(p))
    return found


def main(argv: list[str] | None = None) -> int:
    """Run one command. A command returns a JSON-able dict of what it wrote and its key figures;
    with ``--json`` that dict is the one thing printed on stdout (human output goes to stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    logging.basicConfig(level=log_level(args), format="%(levelname)s %(name)s: %(message)s")
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr if as_json else stdout):
            result = args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, PermissionError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"gan-ensemble {args.command}: error: {msg}", file=sys.stderr)
        if as_json:
            print(json.dumps({"ok": False, "command": _command(args), "error": str(msg)}), file=stdout)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if isinstance(result, dict):
        if as_json:
            payload = {"ok": True, "command": _command(args), **result}
            print(json.dumps(payload, default=str, sort_keys=True), file=stdout)
        return 0
    return int(result or 0)


def _command(args: argparse.Namespace) -> str:
    action = getattr(args, "action", None) or getattr(args, "zoo_command", None)
    return f"{args.command} {action}" if isinstance(action, str) else str(args.command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
