"""Shared pytest configuration.

Fixtures that several test modules use (a demo corpus, trained vocabularies, a
built dataset) live in `tests/fixtures/`, one module per kind, and are made
once per test session (per xdist worker).
"""

import os

# Tests see 8 simulated CPU devices, as the multi-device code paths need; this
# must happen before JAX is first imported anywhere in the session.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = [
    "tests.fixtures.corpus",
    "tests.fixtures.vocab",
    "tests.fixtures.dataset",
    "tests.fixtures.records",
    "tests.fixtures.gcs",
    "tests.fixtures.dataflow",
]
