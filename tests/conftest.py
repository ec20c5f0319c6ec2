"""Hypothesis profiles (dev: default run, ci: more examples, repro: derandomized) and shared
fixtures. Select with ``--hypothesis-profile`` or ``$HYPOTHESIS_PROFILE``; the default is
``dev``, or ``repro`` under CI (``CI=true``) so that a submission's CI run is reproducible — new
random examples are explored by every developer run."""
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=100, **_COMMON)
settings.register_profile("ci", max_examples=300, **_COMMON)
settings.register_profile("repro", max_examples=100, derandomize=True, **_COMMON)
_DEFAULT = "repro" if os.environ.get("CI", "").lower() in ("1", "true") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _DEFAULT))

# monotonicity properties run at least this many examples in the default run (issue 3)
MONOTONE_EXAMPLES = 300
