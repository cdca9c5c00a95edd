"""The mesoscopic-field data contract: write, read and check ``results/data/{dataset}.nc``.

Two contracts, one check (:func:`check_fields`, used by every entry point):

- a **paper** data set's file (``fput``, ``fene``, ``kdv``, ``allen_cahn``, ``allen_cahn_2d``) holds ``u`` with
  dims ``(sample, time, x)`` (2-D: ``(sample, time, y, x)``), float64, with coordinates in the equation's own
  units, the initial-condition draws, every parameter as a global attribute and the provenance attributes of
  :mod:`mesodyn.provenance`;
- a **user** data set's file needs only ``u`` with those dims, float32 or float64, finite, with increasing,
  uniformly spaced coordinates ``time`` and ``x`` (``y``) on a periodic grid and at least 2 frames. The
  coordinates are required: the model's time step and the grid's length are read from them. Units,
  initial-condition draws and provenance are used when present.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from mesodyn._io import atomic_path
from mesodyn.provenance import provenance_attrs, to_netcdf_attrs

__all__ = ["FieldsContractError", "CONTRACTS", "cf_attrs", "cf_units", "check_fields", "contract_of", "data_units",
           "open_fields", "split_sizes", "write_netcdf", "write_fields", "read_fields", "validate_fields",
           "grid_from_data", "dataset_name"]

PROVENANCE_KEYS = ("mesodyn_version", "git_commit", "config")

CONTRACTS = ("paper", "user")
FIELD_DIMS = (("sample", "time", "x"), ("sample", "time", "y", "x"))
# float32 squares overflow at 1.8e19 (the loss and the metric square u): anything near that is a unit mistake
MAX_ABS = 1e15
# Variables larger than this are written uncompressed (write_netcdf)
COMPRESS_BYTES = 64 * 2**20
# bytes of u read at once by the value checks, so that a large file opened lazily is never loaded whole
_BLOCK_BYTES = 256 * 2**20

logger = logging.getLogger(__name__)


class FieldsContractError(ValueError):
    """A data set does not follow the fields contract; the message is one sentence naming the file and the
    variable."""


def contract_of(dataset: str | None) -> str:
    """The contract a data set's file follows: ``"paper"`` for a data set of the registry, else ``"user"``."""
    from mesodyn.registry import DATASETS

    return "paper" if dataset in DATASETS else "user"


def split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Trajectories in the train, validation and test parts of a split of ``n`` by ``fractions``:
    ``round(n f_train)``, ``round(n (f_train + f_valid)) - round(n f_train)`` and the rest."""
    cut1 = int(round(n * float(fractions[0])))
    cut2 = int(round(n * (float(fractions[0]) + float(fractions[1]))))
    return cut1, cut2 - cut1, n - cut2


def open_fields(path: str | os.PathLike) -> xr.Dataset:
    """Open a fields file lazily (close it, or use it in a ``with`` block); a file that is missing or not
    netCDF is a :class:`FieldsContractError` naming it."""
    if Path(path).is_dir():
        raise FieldsContractError(f"fields file {path} is a folder, not a netCDF file.")
    if not Path(path).is_file():
        raise FieldsContractError(f"fields file {path} does not exist.")
    try:
        return xr.open_dataset(path, engine="netcdf4")
    except (OSError, ValueError) as exc:  # HDF5/netCDF errors surface as OSError, unknown formats as ValueError
        reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
        raise FieldsContractError(f"fields file {path} cannot be read as netCDF ({reason}).") from None


def check_fields(
    ds: xr.Dataset,
    *,
    contract: str = "paper",
    source: str | os.PathLike | None = None,
    dataset: str | None = None,
    window: int | None = None,
    split: Sequence[float] | None = None,
    samples: Sequence[int] | None = None,
) -> None:
    """The one data check of every entry point (fit, evaluate, diagnose, the workflow's rules).

    Parameters
    ----------
    ds
        The fields, in memory or opened lazily (values are read in blocks of trajectories).
    contract : {"paper", "user"}
        ``"user"``: ``u`` with dims (sample, time, x) or (sample, time, y, x), float32 or float64, finite, with
        coordinates ``time`` and ``x`` (``y``) that are increasing and uniform (the grid is periodic; the time
        step and the grid length are read from them, so they are required), at least 2 frames.
        ``"paper"`` adds float64, the CF attributes ``long_name``/``units``, the initial-condition draws and the
        provenance attributes (see the module docstring).
    source
        The file's path, named in every message.
    dataset
        The data set the caller (config or command line) says this is: checked against the file's ``dataset``
        (chains: ``model``) attribute; a paper file must have one.
    window
        Frames a training window needs.
    split
        Train, validation and test fractions: train and validation must not be empty; an empty test part is
        a warning.
    samples
        Trajectories whose values are checked (evaluation and diagnostics read only these); default all.

    Raises
    ------
    FieldsContractError
        One sentence naming the file and the variable, coordinate or attribute.

    Notes
    -----
    Plausibility findings that do not stop a run (constant fields, a time axis or grid that contradicts the
    file's own attributes, an empty test part) are logged as warnings, so they reach the job's log.
    """
    if contract not in CONTRACTS:
        raise ValueError(f"contract must be one of {', '.join(CONTRACTS)}, got {contract!r}.")
    where = f"fields file {source}" if source is not None else "fields data set"

    def fail(message: str) -> None:
        raise FieldsContractError(f"{where}: {message}.")

    _check_identity(ds, fail, contract=contract, dataset=dataset)
    u = _check_layout(ds, fail, contract=contract)
    if contract == "paper":
        _check_paper_metadata(ds, fail)
    n_samples, n_time = int(u.sizes["sample"]), int(u.sizes["time"])
    if window is not None and n_time < int(window):
        fail(f"'u' holds {n_time} frames (dim 'time'), fewer than the training window of {int(window)}")
    if split is not None:
        n_train, n_valid, n_test = split_sizes(n_samples, split)
        if n_train < 1 or n_valid < 1:
            fail(f"'u' holds {n_samples} trajectories (dim 'sample'), too few for the split "
                 f"{[float(f) for f in split]}: train and validation each need at least one")
        if n_test < 1:
            logger.warning("%s: %d trajectories leave the test part of the split %s empty: nothing will be "
                           "evaluated on held-out data.", where, n_samples, [float(f) for f in split])
    _check_values(u, fail, where=where, samples=samples)
    _check_attributes(ds, where=where)


def _check_identity(ds: xr.Dataset, fail, *, contract: str, dataset: str | None) -> None:
    """The data set named by the caller against the file's own ``dataset`` (chains: ``model``) attribute."""
    if dataset is None:
        return
    attr = "dataset" if "dataset" in ds.attrs else "model"
    name = dataset_name(ds)
    if name is None:
        if contract == "paper":
            fail(f"has no attribute 'dataset' (or 'model'), so it cannot be told apart from another data set "
                 f"than {dataset!r}; regenerate it with mesodyn simulate or solve")
        return
    if name != dataset:
        fail(f"holds data set {name!r} (attribute '{attr}'), not {dataset!r}")


def _check_layout(ds: xr.Dataset, fail, *, contract: str) -> xr.DataArray:
    """Variable ``u``: dims, dtype, sizes, and its coordinates (increasing, uniform, finite)."""
    if "u" not in ds:
        fail("has no variable 'u'")
    u = ds["u"]
    if u.dims not in FIELD_DIMS:
        fail(f"'u' has dims {u.dims}; expected (sample, time, x) or (sample, time, y, x)")
    if contract == "paper" and u.dtype != np.float64:
        fail(f"'u' is {u.dtype}; the contract is float64")
    if u.dtype not in (np.float32, np.float64):
        fail(f"'u' is {u.dtype}; it must be float32 or float64")
    if u.sizes["sample"] < 1:
        fail("'u' holds no trajectories (dim 'sample' is empty)")
    if u.sizes["time"] < 2:
        fail(f"'u' holds {u.sizes['time']} frame(s) (dim 'time'); a model step needs at least 2")
    for dim in u.dims[1:]:
        if dim not in ds.coords:
            fail(f"coordinate '{dim}' is missing (the {'time step' if dim == 'time' else 'grid'} is read from it)")
        coord = ds[dim].values
        if contract == "paper" and coord.dtype != np.float64:
            fail(f"coordinate '{dim}' must be increasing float64, got {coord.dtype}")
        if coord.dtype.kind not in "fiu" or not np.all(np.isfinite(coord)):
            fail(f"coordinate '{dim}' must hold finite real numbers")
        if coord.size < 2:
            fail(f"coordinate '{dim}' holds {coord.size} point(s); a periodic grid needs at least 2")
        spacing = np.diff(coord.astype(np.float64))
        if not np.all(spacing > 0):
            fail(f"coordinate '{dim}' must be increasing float64" if contract == "paper"
                 else f"coordinate '{dim}' must be increasing")
        if not np.allclose(spacing, spacing[0], rtol=1e-6, atol=0):
            fail(f"coordinate '{dim}' is not uniformly spaced (steps from {spacing.min():.6g} to {spacing.max():.6g})")
    return u


def _check_paper_metadata(ds: xr.Dataset, fail) -> None:
    """CF attributes, initial-condition draws and provenance: what a paper data set's file always holds."""
    u = ds["u"]
    for name in ("u", *u.dims[1:]):
        for key in ("long_name", "units"):
            if key not in ds[name].attrs:
                fail(f"'{name}' lacks the CF attribute '{key}'")
    ic_vars = ("ic_kx", "ic_ky") if u.ndim == 4 else ("ic_k",)
    for name in (*ic_vars, "ic_amplitude", "ic_phase"):
        if name not in ds or ds[name].dims != ("sample", "mode"):
            fail(f"initial-condition draw '{name}' (sample, mode) is missing")
    for key in PROVENANCE_KEYS:
        if key not in ds.attrs:
            fail(f"provenance attribute '{key}' is missing")


def _check_values(u: xr.DataArray, fail, *, where: str, samples: Sequence[int] | None) -> None:
    """Finite, of a size float32 can square, and not constant: read in blocks of trajectories."""
    n = int(u.sizes["sample"])
    index = np.arange(n) if samples is None else np.unique(np.asarray(samples, dtype=np.int64))
    if index.size and (index[0] < 0 or index[-1] >= n):
        fail(f"trajectory {int(index[-1] if index[-1] >= n else index[0])} is not among the {n} of 'u' "
             "(dim 'sample')")
    per_sample = max(1, int(np.prod(u.shape[1:])) * u.dtype.itemsize)
    block = max(1, _BLOCK_BYTES // per_sample)
    constant, peak = [], 0.0
    for start in range(0, index.size, block):
        chunk = index[start:start + block]
        values = np.asarray(u.isel(sample=chunk).values).reshape(chunk.size, -1)
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            fail(f"'u' contains non-finite values (NaN or Inf), first in trajectory {int(chunk[~finite][0])} "
                 "(dim 'sample')")
        peak = max(peak, float(np.abs(values).max(initial=0.0)))
        flat = values.max(axis=1) == values.min(axis=1)
        constant.extend(int(i) for i in chunk[flat])
    if peak > MAX_ABS:
        fail(f"'u' reaches |u| = {peak:.3g}; values beyond {MAX_ABS:.0e} overflow the float32 training and "
             "metrics (rescale u to order 1)")
    if constant:
        logger.warning("%s: %d of %d checked trajectories of 'u' are constant in time and space (first: "
                       "trajectory %d): a model learns nothing from them.", where, len(constant), index.size,
                       constant[0])


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _check_attributes(ds: xr.Dataset, *, where: str) -> None:
    """Warnings where the coordinates contradict the file's own attributes (n_grid, length, frame step,
    t_final) or the grid is too coarse to mean anything."""
    u = ds["u"]
    attrs = ds.attrs
    n_grid, length = _number(attrs.get("n_grid")), _number(attrs.get("length"))
    for dim in u.dims[2:]:
        coord = np.asarray(ds[dim].values, dtype=np.float64)
        if n_grid is not None and coord.size != n_grid:
            logger.warning("%s: coordinate '%s' holds %d points but the attribute n_grid says %d.", where, dim,
                           coord.size, int(n_grid))
        span = (coord[-1] - coord[0]) * coord.size / (coord.size - 1)
        if length is not None and not math.isclose(span, length, rel_tol=1e-6):
            logger.warning("%s: coordinate '%s' spans a periodic length of %.6g but the attribute length says "
                           "%.6g.", where, dim, span, length)
        if coord.size < 8:
            logger.warning("%s: coordinate '%s' holds only %d points: a grid this coarse resolves at most %d "
                           "modes.", where, dim, coord.size, coord.size // 2)
    time = np.asarray(ds["time"].values, dtype=np.float64)
    frame = (time[-1] - time[0]) / (time.size - 1)
    step = _number(attrs.get("dt", attrs.get("dt_slow")))
    save_every = _number(attrs.get("save_every"))
    if step is not None and save_every is not None and not math.isclose(frame, step * save_every, rel_tol=1e-3):
        logger.warning("%s: the frames of coordinate 'time' are %.6g apart but the attributes say %.6g "
                       "(dt x save_every).", where, frame, step * save_every)
    t_final = _number(attrs.get("t_final"))
    # the solvers save a frame every save_every steps while t < t_final: the last lies within a frame of it
    if t_final is not None and not (t_final - 1.001 * frame <= time[-1] - time[0] <= t_final * 1.001):
        logger.warning("%s: coordinate 'time' spans %.6g but the attribute t_final says %.6g.", where,
                       time[-1] - time[0], t_final)


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
_INVERSE_DATA_UNIT = {"1 / length unit of the data": "length", "1 / time unit of the data": "time"}


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
        elif described in _INVERSE_DATA_UNIT:
            unit = units.get(_INVERSE_DATA_UNIT[described])
            value = None if not unit else ("1" if unit == "1" else f"1/({unit})")
        elif "energy unit" in described:  # the model's or the data's energy, a rate or a density of it
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

    A killed job therefore never leaves a half-written file under the final name. ``compress``: numeric variables
    are zlib-compressed (level 1, shuffled, one chunk per trajectory), except those larger than
    :data:`COMPRESS_BYTES` (64 MiB), which are stored contiguous and uncompressed: on smooth float64 fields zlib
    saves only a sixth to a quarter of the size, and every job that reads the file pays for it again. On the
    default 2-D data set (2.6 GB) zlib cost 55 s of a single thread to write (6 s uncompressed) and 10-13 s to read
    (4-5 s); on a 1-D chain data set (FENE: ``u`` 207 MB and ``u_chain`` 169 MB; 312 MB compressed, 376 MB not)
    loading the file took 0.78 s against 0.11 s, in each of the some 70 jobs of a default run that read a 1-D data set.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = cf_attrs(ds)
    encoding = {}
    for name, var in ds.data_vars.items():
        enc: dict[str, Any] = {}
        if compress and 4096 <= var.size and var.nbytes <= COMPRESS_BYTES and var.dtype.kind in "fiu":
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


def read_fields(path: str | os.PathLike, *, validate: bool = True, contract: str = "paper",
                dataset: str | None = None, window: int | None = None,
                split: Sequence[float] | None = None) -> xr.Dataset:
    """Load a fields file fully into memory (the file is closed on return) and, with ``validate``, check it
    with :func:`check_fields` (the keywords are its own)."""
    with open_fields(path) as lazy:
        try:
            ds = lazy.load()
        except (OSError, RuntimeError) as exc:  # a damaged chunk is found only when it is read
            raise FieldsContractError(f"fields file {path} cannot be read ({str(exc).rstrip('.')}).") from None
    if validate:
        check_fields(ds, contract=contract, source=path, dataset=dataset, window=window, split=split)
    return ds


def validate_fields(ds: xr.Dataset) -> None:
    """Raise :class:`FieldsContractError` naming the first way ``ds`` departs from the paper contract
    (:func:`check_fields` with ``contract="paper"``)."""
    check_fields(ds, contract="paper")


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
    given a path, only the file's attributes are read, not its fields (a missing or unreadable file is a
    :class:`FieldsContractError`, as in :func:`open_fields`)."""
    if not isinstance(data, xr.Dataset):
        with open_fields(data) as ds:
            return dataset_name(ds)
    name = data.attrs.get("dataset", data.attrs.get("model"))
    return str(name) if name is not None else None
