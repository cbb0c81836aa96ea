"""``lgd book``: the workbook as a static website, student and instructor editions (``lgd_tutorial.book``)."""

from __future__ import annotations

import argparse

HELP = ("the workbook as a website: the executed notebooks, the README and notebooks/PAPER.md "
        "(student and instructor editions)")
EDITIONS = ("student", "instructor")          # as book.EDITIONS (checked by a test)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="folder for the editions (default: build/book/ of the repository)")
    p.add_argument("--editions", nargs="+", choices=EDITIONS, default=list(EDITIONS),
                   help="which editions to build (default: both)")
    p.add_argument("--executed", default=None,
                   help="folder of the executed notebooks (default: notebooks/executed/, written by make)")
    p.add_argument("--allow-unexecuted", action="store_true",
                   help="build pages from the stored notebooks (no outputs) where a notebook has no executed copy")


def run(args) -> int:
    from ..book import build_book
    from . import fail

    try:
        build_book(args.out, args.editions, args.executed, args.allow_unexecuted)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        return fail("book", e)
    return 0
