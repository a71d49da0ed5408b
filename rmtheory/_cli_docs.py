"""The command-line reference as Markdown, generated from the argparse parsers themselves (the docs site's CLI
page is this text, so it cannot drift from ``--help``).

:func:`markdown` walks the full parser of :func:`rmtheory.cli.build_parser` and writes one section per command and
subcommand: its heading, and its ``--help`` text at a fixed width.
"""

from __future__ import annotations

import argparse
import os

WIDTH = 100
"""Column width of the help texts on the page."""


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases point at the same parser
                    seen.add(id(sub))
                    yield name, sub


def _walk(parser: argparse.ArgumentParser, path: tuple):
    yield path, parser
    for name, sub in _subcommands(parser):
        yield from _walk(sub, path + (name,))


def markdown(parser: argparse.ArgumentParser | None = None, heading: str = "##") -> str:
    """One section per command: ``## `rmtheory lm run``` and its ``--help`` in a text block."""
    if parser is None:
        from .cli import build_parser

        parser = build_parser()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse sizes its help to the terminal
    try:
        parts = []
        for path, p in _walk(parser, ("rmtheory",)):
            p.prog = " ".join(path)
            depth = heading + "#" * min(len(path) - 1, 2)
            parts.append(f"{depth} `{' '.join(path)}`\n\n```text\n{p.format_help().rstrip()}\n```\n")
        return "\n".join(parts)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
