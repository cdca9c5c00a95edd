"""Shared fixtures. Reference data are read only through :mod:`mesodyn.reference`."""

from __future__ import annotations

import pytest

from mesodyn.reference import ENV_VAR, open_reference, reference_dir


@pytest.fixture(scope="session")
def reference():
    """Loader of the authors' reference data sets; skips (with the reason) where the folder is absent."""
    if reference_dir() is None:
        pytest.skip(f"reference data folder not found (set {ENV_VAR}); CI always has it")
    cache: dict = {}

    def load(name: str):
        if name not in cache:
            cache[name] = open_reference(name)
        return cache[name]

    return load


@pytest.fixture
def torch_one_thread():
    """One torch thread: on tiny tensors a second thread only waits on a shared 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
