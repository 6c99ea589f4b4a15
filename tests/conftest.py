"""Settings for the whole test suite."""

from hypothesis import settings

# No per-example deadline: a deadline is a timed test, and on a loaded two-core machine (lab tests running beside
# the property tests) a slow example is a scheduling accident, not a finding. Speed is measured in bench/.
settings.register_profile("mcrd", deadline=None)
settings.load_profile("mcrd")
