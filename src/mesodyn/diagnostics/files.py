"""The workflow's entry points: one diagnostic of a saved model on a fields file, written to netCDF."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from mesodyn.diagnostics.energy import energy_along_truth, energy_order, energy_vs_truth
from mesodyn.diagnostics.operators import dissipation_along_rollout, operator_symbols, spectral_extent
from mesodyn.diagnostics.horizon import long_horizon
from mesodyn.diagnostics.identifiability import identifiability
from mesodyn.diagnostics.prediction import prediction
from mesodyn.diagnostics.rollouts import energy_change_vs_dt, step_size_sweep
from mesodyn.fields import cf_units, check_fields, contract_of, data_units, dataset_name, open_fields, write_netcdf
from mesodyn.provenance import to_netcdf_attrs
from mesodyn.registry import true_energy_system

__all__ = ["DIAGNOSTICS", "write_diagnostic", "diagnostic_file", "identifiability_file"]

# -- files ------------------------------------------------------------------------------------------------------------
def _spectral_fraction(rule: str) -> float:
    """``"99.9%"`` -> 0.999 (``k_max_fit`` given as a share of the data's spectral energy)."""
    try:
        value = float(rule.strip().rstrip("%")) / 100.0
    except ValueError:
        value = math.nan
    if not rule.strip().endswith("%") or not 0 < value <= 1:
        raise ValueError(f"k_max_fit must be a number or a share of the spectral energy such as '99.9%', got "
                         f"{rule!r}.")
    return value


DIAGNOSTICS: dict[str, Callable[..., xr.Dataset]] = {
    "energy_vs_truth": energy_vs_truth,
    "step_size_sweep": step_size_sweep,
    "energy_along_truth": energy_along_truth,
    "energy_change_vs_dt": energy_change_vs_dt,
    "energy_order": energy_order,
    "operator_symbols": operator_symbols,
    "dissipation_along_rollout": dissipation_along_rollout,
    "prediction": prediction,
    "long_horizon": long_horizon,
}
"""Every diagnostic by the name :func:`diagnostic_file` takes (and files record as ``diagnostic``)."""


def write_diagnostic(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a diagnostic data set atomically (:func:`mesodyn.fields.write_netcdf`); byte-identical on rerun."""
    for key in ("diagnostic", "mesodyn_version", "git_commit", "config"):
        if key not in ds.attrs:
            raise ValueError(f"the data set lacks the attribute {key!r}: write the output of a diagnostic.")
    return write_netcdf(ds, path)


def _load_for_diagnostic(run_dir: Path, local_derivative: str | None) -> tuple[Any, str]:
    """The model saved in ``run_dir`` in float64 on the CPU, with ``F'`` evaluated as ``local_derivative`` asks
    where the model declares that option (:class:`mesodyn.registry.Capabilities`), and how it evaluates ``F'``
    (``"none"``: a model without the option, for which ``local_derivative`` changes nothing)."""
    from mesodyn.models import capabilities, load_model

    model = load_model(run_dir, device="cpu", dtype=torch.float64)
    choices = capabilities(model).local_derivatives
    if local_derivative is not None:
        if local_derivative not in ("exact", "interpolant"):
            raise ValueError(f"local_derivative must be 'exact' or 'interpolant', got {local_derivative!r}.")
        if local_derivative in choices:
            model.local_derivative = local_derivative
    return model, str(model.local_derivative) if choices else "none"


def _test_samples(run_dir: Path, n_samples: int | None) -> list[int]:
    """The run's test trajectories (``split.json``) in increasing order, the first ``n_samples`` (default all)."""
    split = json.loads((run_dir / "split.json").read_text())
    test = sorted(int(i) for i in split["test"])
    return test if n_samples is None else test[: int(n_samples)]


def _symbols_of_run(model: Any, *, run_dir: Path, data_path: str | os.PathLike | None, n_samples: int | None,
                    options: dict[str, Any]) -> tuple[xr.Dataset, str | None]:
    """:func:`operator_symbols` of the run's model: the system known for the run's data set unless ``options``
    name one, and a ``k_max_fit`` given as a share of the spectral energy read from the test trajectories. Returns
    the data set and that share as given (``None`` where ``k_max_fit`` was a number or absent)."""
    fit_rule = None
    if data_path is not None:
        with open_fields(data_path) as data:
            check_fields(data, contract=contract_of(dataset_name(data)), source=data_path, samples=[])
            if "system" not in options:
                options["system"] = true_energy_system(dataset_name(data))
            if isinstance(options.get("k_max_fit"), str):
                fit_rule = options["k_max_fit"]
                options["k_max_fit"] = spectral_extent(data, samples=_test_samples(run_dir, n_samples),
                                                       fraction=_spectral_fraction(fit_rule))
    elif isinstance(options.get("k_max_fit"), str):
        raise ValueError("k_max_fit from the data's spectrum needs data_path.")
    return operator_symbols(model, **options), fit_rule


def _diagnostic_on_test_split(kind: str, model: Any, *, data_path: str | os.PathLike, samples: list[int],
                              options: dict[str, Any]) -> xr.Dataset:
    """Diagnostic ``kind`` of ``model`` on the trajectories ``samples`` of the fields file ``data_path``, checked
    first (true data that are not finite would be read as the model's failure)."""
    with open_fields(data_path) as data:
        check_fields(data, contract=contract_of(dataset_name(data)), source=data_path, samples=samples)
        if kind == "energy_vs_truth" and "system" not in options:
            system = true_energy_system(dataset_name(data))
            if system is None:
                raise ValueError(f"no true energy is known for data set {dataset_name(data)!r}.")
            options["system"] = system
        return DIAGNOSTICS[kind](model, data, samples=samples, **options)


def _units_of(data_path: str | os.PathLike) -> dict[str, str] | None:
    """The units the fields file declares (:func:`mesodyn.fields.data_units`), which the output takes on."""
    with xr.open_dataset(data_path, engine="netcdf4") as data:
        return data_units(data)


def diagnostic_file(kind: str, *, run_dir: str | os.PathLike, data_path: str | os.PathLike | None,
                    out_path: str | os.PathLike, n_samples: int | None = None, local_derivative: str | None = None,
                    **options: Any) -> Path:
    """Run diagnostic ``kind`` on the model saved in ``run_dir`` and write ``out_path``.

    The trajectories are the run's test split (``split.json``, never trained on), in increasing order, the first
    ``n_samples`` of them (default all). ``operator_symbols`` reads no data (``data_path`` may be ``None``); its
    ``system`` defaults to the one known for the run's data set, as does ``energy_vs_truth``'s.

    Parameters
    ----------
    kind
        A key of :data:`DIAGNOSTICS`.
    run_dir
        What :func:`mesodyn.training.fit` writes (``model.json``, ``weights.pt``, ``split.json``).
    data_path
        The fields file the model was trained on.
    out_path
        Output netCDF (conventionally ``results/diagnostics/{dataset}/{run}/{kind}.nc``).
    n_samples
        How many test trajectories.
    operator_symbols' ``k_max_fit`` may be a share of the spectral energy such as ``"99.9%"``: the fit then covers
    the modes holding that share of the test trajectories' energy (:func:`spectral_extent`; the first
    ``n_samples`` of them, default all).
    local_derivative : {"exact", "interpolant"}, optional
        How a SpecOnsNet evaluates ``F'`` here (default: as it was trained). Both are the same function (the
        interpolant to 1e-12 relative in float64, :mod:`mesodyn.onsager.interpolant`); the interpolant pays for
        building its table on large batches (training, 2-D fields), the exact path is cheaper on a diagnostic's
        few 1-D fields in float64 (measured 18 against 45 ms per step of five 256-point fields).
    **options
        Keyword options of the diagnostic (``samples`` excluded).

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    if kind not in DIAGNOSTICS:
        raise ValueError(f"kind must be one of {', '.join(DIAGNOSTICS)}, got {kind!r}.")
    if "samples" in options:
        raise ValueError("the samples are the run's test split; choose how many with n_samples.")
    run_dir = Path(run_dir)
    model, derivative = _load_for_diagnostic(run_dir, local_derivative)
    extra = {"run_dir": str(run_dir), "data_path": "none" if data_path is None else str(data_path),
             "local_derivative": derivative}
    if kind == "operator_symbols":
        ds, fit_rule = _symbols_of_run(model, run_dir=run_dir, data_path=data_path, n_samples=n_samples,
                                       options=options)
        if fit_rule is not None:
            extra["k_max_fit_rule"] = f"the modes holding {fit_rule} of the test data's spectral energy"
    else:
        if data_path is None:
            raise ValueError(f"diagnostic {kind!r} needs data_path.")
        ds = _diagnostic_on_test_split(kind, model, data_path=data_path,
                                       samples=_test_samples(run_dir, n_samples), options=options)
    ds.attrs.update(to_netcdf_attrs(extra))
    units = None if data_path is None else _units_of(data_path)
    return write_diagnostic(cf_units(ds, units), out_path)


def _linear_truth(data: xr.Dataset) -> str | None:
    """The system whose linear rate :func:`mesodyn.diagnostics.identifiability.true_linear_rate` knows for this
    file: the known equation of its data set (a user's declared ``pde`` included), or the chain it was made from."""
    from mesodyn.diagnostics.identifiability import TRUTH_SYSTEMS
    from mesodyn.registry import dataset_info

    name = dataset_name(data)
    try:
        info = dataset_info(name or "")
    except ValueError:
        return None
    if info.kind == "chain":
        return str(data.attrs.get("model", name))
    return info.pde if info.pde in TRUTH_SYSTEMS else None


def identifiability_file(run_dirs: list[str | os.PathLike], *, data_path: str | os.PathLike,
                         out_path: str | os.PathLike, fraction: float = 0.999, name: str | None = None) -> Path:
    """:func:`mesodyn.diagnostics.identifiability` of the models saved in ``run_dirs`` (several fits of one
    hypothesis on one data set: training seeds, disjoint halves of the training trajectories), written to
    ``out_path``. The compared modes and the mean state come from the first run's held-out test trajectories; the
    truth is the one known for the data set (its equation, or the chain's lattice dispersion). ``name`` (attribute
    ``run``): what the fits are of, by default the first fit's run."""
    if not run_dirs:
        raise ValueError("identifiability needs at least one fitted run.")
    run_dirs = [Path(d) for d in run_dirs]
    models = [_load_for_diagnostic(d, "exact")[0] for d in run_dirs]
    labels = [f"{d.parent.name}/{d.name}" for d in run_dirs]
    samples = _test_samples(run_dirs[0], None)
    with open_fields(data_path) as data:
        check_fields(data, contract=contract_of(dataset_name(data)), source=data_path, samples=[])
        ds = identifiability(models, data, labels=labels, samples=samples, system=_linear_truth(data),
                             fraction=fraction)
    ds.attrs.update(to_netcdf_attrs({"run_dirs": ",".join(str(d) for d in run_dirs), "data_path": str(data_path),
                                     "run": name or run_dirs[0].parent.name}))
    return write_diagnostic(cf_units(ds, _units_of(data_path)), out_path)
