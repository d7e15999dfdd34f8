"""Hypothesis settings for the property tests: modest example counts, no deadline (the
machine is shared), so the whole directory runs in well under 30 s."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "properties",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROPS = settings.get_profile("properties")
