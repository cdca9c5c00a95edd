"""Out-of-distribution test sets (ours): where the learned models stay accurate, and where they blow up.

The paper (arXiv 2605.16211) calls its models robust but tests them on trajectories drawn like the training ones.
Here each generated data set (the chains and the continuum PDEs) gets *variants*: new trajectories from the same
generator, the same physics and the same frame spacing, whose initial fields differ in one way the training data
never showed:

* ``amplitude``: the initial field times a factor (1.5 and 2 by default: stronger nonlinearity; the rejection
  bound ``u_bound`` is scaled with it, so that the larger fields are not rejected for their size alone);
* ``k_offset``: every drawn wavenumber moved up by an offset (``"band"``: the data set's ``max_k``, so that the
  drawn modes lie just above the training band, none inside it).

The variants are drawn from their own seed (``ood.seed``), so no trajectory repeats one of the data set's. Every
fitted run is rolled out on every trajectory of every variant (none was trained on) with the evaluation's metric
and clamp (:mod:`mesodyn.evaluation`), and :func:`ood_table` lists per data set, run and variant the mean error at
step 5 and at the last step, beside the run's own held-out error, how many trajectories were lost (an error of 1 or
more at any step) and how many blew up (a non-finite state). A longer domain is left out: the Fourier models learn
their symbols per mode of the data's grid, so a different domain length is a different model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["GENERATED", "BLOW_UP", "OOD_TABLE", "check_ood", "ood_datasets", "ood_data_path", "ood_metric_targets",
           "ood_targets", "variant_params", "ood_data_files", "evaluate_ood", "evaluate_ood_files", "ood_table",
           "write_ood_table"]

# The data sets mesodyn generates itself: only they can be drawn again with other initial fields.
GENERATED = ("fput", "fene", "kdv", "allen_cahn", "allen_cahn_2d")
_CHAINS = ("fput", "fene")
# A trajectory is lost where its relative RMSE reached this (the evaluation's clamp threshold).
BLOW_UP = 1.0


OOD_TABLE = "results/tables/ood"
"""Stem of the out-of-distribution table (``.csv``, ``.md``)."""


def ood_datasets(config: Mapping[str, Any]) -> list[str]:
    """The configured data sets that get out-of-distribution sets: the generated ones, where ``ood.variants``
    names any (a data set of the user's own cannot be drawn again)."""
    if not (config.get("ood", {}) or {}).get("variants"):
        return []
    return [name for name in config.get("datasets", []) if name in GENERATED]


def ood_data_path(dataset: str, variant: str) -> str:
    """The fields file of one variant of one data set."""
    return f"results/ood/data/{dataset}/{variant}.nc"


def ood_metric_targets(config: Mapping[str, Any]) -> list[str]:
    """One out-of-distribution evaluation file per fitted ``(dataset, run, seed)`` of :func:`ood_datasets`."""
    from mesodyn.config import fit_runs

    wanted = set(ood_datasets(config))
    return [f"results/ood/metrics/{dataset}/{run}/seed{seed}.nc"
            for dataset, run, seed in fit_runs(config) if dataset in wanted]


def ood_targets(config: Mapping[str, Any]) -> list[str]:
    """The out-of-distribution table (CSV and Markdown) where the config makes any evaluation for it."""
    return [f"{OOD_TABLE}.csv", f"{OOD_TABLE}.md"] if ood_metric_targets(config) else []


def _generator(dataset: str, params: Mapping[str, Any], *, where: str) -> Any:
    """The validated generator config of ``dataset`` (a chain model or a PDE config); its own check failing is a
    config error naming ``where``."""
    from mesodyn.config import ConfigError

    try:
        if dataset in _CHAINS:
            from mesodyn.chains.models import chain_from_config

            return chain_from_config(dataset, dict(params))
        from mesodyn.continuum.datasets import config_for

        return config_for(dataset, params)
    except ValueError as exc:
        raise ConfigError(f"config '{where}' cannot be drawn for {dataset}: {str(exc).rstrip('.')}.") from None


def variant_params(config: Mapping[str, Any], dataset: str, variant: str) -> dict[str, Any]:
    """The generator parameters of ``variant`` of ``dataset``: the data set's own, with the variant's ``amplitude``
    and ``k_offset`` (``"band"`` -> the data set's ``max_k``), ``u_bound`` times the amplitude and ``ood.n_samples``
    trajectories (a fifth of them, at least one, in 2-D)."""
    if dataset not in GENERATED:
        raise ValueError(f"out-of-distribution sets are drawn for the generated data sets ({', '.join(GENERATED)}), "
                         f"not for {dataset!r}.")
    ood = config.get("ood", {})
    variants = ood.get("variants", {})
    if variant not in variants:
        raise ValueError(f"ood.variants has no variant {variant!r}; it has {', '.join(variants) or 'none'}.")
    params = dict(config["data"][dataset])
    spec = variants[variant]
    amplitude = float(spec.get("amplitude", 1.0))
    offset = spec.get("k_offset", 0)
    where = f"ood.variants.{variant}"
    params["k_offset"] = _generator(dataset, params, where=where).max_k if offset == "band" else int(offset)
    params["amplitude"] = amplitude
    if "u_bound" in params:
        params["u_bound"] = float(params["u_bound"]) * max(amplitude, 1.0)
    n = int(ood.get("n_samples", 50))
    params["n_samples"] = max(1, n // 5) if dataset == "allen_cahn_2d" else n
    _generator(dataset, params, where=where)
    return params


def check_ood(config: Mapping[str, Any]) -> None:
    """Every variant of every data set of :func:`ood_datasets` (start-up check: a bad variant is one sentence)."""
    for dataset in ood_datasets(config):
        for variant in config["ood"]["variants"]:
            variant_params(config, dataset, variant)


def ood_data_files(dataset: str, variant: str, config: Mapping[str, Any], *, fields_path: str | os.PathLike,
                   threads: int | None = None) -> Path:
    """Draw and simulate ``variant`` of ``dataset`` (:func:`variant_params`, seed ``ood.seed``) and write its fields
    file atomically, with the variant's name and parameters as attributes."""
    from mesodyn.fields import write_fields
    from mesodyn.pipeline import set_threads

    n = set_threads(threads)
    params = variant_params(config, dataset, variant)
    seed = int(config.get("ood", {}).get("seed", 1))
    progress = config.get("progress", True)
    if dataset in _CHAINS:
        from mesodyn.chains.data import make_chain_data

        coarse = config["coarse"]
        fields, _ = make_chain_data(dataset, params, seed=seed, method=coarse["method"], n_grid=coarse["n_grid"],
                                    keep_micro=0, progress=progress)
    else:
        from mesodyn.continuum import make_dataset

        fields = make_dataset(dataset, params=params, seed=seed, progress=progress, workers=n)
    spec = dict(config["ood"]["variants"][variant])
    relevant = {"seed": seed, "data": {dataset: params}, "ood": {variant: spec}}
    return write_fields(fields, fields_path, params={"ood_variant": variant, "seed": seed}, config=relevant)


def evaluate_ood(model: Any, variants: Mapping[str, xr.Dataset], *, dataset: str, label: str | None = None,
                 seed: int | None = None, batch_size: int = 32, device: str = "auto") -> xr.Dataset:
    """Roll ``model`` out on every trajectory of every variant (:func:`mesodyn.evaluation.evaluate`, one set per
    variant, clamped within it) and stack the results along the dimension ``variant``."""
    from mesodyn.evaluation import evaluate

    parts = []
    for name, data in variants.items():
        n = int(data["u"].sizes["sample"])
        split = {"train": [], "valid": [], "test": list(range(n)), "n_samples": n}
        ds = evaluate(model, data, split=split, dataset=dataset, label=label, seed=seed, batch_size=batch_size,
                      device=device, paper=False)
        parts.append(ds.sel(set="heldout", drop=True).expand_dims(variant=[name]))
    out = xr.concat(parts, dim="variant", combine_attrs="override")
    out.attrs.pop("data_path", None)
    out.attrs["evaluation"] = "out of distribution (mesodyn.ood): every trajectory of each variant, none trained on"
    return out


def evaluate_ood_files(run_dir: str | os.PathLike, data_paths: Mapping[str, str | os.PathLike],
                       out_path: str | os.PathLike, *, label: str, dataset: str, batch_size: int = 32) -> Path:
    """:func:`evaluate_ood` of the run in ``run_dir`` on the variant files ``data_paths`` (name -> fields file);
    the result is written atomically to ``out_path``."""
    import torch

    from mesodyn.evaluation import run_summary
    from mesodyn.fields import cf_units, data_units, read_fields, write_netcdf
    from mesodyn.models import load_model

    run_dir = Path(run_dir)
    seed = run_summary(run_dir).get("train", {}).get("seed")
    model = load_model(run_dir, device="cpu", dtype=torch.float32)
    variants = {name: read_fields(path, dataset=dataset) for name, path in data_paths.items()}
    ds = evaluate_ood(model, variants, dataset=dataset, label=label, seed=seed, batch_size=batch_size)
    ds.attrs["run_dir"] = str(run_dir)
    ds.attrs["data_paths"] = ", ".join(f"{k}: {v}" for k, v in data_paths.items())
    return write_netcdf(cf_units(ds, data_units(next(iter(variants.values())))), out_path)


def _count(ds: xr.Dataset) -> tuple[int, int]:
    """Trajectories whose error reached :data:`BLOW_UP` (finite or not), and those whose state turned non-finite."""
    raw = ds["rel_rmse_unclamped"]
    real = ds["sample"] >= 0
    nonfinite = (~np.isfinite(raw)).any("step") & real
    lost = ((raw >= BLOW_UP).any("step") & real) | nonfinite
    return int(lost.sum()), int(nonfinite.sum())


def _heldout_step(files: Iterable[xr.Dataset], step: int) -> dict[tuple[str, str], float]:
    """Mean over seeds of the held-out mean error at ``step``, per (data set, run), from evaluation files."""
    values: dict[tuple[str, str], list[float]] = {}
    for ds in files:
        key = (str(ds.attrs["dataset"]), str(ds.attrs.get("label", ds.attrs.get("model"))))
        values.setdefault(key, []).append(float(ds["rel_rmse_mean"].sel(set="heldout", step=step)))
    return {k: float(np.mean(v)) for k, v in values.items()}


def ood_table(ood_files: Iterable[str | os.PathLike], metric_files: Iterable[str | os.PathLike] = (), *,
              step: int = 5) -> pd.DataFrame:
    """One row per data set, run and variant: the mean relative RMSE at ``step`` and at the last step (mean over
    the run's seeds of the mean over trajectories, clamped as in the evaluation), the run's held-out error at
    ``step`` from ``metric_files`` where given (``in_distribution``) and its ratio, the trajectories whose error
    reached 1 (``lost``: the prediction no better than zero) and those whose state turned non-finite
    (``nonfinite``: blown up), both summed over seeds, and the earliest step at which a variant's set was clamped
    (-1: never)."""
    opened = [xr.load_dataset(p) for p in ood_files]
    heldout = _heldout_step((xr.load_dataset(p) for p in metric_files), step)
    groups: dict[tuple[str, str], list[xr.Dataset]] = {}
    for ds in opened:
        groups.setdefault((str(ds.attrs["dataset"]), str(ds.attrs.get("label", ds.attrs.get("model")))), []).append(ds)
    rows = []
    for (dataset, run), group in sorted(groups.items()):
        for variant in group[0]["variant"].values:
            parts = [ds.sel(variant=variant) for ds in group]
            last = int(parts[0]["step"].max())
            at = float(np.mean([float(p["rel_rmse_mean"].sel(step=step)) for p in parts]))
            diverged = [int(p["diverged_step"]) for p in parts if int(p["diverged_step"]) >= 0]
            inside = heldout.get((dataset, run), math.nan)
            counts = [_count(p) for p in parts]
            rows.append({
                "dataset": dataset, "model": run, "variant": str(variant), "seeds": len(parts),
                "trajectories": int(parts[0]["n_trajectories"]),
                f"step{step}": at,
                f"step{last}": float(np.mean([float(p["rel_rmse_mean"].sel(step=last)) for p in parts])),
                f"in_distribution_step{step}": inside,
                "ratio": at / inside if inside and math.isfinite(inside) else math.nan,
                "lost": sum(c[0] for c in counts),
                "nonfinite": sum(c[1] for c in counts),
                "first_clamped_step": min(diverged) if diverged else -1,
            })
    return pd.DataFrame(rows)


def write_ood_table(table: pd.DataFrame, stem: str | os.PathLike) -> dict[str, Path]:
    """Write ``table`` (:func:`ood_table`) as ``{stem}.csv`` and ``{stem}.md``, atomically and byte-identically."""
    from mesodyn.tables import write_captioned, format_sig

    shown = table.copy()
    for column in shown.columns:
        if column.startswith("step") or column.startswith("in_distribution") or column == "ratio":
            shown[column] = [format_sig(v) for v in shown[column]]
    caption = ("Out of distribution (mesodyn.ood): relative RMSE of autoregressive rollouts on trajectories whose "
               "initial fields differ from the training data's (amplitude: the field times the factor; k_offset: "
               "the drawn wavenumbers moved up), mean over trajectories and seeds, clamped as in the evaluation; "
               "in_distribution: the run's held-out error at the same step, ratio: the two's quotient; lost: "
               "trajectories whose error reached 1; nonfinite: those that blew up (both over all seeds).")
    return write_captioned(table, shown, stem, name="ood", title="out of distribution", caption=caption)
