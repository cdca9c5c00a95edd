"""The mesoscopic-field data contract: write, read and validate ``results/data/{dataset}.nc``.

A fields file holds ``u`` with dims ``(sample, time, x)`` (2-D: ``(sample, time, y, x)``), float64, with
coordinates in the equation's own units, the initial-condition draws, every parameter as a global
attribute and the provenance attributes of :mod:`mesodyn.provenance`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from mesodyn._io import atomic_path
from mesodyn.provenance import provenance_attrs, to_netcdf_attrs

__all__ = ["FieldsContractError", "cf_attrs", "cf_units", "data_units", "write_netcdf", "write_fields", "read_fields", "validate_fields", "grid_from_data",
           "dataset_name"]

PROVENANCE_KEYS = ("mesodyn_version", "git_commit", "config")


class FieldsContractError(ValueError):
    """A data set does not follow the fields contract."""


CF_CONVENTIONS = "CF-1.10"
REFERENCES = ("Li, Zhu and Li, Hypothesis-driven construction of mesoscopic dynamics, arXiv:2605.16211 (2026); "
              "the authors' code: https://github.com/MLDS-NUS/Meso-SpecOnsNet")
AXES = {"x": "X", "y": "Y"}


def cf_attrs(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the CF attributes every output of mesodyn carries (a shallow copy; the data are not copied).

    Global: ``Conventions``, ``source``, ``references`` and ``history``, the last without a timestamp so that a rerun
    writes the same bytes (the git commit and config in the provenance attributes say what made the file). ``axis``
    on the spatial coordinates ``x`` and ``y``; the time coordinate is dimensionless (the equations' own units), which
    CF's time axis (a calendar with an epoch) does not describe, so it carries ``long_name`` and ``units: 1`` only.
    A variable with a ``padding`` attribute (the value marking unused slots) has it as ``_FillValue`` instead.
    """
    from mesodyn import __version__
    from mesodyn.provenance import git_commit

    ds = ds.copy(deep=False)
    attrs = dict(ds.attrs)
    attrs.setdefault("Conventions", CF_CONVENTIONS)
    attrs.setdefault("source", f"mesodyn {__version__}")
    attrs.setdefault("references", REFERENCES)
    attrs.setdefault("history", f"written by mesodyn {__version__} at git commit {attrs.get('git_commit', git_commit())}")
    ds.attrs = attrs
    for name, axis in AXES.items():
        if name in ds.coords and ds[name].ndim == 1 and name in ds[name].dims:
            ds[name].attrs = {**ds[name].attrs, "axis": axis}
    return ds


_DATA_UNIT = {"time unit of the data": "time", "unit of u": "u"}
_ENERGY_UNITS = ("model energy unit", "model energy unit / time", "model energy unit per unit volume",
                 "energy unit of the data")


def data_units(data: xr.Dataset | None) -> dict[str, str] | None:
    """The units of the data's time, length and field (CF ``units`` of ``time``, ``x`` and ``u``), or ``None``."""
    if data is None:
        return None
    return {key: str(data[name].attrs.get("units", "")) for key, name in (("time", "time"), ("length", "x"),
                                                                           ("u", "u")) if name in data.variables}


def cf_units(ds: xr.Dataset, units: dict[str, str] | None) -> xr.Dataset:
    """Replace the diagnostics' descriptive units ("time unit of the data", "model energy unit", ...) by UDUNITS
    strings, as CF asks: the data's own units where the quantity is the data's, and ``1`` for the energies when the
    data are dimensionless (every data set of the paper). Where a unit cannot be written (no data, or dimensional data
    and an energy in the model's gauge), ``units`` is left out and the description kept as ``comment``."""
    units = units or {}
    dimensionless = bool(units) and all(value == "1" for value in units.values())
    for name in list(ds.variables):
        described = ds[name].attrs.get("units")
        if not isinstance(described, str):
            continue
        if described in _DATA_UNIT:
            value = units.get(_DATA_UNIT[described])
        elif described == "1 / length unit of the data":
            length = units.get("length")
            value = None if not length else ("1" if length == "1" else f"1/({length})")
        elif described in _ENERGY_UNITS:
            value = "1" if dimensionless else None
        else:
            continue
        attrs = {k: v for k, v in ds[name].attrs.items() if k != "units"}
        attrs["comment"] = f"in the {described}" if "comment" not in attrs else f"{attrs['comment']}; {described}"
        if value:
            attrs["units"] = value
        ds[name].attrs = attrs
    return ds


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, *, compress: bool = True) -> Path:
    """Write ``ds`` atomically: to a temporary file in the same folder, then rename; with the CF attributes of
    :func:`cf_attrs`.

    A killed job therefore never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = cf_attrs(ds)
    encoding = {}
    for name, var in ds.data_vars.items():
        enc: dict[str, Any] = {}
        if compress and var.size >= 4096 and var.dtype.kind in "fiu":
            enc.update(zlib=True, complevel=1, shuffle=True)
            if var.dims and var.dims[0] == "sample":
                # One chunk per trajectory: the library's default chunks span hundreds of trajectories, so
                # reading a few of them (an evaluation batch) decompressed most of the file each time.
                enc["chunksizes"] = (1, *var.shape[1:])
        if var.dtype.kind == "f":
            enc["_FillValue"] = None
        if "padding" in var.attrs:
            enc["_FillValue"] = var.attrs["padding"]
            ds[name].attrs = {k: v for k, v in var.attrs.items() if k != "padding"}
        encoding[name] = enc
    for name, coord in ds.coords.items():
        if coord.dtype.kind == "f":
            encoding[name] = {"_FillValue": None}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return path


def write_fields(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    params: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Attach parameters and provenance to ``ds``, check the contract, and write it atomically."""
    ds = ds.copy()
    ds.attrs = to_netcdf_attrs({**ds.attrs, **(params or {}), **provenance_attrs(config)})
    validate_fields(ds)
    return write_netcdf(ds, path)


def read_fields(path: str | os.PathLike, *, validate: bool = True) -> xr.Dataset:
    """Load a fields file fully into memory (the file is closed on return)."""
    ds = xr.load_dataset(path, engine="netcdf4")
    if validate:
        validate_fields(ds)
    return ds


def validate_fields(ds: xr.Dataset) -> None:
    """Raise :class:`FieldsContractError` naming the first way ``ds`` departs from the contract."""
    if "u" not in ds:
        raise FieldsContractError("fields data set has no variable 'u'")
    u = ds["u"]
    if u.dims not in (("sample", "time", "x"), ("sample", "time", "y", "x")):
        raise FieldsContractError(
            f"'u' has dims {u.dims}; expected (sample, time, x) or (sample, time, y, x)"
        )
    if u.dtype != np.float64:
        raise FieldsContractError(f"'u' is {u.dtype}; the contract is float64")
    for dim in u.dims[1:]:
        if dim not in ds.coords:
            raise FieldsContractError(f"coordinate '{dim}' is missing")
        coord = ds[dim].values
        if coord.dtype != np.float64 or not np.all(np.diff(coord) > 0):
            raise FieldsContractError(f"coordinate '{dim}' must be increasing float64")
    for name in ("u", *u.dims[1:]):
        for key in ("long_name", "units"):
            if key not in ds[name].attrs:
                raise FieldsContractError(f"'{name}' lacks the CF attribute '{key}'")
    ic_vars = ("ic_kx", "ic_ky") if u.ndim == 4 else ("ic_k",)
    for name in (*ic_vars, "ic_amplitude", "ic_phase"):
        if name not in ds or ds[name].dims != ("sample", "mode"):
            raise FieldsContractError(f"initial-condition draw '{name}' (sample, mode) is missing")
    for key in PROVENANCE_KEYS:
        if key not in ds.attrs:
            raise FieldsContractError(f"provenance attribute '{key}' is missing")
    if not np.all(np.isfinite(u.values)):
        raise FieldsContractError("'u' contains non-finite values")


def grid_from_data(data: xr.Dataset) -> dict[str, Any]:
    """The model's grid from a fields data set: ``shape``, periodic ``length`` and saved ``dt``.

    ``shape``/``length`` follow the trailing dims of ``u`` (1-D ``(x,)``, 2-D ``(y, x)``); ``length`` is
    ``n * spacing`` of each uniform coordinate, ``dt`` the uniform spacing of ``time`` (to 10 digits).
    """
    if "u" not in data:
        raise ValueError("the data set has no variable 'u'.")
    dims = data["u"].dims
    if dims not in (("sample", "time", "x"), ("sample", "time", "y", "x")):
        raise ValueError(f"'u' has dims {dims}; expected (sample, time, x) or (sample, time, y, x).")
    shape, length = [], []
    for dim in dims[2:]:
        coord = np.asarray(data[dim].values, dtype=np.float64)
        spacing = np.diff(coord)
        if coord.size < 2 or not np.allclose(spacing, spacing[0], rtol=1e-6, atol=0):
            raise ValueError(f"coordinate '{dim}' must be uniformly spaced for a periodic grid.")
        step = (coord[-1] - coord[0]) / (coord.size - 1)
        shape.append(int(coord.size))
        length.append(float(step * coord.size))
    time = np.asarray(data["time"].values, dtype=np.float64)
    steps = np.diff(time)
    if time.size < 2 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        raise ValueError("coordinate 'time' must be uniformly spaced (the saved step is the model's dt).")
    # 10 significant digits drop the float noise of a saved time axis (1e-3 rather than 9.99999999999966e-4;
    # the chains accumulate lab time over ~1e5 substeps, so their noise reaches ~1e-12 relative)
    dt = float(f"{(time[-1] - time[0]) / (time.size - 1):.10g}")
    return {"shape": shape, "length": length, "dt": dt}


def dataset_name(data: xr.Dataset | str | os.PathLike) -> str | None:
    """The registry name of the data set in ``data`` (attribute ``dataset``, or ``model`` for chain data);
    given a path, only the file's attributes are read, not its fields."""
    if not isinstance(data, xr.Dataset):
        with xr.open_dataset(data, engine="netcdf4") as ds:
            return dataset_name(ds)
    name = data.attrs.get("dataset", data.attrs.get("model"))
    return str(name) if name is not None else None
