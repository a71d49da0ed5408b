"""Test configuration: hypothesis profiles.

* ``ci`` (default; also when CI=true): bounded, derandomized, no deadline — same examples every run.
* ``dev``: many more examples, random; select with ``HYPOTHESIS_PROFILE=dev pytest``.
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "ci", max_examples=15, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
