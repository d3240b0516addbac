"""Shared pytest configuration.

Hypothesis: the ``ci`` profile (loaded when the ``CI`` environment variable is set) is
derandomized, so CI runs the same examples every time; locally the ``dev`` profile explores
randomly. ``HYPOTHESIS_PROFILE`` overrides either.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

HAS_CUDA = torch.cuda.is_available()

# Under pytest-xdist every worker is its own process: one torch thread each, or the workers'
# thread pools oversubscribe the cores (and tiny CPU ops spend their time spinning).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> torch.device:
    """Run a test on the CPU and, when one is present, on CUDA."""
    return torch.device(request.param)


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test (tiny networks: fastest, immune to a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
