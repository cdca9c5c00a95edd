"""Every figure of the paper (arXiv 2605.16211) and ours, drawn from files only.

The figures read the evaluation files (``results/metrics/``, :mod:`mesodyn.evaluation`) and the diagnostics files
(``results/diagnostics/``, :mod:`mesodyn.diagnostics`), never a model. One function per figure; each takes opened
data sets and returns a :class:`Drawn` (the matplotlib figure, the numbers it shows, the paper's numbers where the
paper states them, and one sentence of what we find). :func:`save_figure` writes PDF and PNG byte-identically on
rerun; :func:`make_figure` does all of it for one (figure, data set) from file paths, as the workflow's figure
rule does.

==========================  ===================================================================================
figure (:data:`FIGURES`)    what it shows
==========================  ===================================================================================
``rel_rmse``                paper's figure 1: relative RMSE against lead time, 100 steps, mean and spread over
                            test trajectories (and seeds), every model; the published steps 1-5 beside ours
``energy_vs_truth``         figure 3: learned against true energy over the test snapshots, least-squares line
                            and Pearson r, the paper's line beside ours (Allen-Cahn 1-D and 2-D)
``step_size_sweep``         figure 4: learned V and error along rollouts at 0.01 ... 3 (10) times the training
                            step, explicit Euler (the paper's) beside the stabilized stepper (ours)
``energy_along_truth``      figure 5: learned V along the true test trajectories (KdV and the chains)
``energy_change_vs_dt``     figure 6: median and largest one-step change of V against the time step, power-law
                            exponent and R^2 (the chains)
``energy_order``            figure 7: order of the learned energy and of its parts under input scaling, and the
                            learned local density F(u) - F(0)
``stepper_comparison``      ours: explicit Euler against the stabilized stepper at 3 and 10 times the training step
``operator_symbols``        ours: gauge-invariant symbols b m(k), b phi(k) against the truth, and the dissipation
                            <mu, M mu> along rollouts
``prediction``              ours: a test trajectory rolled out from its first frame against the truth, with the
                            error (space-time images in 1-D, snapshots in 2-D)
==========================  ===================================================================================

The numbers the paper states for its figures are package data (``mesodyn/data/paper_figures.json``, read by
:func:`paper_values`; the 5-step table's are ``paper_table.csv``, read by :func:`mesodyn.tables.paper_table`).
Model names in legends follow the paper (:data:`MODEL_LABELS`). The style is one matplotlib style file,
:data:`STYLE`, an input of every figure rule.

This module imports no PyTorch: the figures need none.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are files: never open a window, whatever the environment says

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from mesodyn._io import atomic_write  # noqa: E402
from mesodyn.registry import MODELS, is_chain  # noqa: E402
from mesodyn.figure_plan import (  # noqa: E402  (the workflow's plan of figures, importable without matplotlib)
    DATASET_LABELS,
    DIAGNOSTIC_FILES,
    FIGURES,
    MODEL_LABELS,
    STYLE,
    TABLE_PAGE,
    FigureInfo,
    dataset_label,
    diagnostic_plan,
    figure_inputs,
    figure_paths,
    figure_plan,
    figure_targets,
    figures_settings,
    report_labels,
)

__all__ = [
    "STYLE", "MODEL_LABELS", "DATASET_LABELS", "FIGURES", "DIAGNOSTIC_FILES", "Drawn", "FigureInfo", "paper_values",
    "style", "save_figure", "plot_rel_rmse", "plot_energy_vs_truth", "plot_step_size_sweep",
    "plot_energy_along_truth", "plot_energy_change_vs_dt", "plot_energy_order", "plot_stepper_comparison",
    "plot_operator_symbols", "plot_prediction", "plot_long_horizon", "plot_identifiability", "dataset_label", "figures_settings", "figure_plan", "diagnostic_plan", "figure_inputs", "figure_paths",
    "figure_targets", "report_labels", "TABLE_PAGE", "draw", "make_figure",
]

# Colours by registered model (the style's Okabe-Ito cycle, fixed per model so every figure agrees).
_MODEL_COLORS = {name: info.color for name, info in MODELS.items()}
_STEPPER_COLORS = {"euler": "#D55E00", "stabilized": "#0072B2", "sbdf1": "#009E73", "default": "#000000"}
_STEPPER_LABELS = {"euler": "explicit Euler (paper)", "stabilized": "stabilized (ours)", "sbdf1": "SBDF1 (paper)",
                   "default": "the model's step"}
_COMPONENT_LABELS = {"total": r"$V$", "V0": r"$V_0=\int a u^2/2+F(u)$", "gradient": r"$\int b|\nabla u|^2/2$",
                     "nonlocal": r"$V_{nl}$"}
_COMPONENT_COLORS = {"total": "#000000", "V0": "#0072B2", "gradient": "#009E73", "nonlocal": "#D55E00"}
_PAPER_COLOR = "0.45"


# -- paper's numbers, style, saving ---------------------------------------------------------------------------------
def paper_values() -> dict[str, Any]:
    """The numbers the paper states for its figures (``mesodyn/data/paper_figures.json``), with their source."""
    text = resources.files("mesodyn").joinpath("data", "paper_figures.json").read_text(encoding="utf-8")
    return json.loads(text)


@contextlib.contextmanager
def style(path: str | os.PathLike | None = None) -> Iterator[None]:
    """Draw inside the style file ``path`` (default :data:`STYLE`), on top of matplotlib's defaults only: a user's
    ``matplotlibrc`` cannot change a figure."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        plt.style.use(str(STYLE if path is None else path))
        yield


def _figure_bytes(fig: plt.Figure, fmt: str) -> bytes:
    import logging

    # fontTools, subsetting the embedded font, warns of the fixed timestamp matplotlib gives the subset: not ours
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    buf = io.BytesIO()
    # No date, no software version: the same figure is the same bytes on every rerun (SOURCE_DATE_EPOCH or not).
    metadata = ({"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None} if fmt == "pdf"
                else {"Software": None})
    fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


def save_figure(fig: plt.Figure, pdf: str | os.PathLike | None = None, png: str | os.PathLike | None = None,
                *, close: bool = True) -> list[Path]:
    """Write ``fig`` as PDF and/or PNG, atomically and byte-identically on rerun (no dates or versions inside).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = []
    try:
        for path, fmt in ((pdf, "pdf"), (png, "png")):
            if path is not None:
                out.append(atomic_write(path, _figure_bytes(fig, fmt)))
    finally:
        if close:
            plt.close(fig)
    return out


@dataclass
class Drawn:
    """A drawn figure: ``figure``, the ``numbers`` it shows, the ``paper``'s numbers where it states them, and one
    sentence ``finding`` of what we find (rendered from the numbers)."""

    figure: plt.Figure
    numbers: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    finding: str = ""


def _g(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, 'n/a' when not finite."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def _time_label(dataset: str, what: str = "lead time") -> str:
    if is_chain(dataset):
        return rf"{what} $\tau$ (slow time, nondim.)"
    return rf"{what} $t$ (nondim.)"


def _title(fig: plt.Figure, text: str, dataset: str) -> None:
    """``Data set: text`` above the panels, wrapped to the figure's width (about 13 characters per inch at 10 pt)."""
    import textwrap

    width = max(40, int(13 * fig.get_figwidth()))
    fig.suptitle(textwrap.fill(f"{dataset_label(dataset)}: {text}", width), fontsize=10)


def _panel_letters(axes: Sequence[plt.Axes]) -> None:
    """(a), (b), ... at the top left of each panel; a panel's own title moves to the right, clear of its letter."""
    for i, ax in enumerate(axes):
        title = ax.get_title()
        if title:
            ax.set_title("")
            ax.set_title(title, loc="right", fontsize=ax.title.get_fontsize())
        ax.set_title(f"({chr(97 + i)})", loc="left", fontsize=9, fontweight="bold")


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 trajectory``, ``5 trajectories``."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a[np.isfinite(a)]


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


# -- figure 1: relative RMSE against lead time ----------------------------------------------------------------------
def _run_order(runs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    from mesodyn.tables import MODEL_ORDER

    order = {name: i for i, name in enumerate(MODEL_ORDER)}
    return sorted(runs, key=lambda r: (order.get(r[1], len(order)), r[0]))


_RUN_LINE_STYLES = ["-", "--", "-.", ":"]  # runs of one model (its variants) share its colour, not its line


def _draw_run_error(ax: plt.Axes, inset: plt.Axes, combined: xr.Dataset, *, run: str, model: str,
                    line: str) -> dict[str, Any]:
    """One run's mean error against lead time with its spread and its first divergence on ``ax``, and its steps
    1-5 on ``inset``; returns the numbers the figure shows for it."""
    steps, lead = combined["step"].values, combined["lead_time"].values
    mean, spread = combined["rel_rmse_mean"].values, combined["rel_rmse_std_pooled"].values
    color = _MODEL_COLORS.get(model, "0.3")
    n_seeds = int(combined.attrs.get("n_seeds", 1))
    label = MODEL_LABELS.get(model, model) + ("" if run == model else f" [{run}]")
    label += f" ({n_seeds} seeds)" if n_seeds > 1 else ""
    ax.plot(lead, mean, line, color=color, label=label)
    # mean - std is often below zero, which a log axis cannot show: the band's lower edge stops at mean / 10
    lo = np.maximum(mean - spread, mean / 10)
    ax.fill_between(lead, lo, mean + spread, color=color, alpha=0.08, linewidth=0)
    diverged = combined["diverged_step"].values
    first = int(diverged[diverged >= 0].min()) if np.any(diverged >= 0) else -1
    if first >= 0:
        j = int(np.searchsorted(steps, first))
        ax.plot(lead[j], mean[j], "x", color=color, markersize=7, markeredgewidth=1.8)
    # steps 1-5 in an inset, beside the published numbers: on the 100-step axis they share one corner
    first5 = min(5, steps.size)
    inset.plot(steps[:first5], mean[:first5], line, color=color, marker=".", markersize=4)
    return {"model": model, "n_seeds": n_seeds, "n_trajectories": int(combined["n_trajectories"].item()),
            "step_1": float(mean[0]), "step_5": float(mean[min(4, mean.size - 1)]), "last_step": int(steps[-1]),
            "last": float(mean[-1]), "diverged_step": first}


def _draw_paper_claims(ax: plt.Axes, inset: plt.Axes, combined: xr.Dataset, *, model: str, published: Any,
                       claim: Mapping[str, Any], shift: float) -> None:
    """What the paper publishes for ``model``: its steps 1-5 (mean ± std, ``published``) on ``inset``, shifted by
    ``shift`` beside ours, and where the paper's figure says, the step it diverges near and its error at step 100."""
    steps, lead = combined["step"].values, combined["lead_time"].values
    color = _MODEL_COLORS.get(model, "0.3")
    if len(published):
        inset.errorbar(published["step"].values + shift, published["mean"].values,
                       yerr=published["std"].values, fmt="o", mfc="white", mec=color, ecolor=color,
                       markersize=3.5, elinewidth=0.7, capsize=1.2, zorder=4)
    if "diverged_step" in claim and claim["diverged_step"] <= steps[-1]:
        j = int(np.searchsorted(steps, claim["diverged_step"]))
        ax.axvline(lead[j], color=color, ls=":", lw=1.2,
                   label=f"paper: {MODEL_LABELS.get(model, model)} diverges near step {claim['diverged_step']}")
    if "final_error" in claim and steps[-1] >= 100:
        j = int(np.searchsorted(steps, 100))
        ax.plot(lead[j], claim["final_error"], "*", color=color, mfc="white", markersize=11, zorder=5,
                ls="none", label=f"paper: {MODEL_LABELS.get(model, model)} at step 100 "
                                 f"(≈ {claim['final_error']:g})")


def _decorate_rel_rmse(fig: plt.Figure, ax: plt.Axes, inset: plt.Axes, *, dataset: str, dt: float) -> None:
    """Scales, labels, the step axis on top (where ``dt`` is known) and the legend outside on the right."""
    ax.set_yscale("log")
    ax.set_xlabel(_time_label(dataset))
    ax.set_ylabel("relative RMSE\n(mean ± std over trajectories and seeds)")
    inset.set_yscale("log")
    inset.set_xticks(range(1, 6))
    inset.set_xlabel("rollout step", fontsize=6.5, labelpad=0)
    inset.set_ylabel("rel. RMSE", fontsize=7, labelpad=1)
    inset.tick_params(labelsize=6.5)
    inset.set_title("steps 1–5: ours (•) and published (○)", fontsize=7, pad=2)
    inset.set_facecolor("white")
    if np.isfinite(dt) and dt > 0:
        top = ax.secondary_xaxis("top", functions=(lambda t: t / dt, lambda s: s * dt))
        top.set_xlabel("rollout step")
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", marker="o", mfc="white", ls="none"),
                Line2D([], [], color="0.3", marker="x", ls="none", markeredgewidth=1.8)]
    labels += ["published mean ± std, steps 1–5\n(the paper's 10 trajectories)",
               "diverged (every error\ncounts as 1 from here)"]
    fig.legend(handles, labels, loc="outside right center")


def _rel_rmse_finding(numbers: Mapping[str, Mapping[str, Any]]) -> str:
    """The lowest error after the last step, and every run's error at step 1 and the last step."""
    if not numbers:
        return ""
    best = min(numbers.items(), key=lambda kv: kv[1]["last"])
    return (f"after {best[1]['last_step']} steps the lowest error is {MODEL_LABELS.get(best[1]['model'])}'s "
            f"({_g(best[1]['last'])}); " + "; ".join(
                f"{MODEL_LABELS.get(v['model'], v['model'])}" + ("" if r == v["model"] else f" [{r}]")
                + f": {_g(v['step_1'])} at step 1, {_g(v['last'])} at step {v['last_step']}"
                + (f", diverged at step {v['diverged_step']}" if v["diverged_step"] >= 0 else "")
                for r, v in numbers.items()))


def plot_rel_rmse(metrics: Mapping[str, Sequence[xr.Dataset]], *, dataset: str, evaluation_set: str = "heldout",
                  paper: Any = None) -> Drawn:
    """The paper's figure 1: relative RMSE against lead time for every model, mean and spread, log scale.

    Parameters
    ----------
    metrics
        Run name -> the evaluation data sets of its seeds (:func:`mesodyn.evaluation.evaluate`).
    dataset
        The data set (labels and the paper's numbers).
    evaluation_set
        ``"heldout"`` (our test split, never trained on: the headline) or ``"paper"`` (the authors' 10).
    paper
        The published table (:func:`mesodyn.tables.paper_table`); default read from the package.

    Returns
    -------
    Drawn
        Numbers: per run the mean error at steps 1, 5 and the last, and the first diverged step (-1: none).
    """
    from mesodyn.evaluation import combine_seeds
    from mesodyn.tables import paper_table

    if not metrics:
        raise ValueError("plot_rel_rmse needs at least one evaluation file.")
    paper = paper_table() if paper is None else paper
    paper = paper[paper["dataset"] == dataset]
    stated = paper_values().get("rel_rmse", {}).get(dataset, {})
    runs = _run_order([(run, str(sets[0].attrs.get("model", run))) for run, sets in metrics.items()])
    fig, ax = plt.subplots(figsize=(8.6, 4.2))
    inset = ax.inset_axes([0.62, 0.1, 0.36, 0.36])
    numbers: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for run, model in runs:
        combined = combine_seeds(list(metrics[run])).sel(set=evaluation_set)
        if int(combined["n_trajectories"].item()) == 0:
            continue
        nth = seen.get(model, 0)  # earlier runs of the same model
        seen[model] = nth + 1
        numbers[run] = _draw_run_error(ax, inset, combined, run=run, model=model,
                                       line=_RUN_LINE_STYLES[nth % len(_RUN_LINE_STYLES)])
        if run == model:  # the paper's numbers belong to the model under its own name, not to its variants
            published = paper[paper["model"] == model].sort_values("step")
            _draw_paper_claims(ax, inset, combined, model=model, published=published, claim=stated.get(model, {}),
                               shift=0.12 * nth + 0.06)
    first_set = next(iter(metrics.values()))[0]
    _decorate_rel_rmse(fig, ax, inset, dataset=dataset, dt=float(first_set.attrs.get("dt", np.nan)))
    what = "held-out test trajectories" if evaluation_set == "heldout" else "the paper's 10 trajectories"
    _title(fig, f"relative RMSE against lead time ({what})", dataset)
    return Drawn(fig, numbers, {"table": "paper_table.csv (steps 1-5)", **stated}, _rel_rmse_finding(numbers))


# -- figure 3: learned against true energy --------------------------------------------------------------------------
def plot_energy_vs_truth(ds: xr.Dataset, *, dataset: str) -> Drawn:
    """The paper's figure 3: learned ``V`` against the true energy over every test snapshot, with our least-squares
    line, the paper's line and both sets of numbers; right, the residual from our line.

    Parameters
    ----------
    ds
        :func:`mesodyn.diagnostics.energy_vs_truth` output.
    """
    learned = ds["learned_energy"].values.ravel()
    truth = ds["true_energy"].values.ravel()
    times = np.broadcast_to(ds["time"].values[None, :], ds["learned_energy"].shape).ravel()
    slope, intercept, r = (float(ds[k].item()) for k in ("slope", "intercept", "pearson_r"))
    stated = paper_values().get("energy_vs_truth", {}).get(dataset, {})
    fig, (ax, res) = plt.subplots(1, 2, figsize=(7.0, 3.3), width_ratios=[1.35, 1])
    sc = ax.scatter(truth, learned, c=times, s=3, alpha=0.6, linewidths=0, rasterized=True)
    x = np.linspace(np.min(truth), np.max(truth), 2)
    ax.plot(x, slope * x + intercept, color="#D55E00", lw=1.5,
            label=rf"ours: $V_\theta$ = {_g(slope)} $V$ + {_g(intercept)}, r = {r:.6f}")
    if stated:
        ax.plot(x, stated["slope"] * x + stated["intercept"], "--", color=_PAPER_COLOR, lw=1.3,
                label=rf"paper: $V_\theta$ ≈ {_g(stated['slope'])} $V$ + {_g(stated['intercept'])}")
    ax.set_xlabel(r"true energy $V$ (nondim.)")
    ax.set_ylabel(r"learned energy $V_\theta$ (model units)")
    ax.legend(loc="upper left")
    cb = fig.colorbar(sc, ax=ax, pad=0.01)
    cb.set_label(_time_label(dataset, "time"))
    residual = learned - (slope * truth + intercept)
    res.scatter(truth, residual, c=times, s=3, alpha=0.6, linewidths=0, rasterized=True)
    res.axhline(0.0, color="#D55E00", lw=1.0)
    res.set_xlabel(r"true energy $V$ (nondim.)")
    res.set_ylabel(r"$V_\theta$ − (slope $V$ + intercept) (model units)")
    _panel_letters([ax, res])
    n = int(ds.sizes["sample"]) * int(ds.sizes["time"])
    _title(fig, f"learned against true energy, {n} test snapshots "
           f"({_count(int(ds.sizes['sample']), 'trajectory', 'trajectories')})",
           dataset)
    numbers = {"slope": slope, "intercept": intercept, "pearson_r": r, "n_snapshots": n,
               "residual_rms": float(np.sqrt(np.mean(residual**2)))}
    finding = (f"V_theta = {_g(slope)} V + {_g(intercept)} with Pearson r = {r:.6f} over {n} snapshots"
               + (f" (paper: {_g(stated['slope'])} V + {_g(stated['intercept'])})" if stated else "")
               + "; an affine gauge of the true energy" + (" holds" if r > 0.99 else " does not hold well"))
    return Drawn(fig, numbers, dict(stated), finding)


# -- figure 4 and ours: rollouts at several time steps ---------------------------------------------------------------
def _factor_label(f: float) -> str:
    return rf"{f:g} $\Delta t_{{train}}$"


def _energy_limits(energy: np.ndarray, diverged: np.ndarray) -> tuple[float, float] | None:
    """y-limits of the energy panels from the rollouts that stay bounded (diverged ones leave through an edge)."""
    kept = energy[~diverged.astype(bool)] if np.any(~diverged.astype(bool)) else energy
    values = _finite(kept)
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    pad = 0.08 * max(hi - lo, 1e-12 + 0.05 * max(abs(lo), abs(hi)))
    return lo - pad, hi + pad


def _draw_rollouts(ax_v: plt.Axes, ax_e: plt.Axes, sweep: xr.Dataset, stepper: str, factor: float, *,
                   color: str, ls: str = "-", label: str | None = None, limits=None) -> dict[str, Any]:
    """V (every trajectory, thin) and the mean error over trajectories along the rollouts of one (stepper, factor);
    a cross where a rollout diverged. Returns the divergence numbers."""
    sel = sweep.sel(stepper=stepper, factor=factor)
    n = int(sel["n_steps"].item())
    lead = sel["lead_time"].values[: n + 1]
    energy = sel["energy"].values[:, : n + 1]
    err = sel["rel_rmse"].values[:, : n + 1]
    diverged = sel["diverged"].values.astype(bool)
    first = sel["diverged_step"].values
    for i in range(energy.shape[0]):
        ok = np.isfinite(energy[i])
        ax_v.plot(lead[ok], energy[i, ok], ls, color=color, lw=0.9, alpha=0.75,
                  label=label if i == 0 else None)
        if diverged[i]:
            s = min(int(first[i]), n)
            y = energy[i, s] if np.isfinite(energy[i, s]) else (limits[1] if limits else np.nan)
            if limits is not None:
                y = float(np.clip(y, *limits))
            ax_v.plot(lead[s], y, "x", color=color, markersize=7, markeredgewidth=1.8, clip_on=False, zorder=5)
    with np.errstate(invalid="ignore"):
        mean_err = np.nanmean(np.where(np.isfinite(err), err, np.nan), axis=0)
    ok = np.isfinite(mean_err) & (lead > 0)
    ax_e.plot(lead[ok], mean_err[ok], ls, color=color, label=label)
    for i in np.flatnonzero(diverged):
        s = min(int(first[i]), n)
        if np.isfinite(err[i, s]) and s > 0:
            ax_e.plot(lead[s], err[i, s], "x", color=color, markersize=7, markeredgewidth=1.8, zorder=5)
    v0 = energy[:, 0]
    finite_v = np.where(np.isfinite(energy), energy, np.nan)
    with np.errstate(invalid="ignore"):
        rise = np.nanmax(np.diff(finite_v, axis=1), axis=1) if n >= 1 and energy.shape[1] > 1 else np.zeros(len(v0))
    return {"n_steps": n, "diverged": int(diverged.sum()), "n_rollouts": int(diverged.size),
            "first_diverged_step": int(first[diverged].min()) if diverged.any() else -1,
            "final_error": float(np.nanmedian(err[:, n])) if np.isfinite(err[:, n]).any() else None,
            "largest_energy_increase_per_step": float(np.nanmax(rise)) if np.isfinite(rise).any() else None}


def plot_step_size_sweep(sweep: xr.Dataset, *, dataset: str, factors: Sequence[float] | None = None) -> Drawn:
    """The paper's figure 4: learned ``V`` (top) and relative RMSE against the truth (bottom) along rollouts at
    ``dt = f dt_train``, one column per stepper (explicit Euler, the paper's; stabilized, ours).

    Parameters
    ----------
    sweep
        :func:`mesodyn.diagnostics.step_size_sweep` output.
    factors
        Which factors to draw (default all of the file's).
    """
    factors = [float(f) for f in (sweep["factor"].values if factors is None else factors)]
    steppers = [str(s) for s in sweep["stepper"].values]
    stated = paper_values().get("step_size_sweep", {}).get(dataset, {})
    fig, axes = plt.subplots(2, len(steppers), figsize=(3.6 * len(steppers) + 0.6, 5.4), sharex=True, sharey="row",
                             squeeze=False)
    cmap = plt.get_cmap("viridis")
    colors = {f: cmap(i / max(1, len(factors) - 1) * 0.9) for i, f in enumerate(factors)}
    sub = sweep.sel(factor=factors)
    limits = _energy_limits(sub["energy"].values.reshape(-1, sub.sizes["step"]),
                            sub["diverged"].values.reshape(-1))
    numbers: dict[str, Any] = {}
    for c, stepper in enumerate(steppers):
        ax_v, ax_e = axes[0, c], axes[1, c]
        numbers[stepper] = {}
        for f in factors:
            numbers[stepper][f"{f:g}"] = _draw_rollouts(ax_v, ax_e, sweep, stepper, f, color=colors[f],
                                                        label=_factor_label(f), limits=limits)
        ax_v.set_title(_STEPPER_LABELS.get(stepper, stepper))
        if limits is not None:
            ax_v.set_ylim(*limits)
        ax_e.set_yscale("log")
        ax_e.set_xlabel(_time_label(dataset))
        if c == 0:
            ax_v.set_ylabel(r"learned energy $V_\theta$ (model units)")
            ax_e.set_ylabel("relative RMSE against the truth\n(mean over trajectories)")
    handles = [Line2D([], [], color=colors[f], label=_factor_label(f)) for f in factors]
    handles.append(Line2D([], [], color="0.3", marker="x", ls="none", markeredgewidth=1.8, label="diverged"))
    fig.legend(handles=handles, loc="outside right center", title=r"time step $\Delta t$")
    n_s = int(sweep.sizes["sample"])
    _title(fig, rf"rollouts at $\Delta t = f\,\Delta t_{{train}}$ ({_count(n_s, 'test trajectory', 'test trajectories')}; × diverged)", dataset)
    parts = []
    for stepper in steppers:
        div = [f for f in factors if numbers[stepper][f"{f:g}"]["diverged"]]
        parts.append(f"{_STEPPER_LABELS.get(stepper, stepper)} diverges at "
                     + (", ".join(f"{f:g}" for f in div) + " × dt_train" if div else "none of the time steps"))
        numbers[stepper]["smallest_diverging_factor"] = min(div) if div else None
    finding = "; ".join(parts)
    if "euler_diverges_from_factor" in stated:
        finding += f" (paper: explicit Euler blows up from {stated['euler_diverges_from_factor']:g} × dt_train)"
    return Drawn(fig, numbers, dict(stated), finding)


def plot_stepper_comparison(sweep: xr.Dataset, *, dataset: str, factors: Sequence[float] = (1, 3, 10)) -> Drawn:
    """Ours: explicit Euler (the paper's step) against the stabilized stepper (provably energy-dissipating for every
    ``dt``) at ``factors`` times the training step: learned ``V`` (left) and relative RMSE (right) against lead time.

    Parameters
    ----------
    sweep
        :func:`mesodyn.diagnostics.step_size_sweep` output holding the factors and both steppers.
    factors
        Factors to draw (those in the file).
    """
    have = [float(f) for f in sweep["factor"].values]
    factors = [float(f) for f in factors if any(math.isclose(float(f), h) for h in have)]
    if not factors:
        raise ValueError(f"the sweep holds none of the factors {list(factors)} (it has {have}).")
    steppers = [str(s) for s in sweep["stepper"].values]
    fig, (ax_v, ax_e) = plt.subplots(1, 2, figsize=(7.6, 3.4))
    styles = ["-", "--", ":", "-."]
    sub = sweep.sel(factor=factors)
    limits = _energy_limits(sub["energy"].values.reshape(-1, sub.sizes["step"]), sub["diverged"].values.reshape(-1))
    numbers: dict[str, Any] = {}
    for stepper in steppers:
        numbers[stepper] = {}
        for j, f in enumerate(factors):
            numbers[stepper][f"{f:g}"] = _draw_rollouts(
                ax_v, ax_e, sweep, stepper, f, color=_STEPPER_COLORS.get(stepper, "0.3"),
                ls=styles[j % len(styles)], label=None, limits=limits)
    if limits is not None:
        ax_v.set_ylim(*limits)
    ax_e.set_yscale("log")
    for ax in (ax_v, ax_e):
        ax.set_xlabel(_time_label(dataset))
    ax_v.set_ylabel(r"learned energy $V_\theta$ (model units)")
    ax_e.set_ylabel("relative RMSE against the truth\n(mean over trajectories)")
    handles = [Line2D([], [], color=_STEPPER_COLORS.get(s, "0.3"), label=_STEPPER_LABELS.get(s, s))
               for s in steppers]
    handles += [Line2D([], [], color="0.3", ls=styles[j % len(styles)], label=_factor_label(f))
                for j, f in enumerate(factors)]
    handles.append(Line2D([], [], color="0.3", marker="x", ls="none", markeredgewidth=1.8, label="diverged"))
    fig.legend(handles=handles, loc="outside right center")
    _panel_letters([ax_v, ax_e])
    _title(fig, "explicit Euler against the stabilized stepper at large time steps "
                f"({_count(int(sweep.sizes['sample']), 'test trajectory', 'test trajectories')})", dataset)
    parts = []
    for stepper in steppers:
        for f in factors:
            v = numbers[stepper][f"{f:g}"]
            state = (f"diverges in {v['diverged']}/{v['n_rollouts']} rollouts (first at step "
                     f"{v['first_diverged_step']})" if v["diverged"] else
                     f"stays bounded, final error {_g(v['final_error'])}")
            parts.append(f"{_STEPPER_LABELS.get(stepper, stepper)} at {f:g} × dt_train {state}")
    return Drawn(fig, numbers, {}, "; ".join(parts))


# -- figure 5: learned energy along the true trajectories -----------------------------------------------------------
def plot_energy_along_truth(ds: xr.Dataset, *, dataset: str) -> Drawn:
    """The paper's figure 5: ``V_theta(u(t))`` (left) and ``V_theta(u(t)) - V_theta(u(0))`` (right) along the true
    test trajectories; a learned energy that the true dynamics (nearly) conserve is an approximate invariant.

    Parameters
    ----------
    ds
        :func:`mesodyn.diagnostics.energy_along_truth` output.
    """
    t = ds["time"].values - float(ds["time"].values[0])
    energy, change = ds["energy"].values, ds["energy_change"].values
    drift = ds["relative_drift"].values
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(7.2, 3.2))
    cmap = plt.get_cmap("viridis")
    n = energy.shape[0]
    for i in range(n):
        color = cmap(i / max(1, n - 1) * 0.9)
        ax.plot(t, energy[i], color=color, lw=1.0)
        ax_d.plot(t, change[i], color=color, lw=1.0)
    ax_d.axhline(0.0, color="0.3", lw=0.8)
    for a in (ax, ax_d):
        a.set_xlabel(_time_label(dataset, "time"))
    ax.set_ylabel(r"learned energy $V_\theta(u(t))$ (model units)")
    ax_d.set_ylabel(r"$V_\theta(u(t)) - V_\theta(u(0))$ (model units)")
    ax_d.set_title(f"max |ΔV| / max(|V(0)|, 1): median {_g(float(np.median(drift)), 2)}, "
                   f"largest {_g(float(np.max(drift)), 2)}", fontsize=8)
    _panel_letters([ax, ax_d])
    _title(fig, f"learned energy along {_count(n, 'true test trajectory', 'true test trajectories')} (no rollout)", dataset)
    numbers = {"n_trajectories": n, "relative_drift_median": float(np.median(drift)),
               "relative_drift_max": float(np.max(drift)),
               "mean_energy_change_at_end": float(np.mean(change[:, -1]))}
    finding = (f"along the true trajectories the learned energy changes by at most {_g(float(np.max(drift)), 2)} of "
               f"max(|V(0)|, 1) (median over {n} trajectories {_g(float(np.median(drift)), 2)})")
    return Drawn(fig, numbers, {}, finding)


# -- figure 6: one-step energy change against the time step ---------------------------------------------------------
def plot_energy_change_vs_dt(ds: xr.Dataset, *, dataset: str) -> Drawn:
    """The paper's figure 6: per trajectory the median and the largest one-step ``|V(u^{s+1}) - V(u^s)|`` of
    rollouts against ``dt`` (log-log), the fitted power laws (one exponent, one prefactor per trajectory) with
    ``R^2``; reference slopes 1 and 2 in grey.

    Parameters
    ----------
    ds
        :func:`mesodyn.diagnostics.energy_change_vs_dt` output.
    """
    dts = ds["dt"].values
    cap = ds.attrs.get("cap", "none")
    cap = None if cap in ("none", None) else float(cap)
    dt_train = float(ds.attrs.get("dt_train", np.nan))
    fig, ax = plt.subplots(figsize=(7.0, 3.9))
    numbers: dict[str, Any] = {}
    for key, marker, color in (("median", "o", "#0072B2"), ("max", "^", "#D55E00")):
        values = ds[f"{key}_change"].values                      # (dt, sample)
        p, c, r2 = (float(ds[f"{key}_{name}"].item()) for name in ("exponent", "prefactor", "r2"))
        for j in range(values.shape[1]):
            ok = np.isfinite(values[:, j]) & (values[:, j] > 0)
            ax.plot(dts[ok], values[ok, j], marker=marker, color=color, lw=0.6, alpha=0.55, markersize=3.5)
        if np.isfinite(p):
            x = np.array([dts.min(), dts.max()])
            ax.plot(x, c * x**p, color=color, lw=2.0,
                    label=rf"{key} over steps: $|\Delta V| \propto \Delta t^{{{p:.2f}}}$, $R^2$ = {r2:.3f}")
        else:
            ax.plot([], [], color=color, lw=2.0, label=f"{key} over steps: no fit (too few points)")
        numbers[key] = {"exponent": p, "prefactor": c, "r2": r2, "n_points": int(ds[f"{key}_n_points"].item()),
                        "exponent_per_sample": [float(v) for v in ds[f"{key}_exponent_per_sample"].values]}
    finite = _finite(np.concatenate([ds["median_change"].values.ravel(), ds["max_change"].values.ravel()]))
    finite = finite[finite > 0]
    if finite.size:
        anchor = float(np.exp(np.mean(np.log(finite))))
        x0 = float(np.exp(np.mean(np.log(dts))))
        x = np.array([dts.min(), dts.max()])
        for order, ls in ((1, ":"), (2, "--")):
            ax.plot(x, anchor * (x / x0) ** order, ls, color="0.55", lw=1.0, label=rf"reference slope {order}")
    if cap is not None:
        ax.axhline(cap, color="0.3", lw=0.8, ls="-.", label=f"fit only below {cap:g}")
    if np.isfinite(dt_train):
        ax.axvline(dt_train, color="0.7", lw=0.8)
        ax.annotate(r"$\Delta t_{train}$", (dt_train, 0.02), xycoords=("data", "axes fraction"), ha="right",
                    fontsize=7.5, color="0.4", rotation=90)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(dts, [f"{dt:.2g}" for dt in dts])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(r"time step $\Delta t$ (" + ("slow time, " if is_chain(dataset) else "") + "nondim.)")
    ax.set_ylabel(r"one-step energy change $|V(u^{s+1}) - V(u^{s})|$" + "\n(model units)")
    ax.legend(loc="upper left")
    stepper = str(ds.attrs.get("stepper", ""))
    _title(fig, f"one-step energy change against the time step ({_count(int(ds.sizes['sample']), 'test trajectory', 'test trajectories')}, "
                f"{_STEPPER_LABELS.get(stepper, stepper)} step)", dataset)
    finding = (f"median |dV| grows as dt^{_g(numbers['median']['exponent'])} (R² {_g(numbers['median']['r2'])}), "
               f"max as dt^{_g(numbers['max']['exponent'])} (R² {_g(numbers['max']['r2'])})")
    return Drawn(fig, numbers, {}, finding)


# -- figure 7: order of the learned energy --------------------------------------------------------------------------
def _true_density(system: str | None, u: np.ndarray, epsilon: float | None) -> np.ndarray | None:
    """The true local density minus its value at 0, in the ``b = 1`` gauge (the true ``V`` has ``b = 1``)."""
    if system == "allen_cahn" and epsilon:
        return u**4 / (4 * epsilon**2) - u**2 / (2 * epsilon**2)
    if system == "kdv":
        return -(u**3)
    return None


def plot_energy_order(order: xr.Dataset, *, dataset: str, symbols: xr.Dataset | None = None,
                      epsilon: float | None = None) -> Drawn:
    """The paper's figure 7: left, ``|V_c(s u0) - V_c(0)|`` against the scale ``s`` (log-log) for ``V`` and its
    parts, with the fitted order ``p``; right, the learned local density ``F(u) - F(0)`` and ``a/2 u^2 + F(u) -
    F(0)``, with the true density in the learned gauge where it is known.

    Parameters
    ----------
    order
        :func:`mesodyn.diagnostics.energy_order` output.
    symbols
        :func:`mesodyn.diagnostics.operator_symbols` output of the same model (for ``b`` and the system): the true
        density times ``b`` is drawn where the system is known.
    epsilon
        Allen-Cahn interface width (for its true density).
    """
    scales = order["scale"].values
    has_density = "local_density" in order
    fig, axes = plt.subplots(1, 2 if has_density else 1, figsize=(7.4, 4.4), squeeze=False)
    ax = axes[0, 0]
    s_fit = order.attrs.get("s_max_fit", "none")
    s_fit = None if s_fit in ("none", None) else float(s_fit)
    numbers: dict[str, Any] = {}
    for comp in [str(c) for c in order["component"].values]:
        values = order["energy_difference"].sel(component=comp).values   # (scale, sample)
        p, r2 = float(order["exponent"].sel(component=comp).item()), float(order["r2"].sel(component=comp).item())
        numbers[comp] = {"exponent": p, "r2": r2}
        if not np.any(np.isfinite(values) & (values > 0)):
            continue  # a part that is identically zero (no V_nl, say)
        color = _COMPONENT_COLORS.get(comp, "0.3")
        for j in range(values.shape[1]):
            ok = np.isfinite(values[:, j]) & (values[:, j] > 0)
            ax.plot(scales[ok], values[ok, j], color=color, lw=0.9, alpha=0.7,
                    label=(f"{_COMPONENT_LABELS.get(comp, comp)}: p = {p:.2f}" if j == 0 else None))
    if s_fit is not None:
        ax.axvspan(scales.min(), s_fit, color="0.9", zorder=0, label=f"fit range s ≤ {s_fit:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"scale $s$ of the initial field $u_0$")
    ax.set_ylabel(r"$|V_c(s\,u_0) - V_c(0)|$ (model units)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, fontsize=7)
    ax.set_title(r"order $p$ of $|V_c(s u_0) - V_c(0)| \propto s^p$", fontsize=8.5)
    system = None
    b = None
    if symbols is not None:
        system = symbols.attrs.get("system")
        system = None if system in ("none", None) else str(system)
        b = float(symbols["b"].item())
    if has_density:
        ax_f = axes[0, 1]
        u = order["u"].values
        a = float(order["a"].item())
        ax_f.plot(u, order["local_density"].values, color="#0072B2", label=r"learned $F(u) - F(0)$")
        ax_f.plot(u, order["local_energy_density"].values, color="#D55E00",
                  label=r"learned $a u^2/2 + F(u) - F(0)$, a = " + _g(a))
        # A term linear in u shifts mu by a constant, which M + W annihilate where m(0) = 0 (conserved dynamics):
        # V is identifiable only up to it, so the density is also shown without its slope at 0.
        total = order["local_energy_density"].values
        slope0 = float(np.interp(0.0, u, np.gradient(total, u))) if u.min() < 0 < u.max() else 0.0
        ax_f.plot(u, total - slope0 * u, "-.", color="#009E73",
                  label=r"learned $a u^2/2 + F(u) - F(0) - F'(0)\,u$")
        numbers["density_slope_at_0"] = slope0
        truth = _true_density(system, u, epsilon)
        if truth is not None and b is not None:
            ax_f.plot(u, b * truth, "--", color=_PAPER_COLOR,
                      label=f"true density × b (b = {_g(b)}, the gauge)")
            numbers["true_density_scale_b"] = b
        ax_f.set_xlabel(r"field value $u$ (nondim.)")
        ax_f.set_ylabel("energy density (model units)")
        ax_f.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=1, fontsize=7)
        ax_f.set_title("learned local density", fontsize=8.5)
        numbers["a"] = a
    _panel_letters(axes[0])
    _title(fig, f"order of the learned energy ({_count(int(order.sizes['sample']), 'test initial field')})", dataset)
    finding = "fitted orders: " + ", ".join(
        f"{comp} p = {_g(v['exponent'])}" for comp, v in numbers.items()
        if isinstance(v, dict) and np.isfinite(v.get("exponent", np.nan)))
    return Drawn(fig, numbers, {}, finding)


# -- ours: operator symbols and dissipation --------------------------------------------------------------------------
def _k_max_fit(symbols: xr.Dataset) -> float | None:
    """The largest ``|k|`` the symbols were fitted over; ``None``: all modes."""
    k_fit = symbols.attrs.get("k_max_fit", "none")
    return None if k_fit in ("none", None) else float(k_fit)


def _draw_symbol_image(fig: plt.Figure, ax: plt.Axes, symbols: xr.Dataset) -> None:
    """2-D: ``b m(k_x, k_y)`` as an image over the wavenumber plane."""
    kx, ky = symbols["kx"].values, symbols["ky"].values
    im = ax.pcolormesh(kx, ky, symbols["b_m"].values, shading="nearest", rasterized=True)
    fig.colorbar(im, ax=ax, pad=0.01).set_label(r"$b\,m(k)$")
    ax.set_xlabel(r"wavenumber $k_x$")
    ax.set_ylabel(r"wavenumber $k_y$")
    ax.set_aspect("equal")
    ax.grid(False)
    ax.set_title(r"$b\,m(k_x, k_y)$", fontsize=8.5)


def _zoom_to_fitted_modes(ax: plt.Axes, cut: xr.Dataset, name: str, k: np.ndarray, k_fit: float) -> None:
    """Show the fitted modes and as many again beyond them, shaded (unexcited modes keep their initial values,
    which would set the scale otherwise)."""
    edge = min(2.0 * k_fit, float(np.abs(k).max()))
    for lo, hi in ((-edge, -k_fit), (k_fit, edge)):
        ax.axvspan(lo, hi, color="0.93", zorder=0, label="not fitted" if lo > 0 else None)
    ax.set_xlim(-edge, edge)
    shown = np.abs(k) <= edge
    values = np.concatenate([cut[name].values[shown]] + ([cut[f"true_{name}"].values[shown]]
                                                         if f"true_{name}" in cut else []))
    lo_v, hi_v = float(np.min(values)), float(np.max(values))
    pad = 0.08 * max(hi_v - lo_v, 1e-12)
    ax.set_ylim(lo_v - pad, hi_v + 3 * pad)


def _draw_symbol(ax: plt.Axes, symbols: xr.Dataset, cut: xr.Dataset, *, name: str, k: np.ndarray, xlabel: str,
                 ylabel: str) -> dict[str, float]:
    """One symbol (``"b_m"`` or ``"b_phi"``) against ``k`` along ``cut``, learned and true, with its fit to the
    truth; returns the fit's coefficient and relative residual (empty where there is no fit)."""
    numbers: dict[str, float] = {}
    k_fit = _k_max_fit(symbols)
    ax.plot(k, cut[name].values, ".-", color="#0072B2", lw=0.8, markersize=2.5, label="learned")
    if f"true_{name}" in cut:
        ax.plot(k, cut[f"true_{name}"].values, "--", color=_PAPER_COLOR, lw=1.2, label="truth")
    if f"{name}_fit_coefficient" in symbols:
        c = float(symbols[f"{name}_fit_coefficient"].item())
        res = float(symbols[f"{name}_fit_residual"].item())
        where = "" if k_fit is None else f" (|k| ≤ {k_fit:.3g})"
        ax.text(0.03, 0.97, f"learned ≈ {c:.3f} × truth{where}\nrelative residual {res:.2g}",
                transform=ax.transAxes,
                va="top", fontsize=7, bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.85})
        numbers[f"{name}_fit_coefficient"], numbers[f"{name}_fit_residual"] = c, res
    if k_fit is not None and k_fit < np.abs(k).max():
        _zoom_to_fitted_modes(ax, cut, name, k, k_fit)
    ax.set_xlabel(xlabel + " (1/length)")
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, fontsize=7)
    return numbers


def _draw_dissipation(ax: plt.Axes, dissipation: xr.Dataset, dataset: str) -> dict[str, Any]:
    """``<mu, M mu>`` against the discrete rate ``-(V^{s+1} - V^s)/dt`` along rollouts, on a symmetric log axis;
    returns the median dissipation, their median relative mismatch and how many steps raised the energy."""
    t = dissipation["time"].values
    d, rate = dissipation["dissipation"].values, dissipation["energy_rate"].values
    for j in range(d.shape[0]):
        ax.plot(t, d[j], color="#009E73", lw=1.0, label=r"$\langle\mu, M\mu\rangle$" if j == 0 else None)
        ax.plot(t, -rate[j], ":", color="#D55E00", lw=1.2,
                label=r"$-(V^{s+1} - V^{s})/\Delta t$" if j == 0 else None)
    linthresh = max(1e-6, float(np.nanmax(np.abs(d))) * 1e-3) if np.isfinite(np.nanmax(np.abs(d))) else 1e-6
    ax.set_yscale("symlog", linthresh=linthresh)
    # decades only outside the linear band around 0 (inside it they fall on top of each other), and 0
    lo, hi = ax.get_ylim()
    top = max(abs(lo), abs(hi), linthresh)
    decades = [10.0 ** e for e in range(math.ceil(math.log10(linthresh)), math.floor(math.log10(top)) + 1)]
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(
        [0.0] + [v for v in decades if v <= hi] + [-v for v in decades if -v >= lo]))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(_time_label(dataset))
    ax.set_ylabel("dissipation rate (model units / time)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=7)
    ax.set_title(f"along rollouts ({dissipation.attrs.get('stepper', '')} step)", fontsize=8.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        mismatch = np.nanmedian(np.abs(-rate[:, :-1] - d[:, :-1]) / np.maximum(np.abs(d[:, :-1]), 1e-300))
    return {"dissipation_median": float(np.nanmedian(d)), "rate_vs_dissipation_relative_mismatch": float(mismatch),
            "energy_increases": int(np.sum(rate[:, :-1] > 0))}


def _symbols_finding(numbers: Mapping[str, Any], symbols: xr.Dataset) -> str:
    """``b``, ``a/b``, each symbol's fit to the truth and how often the energy rose along the rollouts."""
    parts = [f"b = {_g(numbers['b'])}, a/b = {_g(numbers['a_over_b'])}"]
    k_fit = _k_max_fit(symbols)
    for name in ("b_m", "b_phi"):
        if f"{name}_fit_coefficient" in numbers:
            over = "" if k_fit is None else f" over |k| ≤ {k_fit:.3g}"
            parts.append(f"{name.replace('_', ' ')} ≈ {numbers[name + '_fit_coefficient']:.3f} × truth{over} "
                         f"(relative residual {numbers[name + '_fit_residual']:.2g})")
    if "energy_increases" in numbers:
        parts.append(f"the energy rose in {numbers['energy_increases']} rollout steps")
    return "; ".join(parts)


def plot_operator_symbols(symbols: xr.Dataset, *, dataset: str, dissipation: xr.Dataset | None = None) -> Drawn:
    """Ours: the gauge-invariant symbols ``b m(k)`` (of ``M``) and ``b phi(k)`` (of ``W = i phi``) against the truth
    where it is known (Allen-Cahn ``b m = 1``, ``b phi = 0``; KdV ``b m = 0``, ``b phi = -k``), and, if given, the
    dissipation ``<mu, M mu>`` against the discrete energy rate ``-(V^{s+1} - V^s)/dt`` along rollouts.

    Parameters
    ----------
    symbols
        :func:`mesodyn.diagnostics.operator_symbols` output (1-D: dim ``k``; 2-D: ``ky``, ``kx``).
    dissipation
        :func:`mesodyn.diagnostics.dissipation_along_rollout` output.
    """
    two_d = "kx" in symbols.dims
    n_panels = 2 + (dissipation is not None) + two_d
    fig, axes = plt.subplots(1, n_panels, figsize=(2.9 * n_panels + 0.3, 3.7), squeeze=False)
    axes = list(axes[0])
    numbers: dict[str, Any] = {"b": float(symbols["b"].item()), "a_over_b": float(symbols["a_over_b"].item())}
    if _k_max_fit(symbols) is not None:
        numbers["k_max_fit"] = _k_max_fit(symbols)
    if two_d:  # the plane as an image, and the symbols along k_y = 0
        _draw_symbol_image(fig, axes[0], symbols)
        cut, k, klabel = symbols.sel(ky=0.0), symbols["kx"].values, r"wavenumber $k_x$ (at $k_y = 0$)"
    else:
        cut, k, klabel = symbols, symbols["k"].values, r"wavenumber $k$"
    first = 1 if two_d else 0  # the panel of b m(k): after the image in 2-D
    for name, ax, label in (("b_m", axes[first], r"$b\,m(k)$ of $M$"),
                            ("b_phi", axes[first + 1], r"$b\,\phi(k)$ of $W$")):
        numbers.update(_draw_symbol(ax, symbols, cut, name=name, k=k, xlabel=klabel, ylabel=label))
    # the truth's fit coefficient is 1 by definition: the number each learned fit is read against
    truth = {key: 1.0 for key in numbers if key.endswith("_fit_coefficient")}
    if dissipation is not None:
        numbers.update(_draw_dissipation(axes[-1], dissipation, dataset))
    _panel_letters(axes)
    system = symbols.attrs.get("system", "none")
    _title(fig, "learned operators in the gauge-invariant form" + ("" if system == "none" else
                                                                   f" (truth: {system})"), dataset)
    return Drawn(fig, numbers, truth, _symbols_finding(numbers, symbols))


# -- ours: prediction against truth ---------------------------------------------------------------------------------
_PREDICTION_SNAPSHOTS = 4


def _prediction_panels(ds: xr.Dataset) -> tuple[list[tuple[str, np.ndarray]], float, float]:
    """Truth, prediction and error, with the shared colour limit of the first two and the error's."""
    panels = [(name, np.asarray(ds[key].values, dtype=np.float64))
              for name, key in (("truth", "truth"), ("prediction", "prediction"), ("error", "error"))]
    field_lim = float(np.nanmax(np.abs(panels[0][1]))) or 1.0
    finite = _finite(panels[2][1])
    error_lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else field_lim
    return panels, field_lim, error_lim


def _draw_space_time(fig: plt.Figure, ds: xr.Dataset, dataset: str) -> None:
    """1-D: truth, prediction and error as images over (x, t), one colour scale for truth and prediction."""
    panels, field_lim, error_lim = _prediction_panels(ds)
    x, t = ds["x"].values, ds["time"].values
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (name, values) in zip(axes, panels):
        lim = error_lim if name == "error" else field_lim
        image = ax.imshow(values, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                          extent=(float(x[0]), float(x[-1]), float(t[0]), float(t[-1])), interpolation="nearest")
        ax.grid(False)
        ax.set_title(name)
        ax.set_xlabel("x")
        fig.colorbar(image, ax=ax, shrink=0.85)
    axes[0].set_ylabel(_time_label(dataset, "time"))
    _panel_letters(axes)


def _draw_snapshots(fig: plt.Figure, ds: xr.Dataset) -> list[int]:
    """2-D: truth, prediction and error (rows) at a few frames from the first to the last (columns)."""
    panels, field_lim, error_lim = _prediction_panels(ds)
    n_time = int(ds.sizes["time"])
    frames = sorted({int(round(f)) for f in np.linspace(0, n_time - 1, min(_PREDICTION_SNAPSHOTS, n_time))})
    axes = fig.subplots(3, len(frames), squeeze=False)
    for row, (name, values) in enumerate(panels):
        lim = error_lim if name == "error" else field_lim
        for col, frame in enumerate(frames):
            ax = axes[row, col]
            image = ax.imshow(values[frame], origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim,
                              interpolation="nearest")
            ax.grid(False)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t = {float(ds['time'].values[frame]):.3g}", fontsize=8)
            if col == 0:
                ax.set_ylabel(name)
        fig.colorbar(image, ax=list(axes[row]), shrink=0.85)
    return frames


def plot_prediction(ds: xr.Dataset, *, dataset: str) -> Drawn:
    """Ours: a test trajectory rolled out by the model from its first frame against the truth, with the error;
    space-time images for 1-D fields, snapshots for 2-D ones.

    Parameters
    ----------
    ds
        :func:`mesodyn.diagnostics.prediction` output.
    """
    two_d = ds["truth"].ndim == 3
    fig = plt.figure(figsize=(7.0, 5.6) if two_d else (7.0, 3.2), layout="constrained")
    if two_d:
        frames = _draw_snapshots(fig, ds)
    else:
        _draw_space_time(fig, ds, dataset)
        frames = list(range(int(ds.sizes["time"])))
    rel = ds["rel_rmse"].values
    diverged = int(ds["diverged_frame"].item())
    model = MODEL_LABELS.get(str(ds.attrs.get("model")), str(ds.attrs.get("model")))
    sample = json.loads(str(ds.attrs.get("samples", "[-1]")))[0]
    _title(fig, f"{model} against the truth on test trajectory {sample}, from its first frame", dataset)
    numbers = {"sample": int(sample), "frames": [int(f) for f in frames], "rel_rmse_last": float(rel[-1]),
               "rel_rmse_max": float(np.nanmax(rel)) if np.isfinite(rel).any() else math.nan,
               "diverged_frame": diverged, "n_frames": int(ds.sizes["time"])}
    if diverged >= 0:
        finding = f"the rollout of test trajectory {sample} is no longer finite from frame {diverged} on"
    else:
        finding = (f"over {numbers['n_frames'] - 1} steps of test trajectory {sample} the relative RMSE ends at "
                   f"{_g(numbers['rel_rmse_last'])} (largest {_g(numbers['rel_rmse_max'])})")
    return Drawn(fig, numbers, {}, finding)


def _long_horizon_runs(files: Sequence[xr.Dataset]) -> dict[str, list[xr.Dataset]]:
    runs: dict[str, list[xr.Dataset]] = {}
    for ds in files:
        # the run is the folder of results/models/{dataset}/{run}/seed{seed}; a file made outside the workflow
        # names only its model
        runs.setdefault(Path(str(ds.attrs.get("run_dir", f"{ds.attrs.get('model')}/seed"))).parent.name,
                        []).append(ds)
    order = _run_order([(run, str(group[0].attrs.get("model"))) for run, group in runs.items()])
    return {run: runs[run] for run, _ in order}


def _run_label(run: str, group: Sequence[xr.Dataset]) -> str:
    model = str(group[0].attrs.get("model"))
    label = MODEL_LABELS.get(model, model)
    return label if run == model else f"{label} ({run})"


def plot_long_horizon(files: Sequence[xr.Dataset], *, dataset: str) -> Drawn:
    """Ours: every fitted run rolled out far past the data from every held-out initial state: (a) the share of
    rollouts still finite against the step, (b) the largest ``|u|`` of each rollout over the data's largest, (c) the
    learned ``V`` along the rollouts (median over trajectories of ``V - V(u0)`` relative to ``max(|V(u0)|, 1)``)
    for the runs with an energy.

    Parameters
    ----------
    files
        :func:`mesodyn.diagnostics.long_horizon` outputs, one per run and seed.
    """
    runs = _long_horizon_runs(files)
    fig, (ax_f, ax_u, ax_v) = plt.subplots(1, 3, figsize=(7.0, 2.6), layout="constrained")
    numbers: dict[str, Any] = {}
    for i, (run, group) in enumerate(runs.items()):
        label, color = _run_label(run, group), _MODEL_COLORS.get(str(group[0].attrs.get("model")))
        steps = group[0]["step"].values
        finite = np.mean([ds["finite_fraction"].values for ds in group], axis=0)
        ax_f.plot(steps, finite, color=color, label=label)
        ratio = np.concatenate([ds["max_abs_u_ratio"].values for ds in group])
        ax_u.plot(np.full(ratio.size, i), ratio, "o", ms=2.5, alpha=0.6, color=color)
        rose = None
        if "energy" in group[0]:
            energy = np.concatenate([ds["energy"].values for ds in group])
            rel = (energy - energy[:, :1]) / np.maximum(np.abs(energy[:, :1]), 1.0)
            with np.errstate(all="ignore"):
                median = np.nanmedian(np.where(np.isfinite(rel), rel, np.nan), axis=0) if np.isfinite(rel).any() \
                    else np.full(steps.size, np.nan)
            ax_v.plot(steps, median, color=color, label=label)
            rose = int(sum(int((ds["energy_rise_steps"].values > 0).sum()) for ds in group))
        first = np.concatenate([ds["first_nonfinite_step"].values for ds in group])
        numbers[run] = {"finite_fraction_last": float(finite[-1]), "n_steps": int(steps[-1]),
                        "first_divergence_step": int(first[first >= 0].min()) if (first >= 0).any() else -1,
                        "max_abs_u_ratio": float(np.nanmax(ratio)) if np.isfinite(ratio).any() else math.nan,
                        "energy_rose": rose}
    ax_f.set(xlabel="step", ylabel="share of rollouts finite", ylim=(-0.05, 1.05))
    ax_f.legend(fontsize="small")
    ax_u.axhline(1.0, color=_PAPER_COLOR, lw=0.8, ls="--")
    ax_u.set_xticks(range(len(runs)), [_run_label(r, g) for r, g in runs.items()], rotation=45, ha="right",
                    fontsize="small")
    ax_u.set(ylabel=r"max $|u|$ / data's max $|u|$", yscale="log")
    ax_v.set_yscale("symlog", linthresh=1e-3)
    ax_v.set(xlabel="step", ylabel=r"median $(V - V_0)/\max(|V_0|, 1)$")
    _panel_letters([ax_f, ax_u, ax_v])
    n_steps = max(v["n_steps"] for v in numbers.values())
    _title(fig, f"Rollouts of {n_steps} steps from every held-out initial state", dataset)
    parts = []
    for run, v in numbers.items():
        state = "all finite" if v["first_divergence_step"] < 0 else (
            f"{_g(100 * v['finite_fraction_last'], 2)} % finite (first lost at step {v['first_divergence_step']})")
        energy = "" if v["energy_rose"] is None else f", V rose along {v['energy_rose']}"
        parts.append(f"{_run_label(run, runs[run])}: {state}, max|u| {_g(v['max_abs_u_ratio'], 2)}x the data's{energy}")
    return Drawn(fig, numbers, {}, f"over {n_steps} steps: " + "; ".join(parts))


_SCORE_LABELS = {"symbol": "b(m + i phi)", "rate_zero": "linear rate about u = 0", "rate_mean": "linear rate about the mean",
                 "f2_over_b": "F''/b"}


def _identifiability_numbers(ds: xr.Dataset) -> dict[str, Any]:
    """The scalars of an identifiability file (spreads, residuals, the compared modes)."""
    return {name: float(ds[name]) for name in ds.data_vars if ds[name].ndim == 0}


def _identifiability_finding(numbers: Mapping[str, Any], n_fits: int, system: str) -> str:
    parts = [f"over the {n_fits} fits and the modes k <= {_g(numbers['k_energetic'], 3)}"]
    for name in ("symbol", "rate_zero"):
        if f"{name}_spread" in numbers:
            text = f"{_SCORE_LABELS[name]} spread {_g(100 * numbers[f'{name}_spread'], 2)} %"
            if f"{name}_residual" in numbers:
                truth = "the lattice's exact dispersion" if system in ("fput", "fene") else "the truth"
                text += f", {_g(100 * numbers[f'{name}_residual'], 2)} % from {truth}"
            if f"{name}_simulated_residual" in numbers:
                text += f" ({_g(100 * numbers[f'{name}_simulated_residual'], 2)} % from the lattice as simulated)"
            parts.append(text)
    return "; ".join(parts)


def _draw_rates(ax: plt.Axes, ds: xr.Dataset, part: str, k_cut: float) -> None:
    """One part of the fits' linear rates about ``u = 0`` (and the truth), zoomed to the compared modes."""
    k = ds["k"].values
    curves = [ds[f"rate_zero_{part}"].values[i] for i in range(ds.sizes["fit"])]
    for i, (fit, curve) in enumerate(zip(ds["fit"].values, curves)):
        ax.plot(k, curve, "-", lw=1.0, color=_FIT_COLORS[i % len(_FIT_COLORS)], label=str(fit))
    if f"true_rate_zero_{part}" in ds:
        curves.append(ds[f"true_rate_zero_{part}"].values)
        ax.plot(k, curves[-1], "--", color=_PAPER_COLOR, lw=1.0, label="truth")
    if f"simulated_rate_zero_{part}" in ds:
        curves.append(ds[f"simulated_rate_zero_{part}"].values)
        ax.plot(k, curves[-1], "-.", color="0.2", lw=0.8, label="lattice as simulated")
    ax.axvline(k_cut, color="0.6", lw=0.6, ls=":")
    shown = np.concatenate([c[k <= k_cut] for c in curves])
    shown = shown[np.isfinite(shown)]
    if shown.size and k_cut > 0:
        pad = 0.1 * max(float(np.ptp(shown)), 1e-12)
        ax.set(xlim=(0, 1.5 * k_cut), ylim=(shown.min() - pad, shown.max() + pad))
    ax.set(xlabel="$k$", ylabel=f"{'Re' if part == 'real' else 'Im'} " + r"$\lambda(k)$ about $u=0$")


_FIT_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


def plot_identifiability(ds: xr.Dataset, *, dataset: str) -> Drawn:
    """Ours: what several fits of one hypothesis learned, and whether it is identified: (a, b) the real and
    imaginary parts of the rate ``log(G)/dt`` of the one-step map linearized about ``u = 0`` with the truth (the
    chains: the lattice's exact dispersion in the data's frame), (c) the symbol ``b m(k)`` and ``b phi(k)`` of
    ``M + W`` in the ``b = 1`` gauge, (d) the curvature ``F''/b`` of the learned local density; the dotted line
    bounds the modes holding 99.9 % of the data's spectral energy (the compared ones)."""
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 4.8), layout="constrained")
    ax_re, ax_im, ax_sym, ax_f = axes.ravel()
    k_cut = float(ds["k_energetic"])
    _draw_rates(ax_re, ds, "real", k_cut)
    _draw_rates(ax_im, ds, "imag", k_cut)
    ax_re.legend(fontsize="small")
    k = ds["k"].values
    if "b_m" in ds:
        for i in range(ds.sizes["fit"]):
            color = _FIT_COLORS[i % len(_FIT_COLORS)]
            ax_sym.plot(k, ds["b_m"].values[i], "-", color=color, lw=1.0)
            ax_sym.plot(k, ds["b_phi"].values[i], ":", color=color, lw=1.0)
        if "true_symbol_real" in ds:
            ax_sym.plot(k, ds["true_symbol_real"].values, "--", color=_PAPER_COLOR, lw=1.0)
            ax_sym.plot(k, ds["true_symbol_imag"].values, "--", color=_PAPER_COLOR, lw=1.0)
        ax_sym.axvline(k_cut, color="0.6", lw=0.6, ls=":")
        ax_sym.set_xlim(0, 1.5 * k_cut)
        ax_sym.set(xlabel="$k$", ylabel=r"$b\,m(k)$ (solid), $b\,\phi(k)$ (dotted)")
    else:
        ax_sym.set_axis_off()
    if "f2_over_b" in ds:
        for i in range(ds.sizes["fit"]):
            ax_f.plot(ds["u_value"].values, ds["f2_over_b"].values[i], color=_FIT_COLORS[i % len(_FIT_COLORS)])
        ax_f.set(xlabel="$u$", ylabel=r"$F''(u)/b$")
    else:
        ax_f.set_axis_off()
    _panel_letters([ax_re, ax_im, ax_sym, ax_f])
    _title(fig, "What the fits learned: linear dynamics and symbols", dataset)
    numbers = _identifiability_numbers(ds)
    system = str(ds.attrs.get("system", "none"))
    return Drawn(fig, numbers, {}, _identifiability_finding(numbers, ds.sizes["fit"], system))


# -- one figure from its files ---------------------------------------------------------------------------------------
def _open(path: str | os.PathLike) -> xr.Dataset:
    return xr.load_dataset(path, engine="netcdf4")


def draw(figure: str, dataset: str, inputs: Mapping[str, Any], *, epsilon: float | None = None) -> Drawn:
    """Draw ``figure`` for ``dataset`` from its input files (:func:`figure_inputs`), inside the current style."""
    if figure not in FIGURES:
        raise ValueError(f"figure must be one of {', '.join(FIGURES)}, got {figure!r}.")
    if figure == "rel_rmse":
        metrics: dict[str, list[xr.Dataset]] = {}
        for path in inputs["metrics"]:
            ds = _open(path)
            metrics.setdefault(str(ds.attrs.get("label", Path(path).parent.name)), []).append(ds)
        return plot_rel_rmse(metrics, dataset=dataset)
    if figure == "energy_vs_truth":
        return plot_energy_vs_truth(_open(inputs["energy_vs_truth"]), dataset=dataset)
    if figure == "step_size_sweep":
        return plot_step_size_sweep(_open(inputs["step_size_sweep"]), dataset=dataset)
    if figure == "energy_along_truth":
        return plot_energy_along_truth(_open(inputs["energy_along_truth"]), dataset=dataset)
    if figure == "energy_change_vs_dt":
        return plot_energy_change_vs_dt(_open(inputs["energy_change_vs_dt"]), dataset=dataset)
    if figure == "energy_order":
        return plot_energy_order(_open(inputs["energy_order"]), dataset=dataset,
                                 symbols=_open(inputs["operator_symbols"]), epsilon=epsilon)
    if figure == "stepper_comparison":
        return plot_stepper_comparison(_open(inputs["step_size_sweep"]), dataset=dataset)
    if figure == "prediction":
        return plot_prediction(_open(inputs["prediction"]), dataset=dataset)
    if figure == "long_horizon":
        return plot_long_horizon([_open(path) for path in inputs["long_horizon"]], dataset=dataset)
    if figure == "identifiability":
        return plot_identifiability(_open(inputs["identifiability"]), dataset=dataset)
    return plot_operator_symbols(_open(inputs["operator_symbols"]), dataset=dataset,
                                 dissipation=_open(inputs["dissipation"]))


def make_figure(figure: str, dataset: str, inputs: Mapping[str, Any], *, pdf: str | os.PathLike,
                png: str | os.PathLike, numbers: str | os.PathLike | None = None,
                style_path: str | os.PathLike | None = None, epsilon: float | None = None) -> Drawn:
    """Draw one figure from its files and write PDF, PNG and (optionally) a JSON file of its numbers
    (``figure``, ``dataset``, ``title``, ``numbers``, ``paper``, ``paper_source``, ``finding``), all atomically and
    byte-identically on rerun."""
    with style(style_path):
        drawn = draw(figure, dataset, inputs, epsilon=epsilon)
        save_figure(drawn.figure, pdf, png)
    if numbers is not None:
        info = FIGURES[figure]
        record = {"figure": figure, "dataset": dataset, "title": info.title, "category": info.category,
                  "paper_figure": info.paper_figure, "numbers": _json_safe(drawn.numbers),
                  "paper": _json_safe(drawn.paper), "paper_source": paper_values()["source"] if drawn.paper else None,
                  "finding": drawn.finding}
        atomic_write(numbers, (json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode())
    return drawn
