"""Access to the authors' reference data (``../shared/reference`` next to the checkout).

Tests, benchmarks and docs read the reference files only through :func:`reference_dir` and
:func:`open_reference`. The folder can be moved with the ``MESODYN_REFERENCE_DIR`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

__all__ = ["ENV_VAR", "reference_dir", "open_reference"]

ENV_VAR = "MESODYN_REFERENCE_DIR"
_DEFAULT = Path(__file__).resolve().parents[3] / "shared" / "reference"


def reference_dir() -> Path | None:
    """The reference folder, or ``None`` when it does not exist."""
    path = Path(os.environ.get(ENV_VAR, _DEFAULT)).expanduser()
    return path if path.is_dir() else None


def open_reference(name: str) -> xr.Dataset:
    """Load one reference data set fully into memory.

    ``name`` is ``fput``, ``fene``, ``kdv``, ``allen_cahn`` or ``allen_cahn_2d`` (the two 2-D files are
    joined along ``sample``).
    """
    root = reference_dir()
    if root is None:
        raise FileNotFoundError(
            f"reference data not found; set {ENV_VAR} or place the folder at {_DEFAULT}"
        )
    if name == "allen_cahn_2d":
        parts = [xr.load_dataset(root / f"allen_cahn_2d_s{i}.nc") for i in (0, 1)]
        return xr.concat(parts, dim="sample", data_vars="minimal", coords="minimal",
                         compat="override", combine_attrs="override")
    return xr.load_dataset(root / f"{name}.nc")
