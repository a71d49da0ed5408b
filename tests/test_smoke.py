import jax
import numpy as np

import rmtheory as rt


def test_import_and_float64():
    inst = rt.random_instance(jax.random.PRNGKey(0), 2, 4)
    assert inst.logits.dtype == np.float64
