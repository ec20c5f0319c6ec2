"""Hypothesis profiles (dev: default run, ci: more examples, repro: derandomized) and shared
fixtures. Select with ``--hypothesis-profile``; the default is ``dev``."""
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=100, **_COMMON)
settings.register_profile("ci", max_examples=300, **_COMMON)
settings.register_profile("repro", max_examples=100, derandomize=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# monotonicity properties run at least this many examples in the default run (issue 3)
MONOTONE_EXAMPLES = 300
