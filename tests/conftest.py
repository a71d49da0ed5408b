"""Test configuration: 64-bit JAX and hypothesis profiles.

* 64-bit mode is switched on once for the whole suite with :func:`rmtheory.enable_x64` (the one switch; the
  tests of the switch itself run in subprocesses).

* ``ci`` (default; also when CI=true): bounded, derandomized, no deadline — same examples every run.
* ``dev``: many more examples, random; select with ``HYPOTHESIS_PROFILE=dev pytest``.

* One JAX persistent compilation cache, in a fresh directory for this test session only, shared by the
  pytest-xdist workers and by every command the tests run in a subprocess (``rmtheory figures``, ``verify``, the
  README's commands): a function with the same shapes is compiled once for the whole run, not once per worker,
  test and subprocess (the LM studies' fixtures and resume tests build the same RL updates again and again; the
  property tests meet the same shapes on both workers). Every compilation is kept, however short (on 2 cores
  this took the suite from about 11.5 to 10.3 minutes). A cache hit runs the same compiled code, so every number
  is the same (the resume tests compare reruns to uninterrupted runs exactly). It is the commands' own cache
  (``rmtheory/_cache.py``) pointed elsewhere: the process that starts the session (xdist's controller, or the
  only process with ``-n0``) makes the directory and sets ``RMTHEORY_CACHE_DIR`` to it, which the workers and
  every ``rmtheory`` command they start inherit; each process of the suite calls
  :func:`rmtheory.enable_compilation_cache` on it, and plain Python children (the notebook's kernel, ``python
  -c`` scripts) read it from ``JAX_COMPILATION_CACHE_DIR`` when they import JAX. The directory is removed when
  the session ends. ``tests/test_cache.py`` gives its commands their own directories.
"""

import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

import rmtheory

rmtheory.enable_x64()

_OWN_CACHE = None
if "PYTEST_XDIST_WORKER" not in os.environ or "RMTHEORY_CACHE_DIR" not in os.environ:  # the session's first
    # process (a worker finds the directory its controller made in the environment it inherited)
    _OWN_CACHE = os.environ["RMTHEORY_CACHE_DIR"] = tempfile.mkdtemp(prefix="rmtheory-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
rmtheory.enable_compilation_cache(os.environ["RMTHEORY_CACHE_DIR"], min_compile_time_secs=0.0)


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


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
