"""Hypotheses compared: which hypothesis class the held-out data prefer (the question of the paper's title).

A hypothesis class is a run of the workflow (a model with its options: for SpecOnsNet, ``operators`` M, W or both,
``conserved`` mobility or free, ``nonlocal_modes`` 0 for a local free energy) fitted with several seeds. The data
prefer, among the classes whose held-out error is as small as the best one's, the simplest:

* the mean held-out relative RMSE at one rollout step (over seeds; the trajectories never trained on) ranks them;
* a class is *as good as the best* when its mean exceeds the best mean by at most ``tolerance`` times the best mean
  plus the two classes' spread over seeds (``sqrt(std_a^2 + std_b^2)``, the seeds' standard deviation);
* of those, the one with the fewest free parameters is ``preferred`` (ties: the smaller error). Free parameters
  are the trained ones less those a class's constraints pin (:func:`free_parameters`: the mobility's ``m(0)`` of a
  conserved class; ``W``'s values on the self-conjugate modes, where an antisymmetric symbol vanishes). Nested
  classes (a conserved M inside a free M, M alone inside M + W, a local V inside local + nonlocal) then resolve to
  the smallest that explains the data, which is Occam's razor on held-out error.

The validation loss (mean and spread over seeds, from each fit's ``summary.json``) is reported beside it.
Reads evaluation files and fit summaries only; imports no PyTorch.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["HYPOTHESIS_COLUMNS", "describe_hypothesis", "free_parameters", "hypothesis_table", "preferred",
           "write_hypothesis_table"]

HYPOTHESIS_COLUMNS = ("dataset", "run", "hypothesis", "n_parameters", "free_parameters", "seeds", "step",
                      "heldout_mean",
                      "heldout_std_seeds", "valid_loss_mean", "valid_loss_std_seeds", "as_good_as_best", "preferred")


def describe_hypothesis(config: Mapping[str, Any]) -> str:
    """The class a model config stands for, in words: ``"M (conserved) + W; V local + nonlocal"`` for SpecOnsNet and
    its true-``V`` ablation, the model's name for any other."""
    name = str(config.get("name"))
    if name not in ("speconsnet", "speconsnet_true_v"):
        return name
    operators = str(config.get("operators", "both"))
    mobility = "M (conserved)" if config.get("conserved") else "M"
    if config.get("mobility_above") is not None:
        mobility = f"M (|k| > {float(config['mobility_above']):g})"
    w = "W (first order)" if config.get("w_symbol", "free") == "first_order" else "W"
    parts = {"both": f"{w} + {mobility}" if config.get("mobility_above") is not None else f"{mobility} + {w}",
             "M": mobility, "W": w}[operators]
    if name == "speconsnet_true_v":
        return f"{parts}; V true"
    energy = "V local + nonlocal" if int(config.get("nonlocal_modes", 16)) > 0 else "V local"
    return f"{parts}; {energy}"


def _pairs_up_to(shape: Iterable[int], length: Iterable[float], k_max: float) -> int:
    """The pairs of modes ``{k, -k}`` of a grid with ``|k| <= k_max`` (a self-conjugate mode is a pair alone)."""
    shape, length = [int(n) for n in shape], [float(x) for x in length]
    axes = [2 * np.pi * np.fft.fftfreq(n, d=L / n) for n, L in zip(shape, length)]
    k2 = sum(g ** 2 for g in np.meshgrid(*axes, indexing="ij"))
    inside = k2 <= k_max ** 2 * (1 + 1e-12)
    self_conjugate = np.ones(shape, dtype=bool)
    for axis, n in enumerate(shape):
        index = np.arange(n).reshape([-1 if a == axis else 1 for a in range(len(shape))])
        self_conjugate = self_conjugate & ((2 * index) % n == 0)
    alone = int((inside & self_conjugate).sum())
    return (int(inside.sum()) - alone) // 2 + alone


def free_parameters(config: Mapping[str, Any], n_parameters: int) -> int:
    """The trained parameters of a model less those its class pins: a conserved mobility's ``m(0)`` (one), or with
    ``mobility_above`` every ``m(k)`` with ``|k|`` at or below it, and a free ``W``'s parameters on the
    self-conjugate modes (``2k = 0`` on every axis: ``prod(1 + [n even])`` of them), where the antisymmetric symbol is
    zero by construction (a first-order ``W`` has one coefficient per axis, none pinned). Other models:
    ``n_parameters``."""
    if str(config.get("name")) not in ("speconsnet", "speconsnet_true_v"):
        return int(n_parameters)
    operators = str(config.get("operators", "both"))
    pinned = 0
    if operators in ("both", "M") and config.get("mobility_above") is not None:
        pinned += _pairs_up_to(config["shape"], config["length"], float(config["mobility_above"]))
    elif operators in ("both", "M") and config.get("conserved"):
        pinned += 1
    if operators in ("both", "W") and config.get("w_symbol", "free") == "free":
        pinned += int(np.prod([1 + (int(n) % 2 == 0) for n in config.get("shape", [])]))
    return int(n_parameters) - pinned


def _run_rows(metric_files: Iterable[str | os.PathLike], step: int) -> list[dict[str, Any]]:
    """One row per (data set, run): the held-out error at ``step`` over seeds, and the fits' summaries."""
    import xarray as xr

    from mesodyn.tables import rel_rmse_table

    files = [Path(p) for p in metric_files]
    run_dirs_of: dict[tuple[str, str], list[Path]] = {}
    for path in files:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            key = (str(ds.attrs.get("dataset")), str(ds.attrs.get("label", ds.attrs.get("model"))))
            run_dirs_of.setdefault(key, []).append(Path(str(ds.attrs["run_dir"])))
    table = rel_rmse_table(files, steps=step)
    table = table[(table["set"] == "heldout") & (table["step"] == step)]
    rows = []
    for _, row in table.iterrows():
        run = str(row["model"])
        run_dirs = sorted(run_dirs_of[(str(row["dataset"]), run)])
        summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
        config = json.loads((run_dirs[0] / "model.json").read_text()) if run_dirs else {}
        losses = np.array([s.get("best_valid_loss", math.nan) for s in summaries], dtype=float)
        n_parameters = int(summaries[0]["n_parameters"]) if summaries else -1
        rows.append({
            "dataset": str(row["dataset"]), "run": run,
            "hypothesis": describe_hypothesis(config),
            "n_parameters": n_parameters, "free_parameters": free_parameters(config, n_parameters),
            "seeds": " ".join(d.name.removeprefix("seed") for d in run_dirs), "step": step,
            "heldout_mean": float(row["mean"]),
            "heldout_std_seeds": float(row["std_seeds"]) if int(row["n_seeds"]) > 1 else 0.0,
            "valid_loss_mean": float(np.mean(losses)) if losses.size else math.nan,
            "valid_loss_std_seeds": float(np.std(losses)) if losses.size > 1 else 0.0,
        })
    return rows


def preferred(group: pd.DataFrame, *, tolerance: float) -> pd.DataFrame:
    """Mark, within one data set's rows, ``as_good_as_best`` and the one ``preferred`` (module docstring)."""
    group = group.copy()
    finite = group["heldout_mean"].apply(math.isfinite)
    best = group.loc[finite, "heldout_mean"].idxmin() if finite.any() else None
    if best is None:
        group["as_good_as_best"] = False
        group["preferred"] = False
        return group
    b_mean, b_std = group.loc[best, "heldout_mean"], group.loc[best, "heldout_std_seeds"]
    margin = tolerance * b_mean + np.sqrt(group["heldout_std_seeds"] ** 2 + b_std**2)
    group["as_good_as_best"] = finite & (group["heldout_mean"] - b_mean <= margin)
    candidates = group[group["as_good_as_best"]].sort_values(["free_parameters", "heldout_mean"], kind="stable")
    group["preferred"] = group.index == candidates.index[0]
    return group


def hypothesis_table(metric_files: Iterable[str | os.PathLike], *, step: int = 5,
                     tolerance: float = 0.1) -> pd.DataFrame:
    """The hypotheses table: a row per (data set, run) from the runs' evaluation files
    (``results/metrics/{dataset}/{run}/seed{seed}.nc``, beside ``results/models/{dataset}/{run}/seed{seed}/``),
    with the columns of :data:`HYPOTHESIS_COLUMNS`; ``preferred`` is true for one row per data set."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}.")
    rows = _run_rows(metric_files, int(step))
    if not rows:
        raise ValueError("the hypotheses table needs at least one evaluation file.")
    table = pd.DataFrame(rows)
    table = pd.concat([preferred(g, tolerance=tolerance) for _, g in table.groupby("dataset", sort=False)])
    order = table.sort_values(["dataset", "free_parameters", "run"], kind="stable").index
    return table.loc[order, list(HYPOTHESIS_COLUMNS)].reset_index(drop=True)


def write_hypothesis_table(table: pd.DataFrame, stem: str | os.PathLike, *, tolerance: float) -> dict[str, Path]:
    """Write ``table`` (:func:`hypothesis_table`) as ``{stem}.csv`` and ``{stem}.md``."""
    from mesodyn.tables import write_captioned, format_sig

    shown = table.copy()
    for column in ("heldout_mean", "heldout_std_seeds", "valid_loss_mean", "valid_loss_std_seeds"):
        shown[column] = [format_sig(x) for x in table[column]]
    for column in ("as_good_as_best", "preferred"):
        shown[column] = ["yes" if x else "" for x in table[column]]
    steps = sorted(set(int(s) for s in table["step"]))
    caption = (f"Hypothesis classes fitted to each data set, ranked by the mean relative RMSE at rollout step "
               f"{', '.join(map(str, steps))} on the held-out trajectories (never trained on), with its spread over "
               f"seeds and the validation loss. As good as the best: a mean within {100 * tolerance:g} % of the "
               "best mean plus the two runs' spread over seeds. Preferred: of those, the class with the fewest free "
               "parameters (the trained ones less those the class pins: a conserved mobility's m(0), W on the "
               "self-conjugate modes).")
    return write_captioned(table, shown, stem, name="hypotheses", title="hypotheses compared", caption=caption)
