"""``python -m rmtheory.evaluate``: the same as ``rmtheory evaluate``."""

import sys

from .cli import _standalone

sys.exit(_standalone())
