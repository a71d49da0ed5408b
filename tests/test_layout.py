"""Layout rule: every Python file of the package stays at most 500 lines (split along a seam beyond that)."""

from pathlib import Path

MAX_LINES = 500
PACKAGE = Path(__file__).resolve().parents[1] / "rmtheory"


def test_every_package_file_is_at_most_500_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"files over {MAX_LINES} lines: {long}"
