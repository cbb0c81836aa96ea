"""The ``lgd`` command: one argparse tree, one module per command group.

Each module of this package defines one command (or group of commands):
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; a group adds
sub-commands whose parsers carry their own ``run``. These modules import
only the standard library at the top, and the work's modules inside
``run``, so ``lgd --help`` answers at once.

Flags mean the same everywhere: ``--out`` is always a folder,
``--batch-size`` counts clips (videos for evaluation), ``--device`` is
auto | cpu | cuda, ``--workers`` counts processes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("models", "summary", "data", "prepare", "train", "evaluate", "predict", "bench", "study", "reach-study", "two-stream",
            "precision", "viz", "features", "export", "gpu-check", "exercises", "workbook", "book")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgd",
                                     description="LGD networks: models, data, training, evaluation and visualisation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMANDS:
        module = importlib.import_module(f".{name.replace('-', '_')}", __name__)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        if hasattr(module, "run"):                   # a group's sub-commands set their own
            p.set_defaults(run=module.run)
    _describe_sub_commands(parser)
    return parser


def _describe_sub_commands(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command that has a help line but no description that line as its description
    (``lgd prepare resize --help`` then says what the command does)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name]
                _describe_sub_commands(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv                                   # the command as typed (provenance records it)
    if args.command is None:
        parser.print_help()
        return 0
    out = getattr(args, "out", None)
    if isinstance(out, str) and os.path.exists(out) and not os.path.isdir(out):     # every --out is a folder
        return fail(args.command, f"--out {out} is an existing file; --out names a folder to write into")
    return int(args.run(args) or 0)


def fail(command: str, error: Exception | str) -> int:
    """Print ``lgd COMMAND: error: ...`` to stderr and return the usage-error status 2."""
    print(f"lgd {command}: error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
