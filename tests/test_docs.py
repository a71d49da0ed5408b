"""The documentation as a product: the API reference lists every public name, the CLI reference is the parsers'
own help, user-facing text speaks of the tool and not of how it was made, and the README stays a front page."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC = ("rmtheory", "rmtheory.evaluate", "rmtheory.io", "rmtheory.figures", "rmtheory.lm")


# --------------------------------------------------------------------------------------------------
# API reference
# --------------------------------------------------------------------------------------------------

def _api_entries(text: str) -> list[str]:
    return re.findall(r"^::: ([\w.]+)\s*$", text, re.M)


def missing_from_reference(text: str) -> list[str]:
    """The public names (every ``__all__`` of :data:`PUBLIC`) without a ``::: module.name`` entry in ``text``."""
    entries = set(_api_entries(text))
    return [f"{m}.{n}" for m in PUBLIC for n in importlib.import_module(m).__all__ if f"{m}.{n}" not in entries]


def test_api_reference_lists_every_public_name():
    text = (DOCS / "api.md").read_text()
    assert missing_from_reference(text) == []
    for entry in _api_entries(text):  # and nothing that does not exist
        module, _, name = entry.rpartition(".")
        assert hasattr(importlib.import_module(module), name), entry


def test_api_coverage_check_fails_when_a_name_is_dropped():
    text = (DOCS / "api.md").read_text()
    dropped = text.replace("::: rmtheory.time_to_gamma\n", "", 1)
    assert dropped != text and missing_from_reference(dropped) == ["rmtheory.time_to_gamma"]


# --------------------------------------------------------------------------------------------------
# CLI reference and --help
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_reference() -> str:
    from rmtheory._cli_docs import markdown

    return markdown()


def _sections(md: str) -> dict[str, str]:
    parts = re.split(r"^#+ `([^`]+)`\n", md, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_cli_reference_has_every_command_with_a_description_and_examples(cli_reference):
    from rmtheory.cli import SUBCOMMANDS

    sections = _sections(cli_reference)
    assert "rmtheory" in sections and all(f"rmtheory {c}" in sections for c in SUBCOMMANDS)
    assert {"rmtheory lm run", "rmtheory lm grid", "rmtheory lm predict"} <= set(sections)
    for name, body in sections.items():
        help_text = body.split("```text\n", 1)[1]
        assert f"usage: {name}" in help_text, name
        assert re.search(r"^examples?:", help_text, re.M | re.I), f"{name}: no examples in --help"
        usage_end = help_text.index("\n\n")
        description = help_text[usage_end:].strip().split("\n\n", 1)[0]
        assert len(description) > 30 and not description.startswith(("positional", "options")), name


def test_cli_page_is_generated():
    assert "<!-- cli-reference -->" in (DOCS / "cli.md").read_text()
    hooks = (DOCS / "hooks.py").read_text()
    assert "rmtheory._cli_docs" in hooks


# --------------------------------------------------------------------------------------------------
# User-facing text speaks of the tool
# --------------------------------------------------------------------------------------------------

PROCESS_WORDS = re.compile(
    r"\bissues?\b(?!\s+(?:tracker))|\bsessions?\b|\bthis change\b|\bcommit of this\b|\bpre-filing\b|\bPR\s*#?\d+",
    re.I)
"""Words about how the project was made (its issue tracker, its work sessions, "this change"), which a user has no
access to: history belongs in CHANGELOG.md and git."""


def process_words(text: str) -> list[str]:
    return [m.group(0) for m in PROCESS_WORDS.finditer(text)]


def _docstrings(path: Path) -> str:
    import ast

    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                out.append(doc)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("add_argument", "add_parser",
                                                                                "ArgumentParser"):
            for kw in node.keywords:  # help=, description=, epilog= given as literals
                if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    out.append(kw.value.value)
    return "\n".join(out)


def _user_facing():
    yield "README.md", (ROOT / "README.md").read_text()
    yield "paper_claims.md", (ROOT / "paper_claims.md").read_text()
    yield "CITATION.cff", (ROOT / "CITATION.cff").read_text()
    for p in sorted(DOCS.rglob("*.md")):
        yield str(p.relative_to(ROOT)), p.read_text()
    for folder in ("rmtheory", "benchmarks", "experiments"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield str(p.relative_to(ROOT)), _docstrings(p)


def test_user_facing_text_has_no_process_words(cli_reference):
    found = {name: process_words(text) for name, text in _user_facing()}
    found["rmtheory --help (every command)"] = process_words(cli_reference)
    assert {k: v for k, v in found.items() if v} == {}


@pytest.mark.parametrize("sentence", [
    "Issue 16, second session (measured on the same VM",   # the README's benchmark diary before the docs site
    "Tried in the second session and not kept",
    "a maintained JAX NN library, as the LM issue asks",
    "This session's code changes are not the cause",
    "run 4, final code (commit of this table)",
    "the baseline for the target of issue 11",
])
def test_process_word_check_fails_on_the_old_wording(sentence):
    assert process_words(sentence)


# --------------------------------------------------------------------------------------------------
# README: a front page
# --------------------------------------------------------------------------------------------------

def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200 and len(text) <= 15_000
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[:2] == ["Install and run", "Quickstart"]
    for target in re.findall(r"\]\(((?:docs/)?[\w./-]+\.(?:md|cff))(?:#[\w-]+)?\)", text) + ["LICENSE"]:
        assert (ROOT / target).is_file(), target
