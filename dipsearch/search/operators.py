"""The old import path of dipsearch.search.ga.operators, kept so that earlier code and notebooks still import it."""

import sys

from .ga import operators as _module

sys.modules[__name__] = _module  # the same module object: attributes and monkeypatches are shared
