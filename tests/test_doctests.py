"""The runnable examples in the docstrings of the main entry points.

Each module's examples run under :func:`doctest.testmod`; a module must have at least one example and none
may fail. The examples are small (well under 2 s each after import) and print rounded floats.
"""

import doctest
import importlib

import pytest

MODULES = ["rmtheory._flow", "rmtheory._rm_eval", "rmtheory.evaluate", "rmtheory._verify", "rmtheory._teaching_rate"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.attempted >= 1, f"{name} has no docstring examples"
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples failed in {name}"
