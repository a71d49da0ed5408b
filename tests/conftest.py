"""Test configuration: 64-bit JAX and hypothesis profiles.

* 64-bit mode is switched on once for the whole suite with :func:`rmtheory.enable_x64` (the one switch; the
  tests of the switch itself run in subprocesses).

* ``ci`` (default; also when CI=true): bounded, derandomized, no deadline — same examples every run.
* ``dev``: many more examples, random; select with ``HYPOTHESIS_PROFILE=dev pytest``.
"""

import os

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
