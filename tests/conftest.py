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
