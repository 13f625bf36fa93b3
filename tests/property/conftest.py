"""Hypothesis profiles for the property tests: fast and repeatable by default.

`ci` (the default) runs a fixed set of examples so a run in `.ci/run` is quick and the same
every time; `explore` (HYPOTHESIS_PROFILE=explore) searches longer with fresh randomness.
No deadline: the machine running the suite may be busy.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
