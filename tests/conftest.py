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
# gcsfs's zonal / hierarchical-namespace support asks the Storage Control gRPC
# API for each bucket's layout, which the GCS emulator (tests/fixtures/gcs.py)
# does not serve, so every open on gs:// would wait on it; gcsfs reads this
# when it is first imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

pytest_plugins = [
    "tests.fixtures.corpus",
    "tests.fixtures.vocab",
    "tests.fixtures.dataset",
    "tests.fixtures.records",
    "tests.fixtures.gcs",
    "tests.fixtures.dataflow",
]
