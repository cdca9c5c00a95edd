"""The 5-step relative-RMSE table: ours beside the paper's published numbers, as CSV, Markdown and LaTeX.

Reads evaluation files only (written by :func:`mesodyn.evaluation.evaluate_files`) and never imports PyTorch.
The published numbers are the authors' result file (MLDS-NUS/Meso-SpecOnsNet, arXiv 2605.16211), kept unchanged
as package data (``mesodyn/data/paper_table.csv``) and read by :func:`paper_table`, which maps the authors' names
to ours (:data:`PAPER_DATASETS`, :func:`paper_model_name`).

Outputs of :func:`rel_rmse_table` (``out_dir/rel_rmse_first{steps}.{csv,md,tex}``, byte-identical on rerun):

- ``.csv``: tidy, full precision, one row per (dataset, model, set, step) with columns ``dataset``, ``model``
  (the evaluation's label), ``registry_model``, ``set``, ``step``, ``mean``, ``std_trajectories``,
  ``std_seeds`` (NaN with one seed), ``n_seeds``, ``n_trajectories``, ``trained_on``, ``diverged_step``
  (earliest over seeds, −1 never), ``paper_mean``, ``paper_std`` and ``ratio`` (= ``mean / paper_mean``);
- ``.md`` and ``.tex``: one row per (dataset, model, set) and one column per step, 3 significant digits,
  ``mean ± std`` and the ratio to the published mean in parentheses, a ``published`` row with the authors'
  numbers, ``†`` where the set had diverged by that step (errors clamped to 1), and a caption naming the
  evaluation sets (``heldout`` is never trained on). They carry the mesodyn version and commit as a comment.
  The ``.md`` ends with the evaluation-set difficulty (:func:`set_difficulty`) and SpecOnsNet's margin over
  the baselines, ours and published (:func:`baseline_margin`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from mesodyn._io import atomic_write
from mesodyn.evaluation import SETS, combine_seeds
from mesodyn.provenance import provenance_attrs
from mesodyn.registry import DATASETS, MODELS

__all__ = ["PAPER_DATASETS", "PAPER_MODELS", "DATASET_ORDER", "MODEL_ORDER", "paper_model_name", "paper_table",
           "rel_rmse_table", "set_difficulty", "baseline_margin", "write_table", "read_table", "table_page", "format_sig", "write_captioned", "long_horizon_table", "write_long_horizon_table",
           "identifiability_table", "write_identifiability_table", "captioned_page", "IDENTIFIED_SPREAD"]

PAPER_SOURCE = "the authors' result file, MLDS-NUS/Meso-SpecOnsNet, arXiv 2605.16211"

PAPER_DATASETS: dict[str, str] = {info.published: name for name, info in DATASETS.items() if info.published}
"""The authors' data-set names -> ours (:data:`mesodyn.registry.DATASETS`)."""

PAPER_MODELS: dict[str, str] = {
    "s_onsagernet": "speconsnet", "fno": "fno", "onsagernet1d_lowrank": "onsagernet",
    "res_onsagernet": "res_onsagernet", "res_onsagernet_2d": "res_onsagernet",
}
"""The authors' model names -> ours (besides the classical rows and the ``*_realV`` rows, see
:func:`paper_model_name`)."""

DATASET_ORDER = tuple(DATASETS)
MODEL_ORDER = tuple(MODELS)


def paper_model_name(paper_dataset: str, paper_model: str) -> str:
    """Our name of the authors' model ``paper_model`` in their data set ``paper_dataset``.

    A row named after its data set is the classical solver; ``*_realV`` is the true-V ablation.
    """
    if paper_model == paper_dataset:
        return "classical"
    if paper_model.endswith("_realV"):
        return "speconsnet_true_v"
    if paper_model not in PAPER_MODELS:
        raise ValueError(f"unknown model {paper_model!r} in the paper's table (known: "
                         f"{', '.join(sorted(PAPER_MODELS))}, classical rows and *_realV rows).")
    return PAPER_MODELS[paper_model]


def paper_table() -> pd.DataFrame:
    """The published relative RMSE, tidy: one row per (dataset, model, step).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``model`` (our names), ``paper_dataset``, ``paper_model``, ``display`` (the authors'
        label), ``step`` (1-5), ``mean``, ``std`` (over their 10 evaluation trajectories).
    """
    text = resources.files("mesodyn").joinpath("data", "paper_table.csv").read_text(encoding="utf-8")
    wide = pd.read_csv(io.StringIO(text))
    steps = sorted(int(col.split("_")[1]) for col in wide.columns if col.startswith("step_") and col.endswith("_mean"))
    rows = []
    for rec in wide.itertuples(index=False):
        if rec.dataset not in PAPER_DATASETS:
            raise ValueError(f"unknown data set {rec.dataset!r} in the paper's table.")
        for step in steps:
            rows.append({
                "dataset": PAPER_DATASETS[rec.dataset], "model": paper_model_name(rec.dataset, rec.model),
                "paper_dataset": rec.dataset, "paper_model": rec.model, "display": rec.display, "step": step,
                "mean": float(getattr(rec, f"step_{step}_mean")), "std": float(getattr(rec, f"step_{step}_std")),
            })
    return _sorted(pd.DataFrame(rows), model_key="model", extra=("step",))


def _order(value: str, order: tuple[str, ...]) -> int:
    return order.index(value) if value in order else len(order)


def _sorted(df: pd.DataFrame, *, model_key: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    keys = pd.DataFrame({
        "_d": [_order(v, DATASET_ORDER) for v in df["dataset"]], "_dn": df["dataset"],
        "_m": [_order(v, MODEL_ORDER) for v in df[model_key]], "_mn": df["model"],
    }, index=df.index)
    for name in extra:
        keys[name] = [SETS.index(v) if name == "set" and v in SETS else v for v in df[name]]
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return df.loc[order].reset_index(drop=True)


# -- our numbers ----------------------------------------------------------------------------------------------
def _load(path: str | os.PathLike) -> xr.Dataset:
    return xr.load_dataset(path, engine="netcdf4")


def _group_rows(datasets: list[xr.Dataset], steps: int, paper: pd.DataFrame) -> list[dict[str, Any]]:
    first = datasets[0]
    models = {str(ds.attrs.get("model")) for ds in datasets}
    if len(models) != 1:
        raise ValueError(f"evaluations labelled {first.attrs.get('label')!r} come from different models: "
                         f"{', '.join(sorted(models))}.")
    n_avail = int(first.sizes["step"])
    if steps > n_avail:
        raise ValueError(f"the table needs {steps} steps but an evaluation file holds only {n_avail}.")
    if len(datasets) == 1:
        mean, std_traj = first["rel_rmse_mean"].values, first["rel_rmse_std"].values
        std_seed = np.full(mean.shape, np.nan)
        diverged = first["diverged_step"].values
    else:
        combined = combine_seeds(datasets)
        mean, std_traj = combined["rel_rmse_mean"].values, combined["rel_rmse_std_trajectories"].values
        std_seed = combined["rel_rmse_std_seeds"].values
        dv = combined["diverged_step"].values.astype(float)
        dv[dv < 0] = np.inf
        diverged = np.where(np.isfinite(dv.min(axis=0)), dv.min(axis=0), -1).astype(np.int64)
    dataset, model = str(first.attrs.get("dataset")), str(first.attrs.get("model"))
    label = str(first.attrs.get("label", model))
    published = paper[(paper["dataset"] == dataset) & (paper["model"] == model)].set_index("step")
    rows = []
    for k, set_name in enumerate(first["set"].values):
        for t in range(steps):
            step = int(first["step"].values[t])
            p_mean = float(published.loc[step, "mean"]) if step in published.index else math.nan
            p_std = float(published.loc[step, "std"]) if step in published.index else math.nan
            rows.append({
                "dataset": dataset, "model": label, "registry_model": model, "set": str(set_name), "step": step,
                "mean": float(mean[k, t]), "std_trajectories": float(std_traj[k, t]),
                "std_seeds": float(std_seed[k, t]), "n_seeds": len(datasets),
                "n_trajectories": int(first["n_trajectories"].values[k]),
                "trained_on": int(first["trained_on"].values[k]), "diverged_step": int(diverged[k]),
                "train_steps": int(first.attrs.get("train_steps", -1)),
                "train_batch_size": int(first.attrs.get("train_batch_size", -1)),
                "train_lr": float(first.attrs.get("train_lr", math.nan)),
                "train_schedule": str(first.attrs.get("train_schedule", "")),
                "train_stop_reason": str(first.attrs.get("train_stop_reason", "")),
                "paper_mean": p_mean, "paper_std": p_std,
                "ratio": float(mean[k, t]) / p_mean if math.isfinite(p_mean) else math.nan,
            })
    return rows


def rel_rmse_table(metric_files: Iterable[str | os.PathLike], *, steps: int = 5,
                   out_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Relative RMSE at steps 1..``steps`` of every (dataset, model) in ``metric_files``, beside the paper's.

    Files with the same ``dataset`` and ``label`` attributes are the seeds of one model: the mean is then over
    seeds of the per-seed means, ``std_trajectories`` the root mean of the per-seed variances over trajectories
    and ``std_seeds`` the standard deviation (ddof 0) of the per-seed means
    (:func:`mesodyn.evaluation.combine_seeds`). The published numbers are matched by data set and registry
    model name.

    Parameters
    ----------
    metric_files : iterable of path
        Evaluation files (:func:`mesodyn.evaluation.evaluate_files`); their order does not matter.
    steps : int
        The first steps to tabulate (the paper: 5).
    out_dir : path, optional
        If given, write ``rel_rmse_first{steps}.csv``, ``.md`` and ``.tex`` there (:func:`write_table`).

    Returns
    -------
    pandas.DataFrame
        The tidy table (columns in the module docstring), sorted by data set, model, set and step.
    """
    if isinstance(steps, bool) or int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    steps = int(steps)
    groups: dict[tuple[str, str], list[tuple[str, xr.Dataset]]] = {}
    for path in metric_files:
        ds = _load(path)
        key = (str(ds.attrs.get("dataset")), str(ds.attrs.get("label", ds.attrs.get("model"))))
        groups.setdefault(key, []).append((str(path), ds))
    if not groups:
        raise ValueError("rel_rmse_table needs at least one evaluation file.")
    paper = paper_table()
    rows: list[dict[str, Any]] = []
    for key in sorted(groups):
        # seeds in a fixed order (by seed, then path) so that the file order never changes a number
        members = sorted(groups[key], key=lambda item: (int(item[1].attrs.get("seed", -1)), item[0]))
        rows.extend(_group_rows([ds for _, ds in members], steps, paper))
    table = pd.DataFrame(rows)
    keys = pd.DataFrame({"_rm": table["registry_model"]})
    table = pd.concat([table, keys], axis=1)
    table = _sorted(table, model_key="_rm", extra=("set", "step")).drop(columns="_rm")
    if out_dir is not None:
        write_table(table, out_dir, steps=steps)
    return table


def set_difficulty(table: pd.DataFrame, *, step: int | None = None) -> pd.DataFrame:
    """How much harder our held-out set is than the paper's 10 trajectories, model by model.

    For every (dataset, model) of ``table`` (from :func:`rel_rmse_table`) evaluated on both sets: the mean error on
    ``heldout`` divided by the mean error on ``paper`` at ``step`` (default: the last step of the table), same
    model and seeds. The classical row trains on nothing, so its ratio is the effect of the trajectories alone:
    a ratio to the published number measured on ``heldout`` is inflated by about that factor when it is above 1.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``model``, ``step``, ``heldout``, ``paper``, ``ratio``; in the table's order.
    """
    step = int(table["step"].max()) if step is None else int(step)
    at = table[table["step"] == step]
    wide = at.pivot_table(index=["dataset", "model"], columns="set", values="mean", sort=False)
    if not {"heldout", "paper"} <= set(wide.columns):
        return pd.DataFrame(columns=["dataset", "model", "step", "heldout", "paper", "ratio"])
    wide = wide.dropna(subset=["heldout", "paper"]).reset_index()
    out = pd.DataFrame({"dataset": wide["dataset"], "model": wide["model"], "step": step,
                        "heldout": wide["heldout"], "paper": wide["paper"],
                        "ratio": wide["heldout"] / wide["paper"]})
    return out.reset_index(drop=True)


def _grid_frame(frame: pd.DataFrame, column: str, cell) -> pd.DataFrame:
    """One row per data set of ``frame`` (in its order), one column per value of ``frame[column]`` (in order of
    appearance), ``cell(row)`` in each (a row tuple of ``frame``), "–" where none."""
    columns = list(dict.fromkeys(frame[column]))
    rows = []
    for dataset, group in frame.groupby("dataset", sort=False):
        by = {getattr(r, column): r for r in group.itertuples()}
        rows.append({"data": dataset, **{c: cell(by[c]) if c in by else "–" for c in columns}})
    return pd.DataFrame(rows, columns=["data", *columns])


def _grid_markdown(grid: pd.DataFrame) -> list[str]:
    """Markdown table lines of a :func:`_grid_frame`."""
    lines = [f"| {' | '.join(grid.columns)} |", "|---" * grid.shape[1] + "|"]
    return lines + [f"| {' | '.join(str(v) for v in row)} |" for row in grid.itertuples(index=False)]


def _section_markdown(section: tuple[str, str, pd.DataFrame] | None) -> str:
    """A section after the table (heading, text, grid) as Markdown; empty without one."""
    if section is None:
        return ""
    heading, text, grid = section
    return f"\n**{heading}** {text}\n\n" + "\n".join(_grid_markdown(grid)) + "\n"


def _difficulty_section(table: pd.DataFrame) -> tuple[str, str, pd.DataFrame] | None:
    diff = set_difficulty(table)
    if diff.empty:
        return None
    step = int(diff["step"].iloc[0])
    return (f"Evaluation-set difficulty at step {step}.",
            "Our mean error on the held-out set divided by our mean "
            "error on the paper's 10 trajectories, same model and seeds. The classical row is not trained, so its "
            "ratio is the effect of the trajectories alone; where it is above 1, a ratio to the published number "
            "measured on the held-out set is inflated by about that factor.",
            _grid_frame(diff, "model", lambda r: f"{r.ratio:.2f}"))


BASELINES = tuple(name for name, info in MODELS.items() if info.role == "baseline")


def baseline_margin(table: pd.DataFrame, *, model: str = "speconsnet", step: int | None = None) -> pd.DataFrame:
    """How many times larger each baseline's error is than ``model``'s at ``step`` (> 1: ``model`` is better).

    Two comparisons per (dataset, baseline), each on one set of trajectories:

    - ``ours``: our baseline over our ``model``, both on the ``heldout`` set. Our baselines may have had smaller
      training budgets than ``model`` (the table's training column says which).
    - ``published``: the authors' published baseline (trained by them with the paper's recipe: early stopping,
      at most 10 000 epochs, on a GPU) over our ``model`` on the ``paper`` set, the same 10 trajectories the
      published number was measured on.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``baseline``, ``step``, ``ours``, ``published`` (NaN where a number is missing);
        in the table's order.
    """
    step = int(table["step"].max()) if step is None else int(step)
    at = table[table["step"] == step]
    rows = []
    for dataset, part in at.groupby("dataset", sort=False):
        indexed = part.set_index(["model", "set"])
        mean, published = indexed["mean"], indexed["paper_mean"]
        ref_heldout = mean.get((model, "heldout"), math.nan)
        ref_paper = mean.get((model, "paper"), math.nan)
        present = set(indexed.index.get_level_values("model"))
        for baseline in (b for b in BASELINES if b in present):
            rows.append({"dataset": dataset, "baseline": baseline, "step": step,
                         "ours": mean.get((baseline, "heldout"), math.nan) / ref_heldout,
                         "published": published.get((baseline, "paper"), math.nan) / ref_paper})
    return pd.DataFrame(rows, columns=["dataset", "baseline", "step", "ours", "published"])


def _format_margin(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else "–"


def _difficulty_markdown(table: pd.DataFrame) -> str:
    return _section_markdown(_difficulty_section(table))


def _margin_markdown(table: pd.DataFrame) -> str:
    return _section_markdown(_margin_section(table))


def _with_paper_set(table: pd.DataFrame) -> bool:
    """Whether any row of the table is on the authors' trajectories (a data set with published numbers); a table of
    data sets of the user's own alone has no paper set and no published numbers, and says nothing of them."""
    return bool((table["set"] == "paper").any())


def _margin_section(table: pd.DataFrame) -> tuple[str, str, pd.DataFrame] | None:
    margin = baseline_margin(table)
    if margin.empty:
        return None
    step = int(margin["step"].iloc[0])
    if not _with_paper_set(table):
        return (f"SpecOnsNet against the baselines at step {step}.",
                "A baseline's mean error over SpecOnsNet's on the held-out set (above 1: SpecOnsNet is better; the "
                "baselines may have had smaller budgets: see the training column).",
                _grid_frame(margin, "baseline", lambda r: _format_margin(r.ours)))
    return (f"SpecOnsNet against the baselines at step {step}.",
            "A baseline's mean error over SpecOnsNet's (above 1: "
            "SpecOnsNet is better). First: our baseline over our SpecOnsNet on the held-out set (our baselines may "
            "have had smaller budgets: see the training column). Second: the published baseline, which its authors "
            "trained with the paper's recipe (early stopping, at most 10 000 epochs), over our SpecOnsNet on the same 10 trajectories (the paper set).",
            _grid_frame(margin, "baseline", lambda r: f"{_format_margin(r.ours)} / {_format_margin(r.published)}"))


# -- formatting -----------------------------------------------------------------------------------------------
def format_sig(x: float, digits: int = 3) -> str:
    """``x`` in scientific notation with ``digits`` significant digits and a bare exponent: ``5.47e-3``;
    ``–`` for NaN."""
    if x is None or not math.isfinite(float(x)):
        return "–" if x is None or math.isnan(float(x)) else str(float(x))
    if float(x) == 0:
        return "0"
    mantissa, exponent = f"{float(x):.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _format_ratio(x: float) -> str:
    """A ratio with 3 significant digits in plain notation (``1.02``, ``0.998``, ``12.3``)."""
    if not math.isfinite(x):
        return "–"
    text = f"{x:#.3g}"
    return text[:-1] if text.endswith(".") else text


def _budget(row: pd.Series) -> str:
    """The training a model had, as the table prints it: optimizer steps × batch, and how it stopped."""
    steps, batch, reason = int(row["train_steps"]), int(row["train_batch_size"]), str(row["train_stop_reason"])
    if reason == "not trainable":
        return "none (not trainable)"
    if steps < 0:
        return "unknown"
    how = {"max_epochs": "full budget", "early_stopping": "early stop"}.get(reason, reason or "unfinished")
    lr = float(row.get("train_lr", math.nan))
    rate = f", lr {lr:.0e} {row.get('train_schedule', '')}".rstrip() if math.isfinite(lr) else ""
    return f"{steps} steps × {batch}{rate} ({how})"


def _display_frame(table: pd.DataFrame, *, latex: bool) -> pd.DataFrame:
    """One row per (dataset, model, set), one column per step; ``published`` rows after each model's sets."""
    pm = r" $\pm$ " if latex else " ± "
    times = r"$\times$" if latex else "×"
    dagger = r" $\dagger$" if latex else " †"
    steps = sorted(table["step"].unique())

    def esc(text: str) -> str:
        return text.replace("_", r"\_") if latex else text

    out = []
    for (dataset, model), group in table.groupby(["dataset", "model"], sort=False):
        for set_name, rows in group.groupby("set", sort=False):
            rows = rows.set_index("step")
            first = rows.iloc[0]
            label = f"{set_name} (n={first['n_trajectories']}, trained {first['trained_on']}"
            label += f", {first['n_seeds']} seeds)" if first["n_seeds"] > 1 else ")"
            record = {"data": esc(dataset), "model": esc(model), "training": esc(_budget(first)),
                      "set": esc(label)}
            for step in steps:
                r = rows.loc[step]
                cell = format_sig(r["mean"]) + pm + format_sig(r["std_trajectories"])
                if r["n_seeds"] > 1:
                    cell += pm + format_sig(r["std_seeds"])
                if math.isfinite(r["ratio"]):
                    cell += f" ({_format_ratio(r['ratio'])}{times})"
                if 0 < r["diverged_step"] <= step:
                    cell += dagger
                record[f"step {step}"] = cell
            out.append(record)
        published = group[group["set"] == group["set"].iloc[0]].set_index("step")
        if published["paper_mean"].notna().any():
            record = {"data": esc(dataset), "model": esc(model), "training": "the authors'",
                      "set": "published (n=10)"}
            for step in steps:
                r = published.loc[step]
                record[f"step {step}"] = format_sig(r["paper_mean"]) + pm + format_sig(r["paper_std"])
            out.append(record)
    return pd.DataFrame(out)


def _caption(table: pd.DataFrame) -> str:
    steps = int(table["step"].max())
    if not _with_paper_set(table):
        return (
            f"Relative RMSE of autoregressive rollouts at steps 1-{steps}: mean ± standard deviation over "
            "trajectories (then ± standard deviation over training seeds, when several). Evaluation set: heldout = "
            "every trajectory of our test split, never trained on; no published numbers exist for these data. "
            "training = the optimizer steps × batch a model had and whether it used its whole budget or stopped "
            "early. † the set has diverged by this step (from the first step at which any of its trajectories "
            "reaches an error of 1, every error of the set counts as 1)."
        )
    return (
        f"Relative RMSE of autoregressive rollouts at steps 1-{steps}: mean ± standard deviation over "
        "trajectories (then ± standard deviation over training seeds, when several), and in parentheses the ratio "
        "of our mean to the published one. Evaluation sets: heldout = every trajectory of our test split, never "
        "trained on (our headline); paper = the authors' 10 evaluation trajectories (899, 910, ..., 987, 999 of "
        "1000, as their loader picked them), of which 'trained' lie in our training split; published = "
        f"{PAPER_SOURCE}, on their 10 trajectories, most of which were in their training split; training = the optimizer steps × "
        "batch a model had and whether it used its whole budget or stopped early. "
        "† the set has diverged by this step (from the first step at which any of its trajectories reaches an "
        "error of 1, every error of the set counts as 1)."
    )


_PAGE_STYLE = ("body{font-family:sans-serif;font-size:13px;margin:1em}table{border-collapse:collapse}"
               "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;white-space:nowrap}"
               "th{background:#f0f0f0}tr:nth-child(even){background:#fafafa}")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """The tidy table of :func:`rel_rmse_table` back from its CSV (empty texts as "", not NaN)."""
    table = pd.read_csv(path)
    text = [column for column in table.columns if not pd.api.types.is_numeric_dtype(table[column])]
    table[text] = table[text].fillna("")
    return table


def table_page(table: pd.DataFrame, *, title: str | None = None) -> str:
    """The table of :func:`write_table` as a self-contained HTML page for the report, made by pandas
    (:meth:`pandas.DataFrame.to_html`): the provenance comment, the caption, the table and the sections after it
    (evaluation-set difficulty, the margin over the baselines), the same cells as the Markdown file."""
    import html

    steps = int(table["step"].max())
    prov = provenance_attrs({"table": f"rel_rmse_first{steps}"})
    title = title or f"Relative RMSE at steps 1-{steps}"
    parts = [f"<!-- mesodyn {prov['mesodyn_version']}, commit {prov['git_commit']} -->",
             f"<p><strong>Table: relative RMSE, first {steps} steps.</strong> {html.escape(_caption(table))}</p>",
             _display_frame(table, latex=False).to_html(index=False, border=0)]
    for section in (_difficulty_section(table), _margin_section(table)):
        if section is not None:
            heading, text, grid = section
            parts += [f"<p><strong>{html.escape(heading)}</strong> {html.escape(text)}</p>",
                      grid.to_html(index=False, border=0)]
    head = f'<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n<style>{_PAGE_STYLE}</style>\n</head>'
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', head, "<body>", *parts, "</body>", "</html>", ""])


def write_table(table: pd.DataFrame, out_dir: str | os.PathLike, *, steps: int | None = None) -> dict[str, Path]:
    """Write ``table`` (from :func:`rel_rmse_table`) as ``rel_rmse_first{steps}.csv``, ``.md`` and ``.tex``.

    Every file is written atomically and is byte-identical for the same table and source tree.

    Returns
    -------
    dict
        ``{"csv": path, "md": path, "tex": path}``.
    """
    out_dir = Path(out_dir)
    steps = int(table["step"].max()) if steps is None else int(steps)
    stem = f"rel_rmse_first{steps}"
    prov = provenance_attrs({"table": stem})
    stamp = f"mesodyn {prov['mesodyn_version']}, commit {prov['git_commit']}"
    caption = _caption(table)
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "tex")}

    csv_text = table.to_csv(index=False, lineterminator="\n")
    atomic_write(paths["csv"], csv_text.encode())

    md = _display_frame(table, latex=False)
    md_text = (f"<!-- {stamp} -->\n\n**Table: relative RMSE, first {steps} steps.** {caption}\n\n"
               + md.to_markdown(index=False, disable_numparse=True) + "\n"
               + _difficulty_markdown(table) + _margin_markdown(table))
    atomic_write(paths["md"], md_text.encode())

    tex = _display_frame(table, latex=True)
    tex_caption = (caption.replace("±", r"$\pm$").replace("†", r"$\dagger$").replace("_", r"\_")
                   .replace("1-", "1--"))
    body = tex.style.hide(axis="index").to_latex(
        caption=tex_caption, label=f"tab:{stem}", hrules=True, position_float="centering",
        column_format="lll" + "l" * (tex.shape[1] - 3),
    )
    atomic_write(paths["tex"], (f"% {stamp}\n" + body).encode())
    return paths


# -- long horizons --------------------------------------------------------------------------------------------------
LONG_HORIZON_COLUMNS = ("dataset", "model", "run", "seeds", "n_trajectories", "n_steps", "data_steps",
                        "finite_fraction_last", "first_divergence_step", "max_abs_u_ratio", "energy_rose")


def _long_horizon_row(group: list[xr.Dataset], dataset: str, run: str) -> dict[str, Any]:
    first = np.concatenate([ds["first_nonfinite_step"].values for ds in group])
    ratio = np.concatenate([ds["max_abs_u_ratio"].values for ds in group])
    has_energy = all("energy_rise_steps" in ds for ds in group)
    rose = sum(int((ds["energy_rise_steps"].values > 0).sum()) for ds in group) if has_energy else None
    diverged = first[first >= 0]
    return {"dataset": dataset, "model": str(group[0].attrs.get("model", run)), "run": run,
            "seeds": " ".join(str(s) for s in sorted(int(ds.attrs["_seed"]) for ds in group)),
            "n_trajectories": int(first.size), "n_steps": int(group[0].attrs["n_steps"]),
            "data_steps": int(group[0].attrs["data_steps"]),
            "finite_fraction_last": float((first < 0).mean()),
            "first_divergence_step": int(diverged.min()) if diverged.size else -1,
            "max_abs_u_ratio": float(np.nanmax(ratio)) if np.isfinite(ratio).any() else math.nan,
            "energy_rose": -1 if rose is None else rose}


def long_horizon_table(files: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per data set and run from the long-horizon files (:func:`mesodyn.diagnostics.long_horizon`), its
    seeds pooled.

    Columns: ``finite_fraction_last`` (share of the rollouts finite after the last step), ``first_divergence_step``
    (the earliest step at which one stops being finite; −1: none), ``max_abs_u_ratio`` (the largest ``|u|`` of any
    rollout while finite over the data's largest), ``energy_rose`` (rollouts along which ``V`` rose beyond
    round-off at least once; −1: the model has no energy), with the rollouts' count and length.
    """
    groups: dict[tuple[str, str], list[xr.Dataset]] = {}
    for path in files:
        ds = _load(path)
        run_dir = Path(str(ds.attrs["run_dir"]))
        ds.attrs["_seed"] = int(run_dir.name.removeprefix("seed"))
        groups.setdefault((str(ds.attrs["dataset"]), run_dir.parent.name), []).append(ds)
    rows = [_long_horizon_row(group, dataset, run) for (dataset, run), group in groups.items()]
    table = pd.DataFrame(rows, columns=list(LONG_HORIZON_COLUMNS))
    return _sorted(table, model_key="model", extra=("run",)) if len(table) else table


def write_captioned(table: pd.DataFrame, shown: pd.DataFrame, stem: str | os.PathLike, *, name: str, title: str,
                     caption: str) -> dict[str, Path]:
    """Write ``table`` as ``{stem}.csv`` (full precision) and ``shown`` (the formatted cells) as ``{stem}.md``
    with its bold ``title`` and ``caption``, atomically and byte-identically for the same table and source tree."""
    prov = provenance_attrs({"table": name})
    stamp = f"mesodyn {prov['mesodyn_version']}, commit {prov['git_commit']}"
    paths = {ext: Path(f"{stem}.{ext}") for ext in ("csv", "md")}
    atomic_write(paths["csv"], table.to_csv(index=False, lineterminator="\n").encode())
    md_text = (f"<!-- {stamp} -->\n\n**Table: {title}.** {caption}\n\n"
               + shown.to_markdown(index=False, disable_numparse=True) + "\n")
    atomic_write(paths["md"], md_text.encode())
    return paths


def captioned_page(markdown: str, *, title: str) -> str:
    """A Markdown table file of :func:`write_captioned` as a self-contained HTML page for the report (the
    provenance comment, the caption and the table, the same cells), made by pandas."""
    import html

    lines = markdown.splitlines()
    stamp = lines[0]
    caption = next(line for line in lines[1:] if line.startswith("**"))
    rows = [line for line in lines if line.startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    frame = pd.DataFrame(cells[2:], columns=cells[0])
    head_text, _, rest = caption.removeprefix("**").partition("**")
    parts = [stamp, f"<p><strong>{html.escape(head_text)}</strong>{html.escape(rest)}</p>",
             frame.to_html(index=False, border=0)]
    head = f'<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n<style>{_PAGE_STYLE}</style>\n</head>'
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', head, "<body>", *parts, "</body>", "</html>", ""])


def write_long_horizon_table(table: pd.DataFrame, stem: str | os.PathLike) -> dict[str, Path]:
    """Write ``table`` (:func:`long_horizon_table`) as ``{stem}.csv`` and ``{stem}.md``, atomically and
    byte-identically for the same table and source tree."""
    shown = table.copy()
    shown["finite_fraction_last"] = [format_sig(x) for x in table["finite_fraction_last"]]
    shown["max_abs_u_ratio"] = [format_sig(x) for x in table["max_abs_u_ratio"]]
    shown["first_divergence_step"] = ["none" if x < 0 else str(x) for x in table["first_divergence_step"]]
    shown["energy_rose"] = ["no energy" if x < 0 else str(x) for x in table["energy_rose"]]
    steps = sorted(set(int(x) for x in table["n_steps"]))
    caption = (f"Rollouts of {', '.join(map(str, steps))} steps from every held-out initial state; finite share "
               "after the last step, the first step at which a rollout stopped being finite, the largest |u| "
               "reached over the data's largest, and the rollouts along which the learned V rose at least once.")
    return write_captioned(table, shown, stem, name="long_horizon", title="long horizons", caption=caption)


# -- identifiability ------------------------------------------------------------------------------------------------
IDENTIFIABILITY_COLUMNS = ("dataset", "model", "run", "fits", "truth", "k_energetic", "symbol_spread",
                           "symbol_residual", "symbol_max_mode_error", "rate_zero_spread", "rate_zero_residual",
                           "rate_zero_max_mode_error", "rate_zero_simulated_residual", "rate_mean_spread", "rate_mean_residual", "f2_over_b_spread",
                           "identified")
IDENTIFIED_SPREAD = 0.05
"""A data set's learned operator counts as identified where its fits' relative spread (of the symbol of ``M + W``
in the ``b = 1`` gauge, else of the linear rate about ``u = 0``) over the compared modes is at most this."""


def identifiability_table(files: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per data set from the identifiability files (:func:`mesodyn.diagnostics.identifiability`): the
    fits compared, the known truth (``none``; the equation; the chain's lattice dispersion), the largest compared
    wavenumber, the spreads across fits and the residuals against the truth (NaN where not defined), and
    ``identified`` (:data:`IDENTIFIED_SPREAD`)."""
    rows = []
    for path in files:
        ds = _load(path)
        run = str(ds.attrs.get("run", Path(str(ds.attrs["run_dirs"]).split(",")[0]).parent.name))
        row: dict[str, Any] = {"dataset": str(ds.attrs["dataset"]), "model": str(ds.attrs["model"]), "run": run,
                               "fits": str(ds.attrs["fits"]).replace(",", " "), "truth": str(ds.attrs["system"])}
        for column in IDENTIFIABILITY_COLUMNS[5:-1]:
            row[column] = float(ds[column]) if column in ds else math.nan
        spread = row["symbol_spread"] if np.isfinite(row["symbol_spread"]) else row["rate_zero_spread"]
        row["identified"] = None if not np.isfinite(spread) else bool(spread <= IDENTIFIED_SPREAD)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(IDENTIFIABILITY_COLUMNS))
    return _sorted(table, model_key="model", extra=("run",)) if len(table) else table


def write_identifiability_table(table: pd.DataFrame, stem: str | os.PathLike) -> dict[str, Path]:
    """Write ``table`` (:func:`identifiability_table`) as ``{stem}.csv`` and ``{stem}.md``."""
    shown = table.copy()
    for column in IDENTIFIABILITY_COLUMNS[6:-1]:
        shown[column] = [format_sig(x) for x in table[column]]
    shown["k_energetic"] = [f"{x:.4g}" for x in table["k_energetic"]]
    shown["identified"] = ["one fit" if x is None or x != x else ("yes" if x else "no") for x in table["identified"]]
    caption = ("Several fits of one run (its training seeds), or of a group of runs (identifiability.compare), "
               "compared over the modes 0 < k <= k_energetic that "
               "hold 99.9 % of the held-out data's spectral energy. spread: relative spread across the fits; "
               "residual: relative L2 distance of the worst fit from the truth; max_mode_error: its largest "
               "deviation on one mode (the symbol: relative to the true value; the rates: to the true rate's rms). "
               "symbol: b(m(k) + i phi(k)) of M + W in the gauge b = 1; rate: log(G)/dt of the one-step map "
               "linearized about u = 0 or the data's mean state (the chains' truth: the lattice's exact "
               "dispersion in the data's frame; simulated_residual: from the lattice as simulated, velocity Verlet at the "
               "data's chain step). identified: spread <= "
               f"{100 * IDENTIFIED_SPREAD:g} % (of the symbol, else of the rate); one fit cannot tell (empty "
               "in the CSV).")
    return write_captioned(table, shown, stem, name="identifiability", title="what the model learned",
                            caption=caption)
