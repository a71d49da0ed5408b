"""Test configuration: 64-bit JAX and hypothesis profiles.

* 64-bit mode is switched on once for the whole suite with :func:`rmtheory.enable_x64` (the one switch; the
  tests of the switch itself run in subprocesses).

* ``ci`` (default; also when CI=true): bounded, derandomized, no deadline — same examples every run.
* ``dev``: many more examples, random; select with ``HYPOTHESIS_PROFILE=dev pytest``.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

import rmtheory

rmtheory.enable_x64()

settings.register_profile(
    "ci", max_examples=15, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# --------------------------------------------------------------------------------------------------
# Parallel runs (pytest-xdist, ``-n auto`` in pyproject's addopts)
# --------------------------------------------------------------------------------------------------
# A shared fixture is made once per *worker*, so every test that reads one must run on the worker that made it:
# tests reading a session fixture of this suite (the ``tiny`` pipeline run and the quick studies, which depend
# on one another) form one group, and tests reading a module fixture (the quick figures' background run, a
# module's scored model) form one group per module. Everything else is scheduled test by test. (xdist 3.8 marks a
# group by renaming the test's node id, which pytest 9 ignores: hence pytest < 9 in the test extra.)


def _shared_scope(item):
    """"session", "module" or None: the widest scope among this suite's own fixtures (not pytest's or a
    plugin's, whose base id is empty) that ``item`` reads."""
    scopes = set()
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for d in defs:
            if d.baseid and d.scope in ("session", "module"):
                scopes.add(d.scope)
    return "session" if "session" in scopes else "module" if scopes else None


@pytest.hookimpl(tryfirst=True)  # the markers must be there before xdist reads them (its own modifyitems hook)
def pytest_collection_modifyitems(config, items):

    for item in items:
        scope = _shared_scope(item)
        if scope == "session":
            item.add_marker(pytest.mark.xdist_group("session-fixtures"))
        elif scope == "module":
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
