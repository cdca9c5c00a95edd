"""Which figures a config makes, from which files, and where they go: the plan the workflow reads when it is parsed.

Kept apart from :mod:`mesodyn.plotting` (which draws them) so that parsing the workflow imports neither matplotlib
nor xarray: every Snakemake start-up parses it, and a cluster job starts Snakemake twice. :mod:`mesodyn.plotting`
re-exports every name here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from mesodyn.registry import DATASETS, MODELS, DatasetInfo, dataset_info, diagnosable_models, ndim

__all__ = ["STYLE", "MODEL_LABELS", "DATASET_LABELS", "dataset_label", "FigureInfo", "FIGURES", "DIAGNOSTIC_FILES", "TABLE_PAGE",
           "figures_settings", "figure_plan", "diagnostic_plan", "figure_inputs", "figure_paths", "figure_targets",
           "report_labels", "long_horizon_plan", "long_horizon_path", "long_horizon_steps", "long_horizon_targets",
           "LONG_HORIZON_TABLE", "identifiability_plan", "identifiability_entries", "identifiability_targets",
           "IDENTIFIABILITY_TABLE", "IDENTIFIABILITY_PAGE", "hypotheses_settings", "hypotheses_targets", "HYPOTHESES_TABLE", "HYPOTHESES_PAGE"]

STYLE = Path(str(resources.files("mesodyn").joinpath("data", "mesodyn.mplstyle")))
"""The one matplotlib style file of every figure."""

MODEL_LABELS: dict[str, str] = {name: info.label for name, info in MODELS.items()}
"""Legend names of the registered models, as the paper names them (:data:`mesodyn.registry.MODELS`)."""

DATASET_LABELS: dict[str, str] = {name: info.label for name, info in DATASETS.items()}
"""Display names of the paper's data sets (:data:`mesodyn.registry.DATASETS`); :func:`dataset_label` for any."""


def dataset_label(dataset: str) -> str:
    """The display name of a registered data set, the paper's or the user's own (its name where unregistered)."""
    try:
        return dataset_info(dataset).label
    except ValueError:
        return dataset


# -- the figures of the workflow: which, from which files --------------------------------------------------------------
@dataclass(frozen=True)
class FigureInfo:
    """A figure of the workflow: its ``title``, report ``category``, the paper's ``datasets`` it is drawn for
    (``None``: every one), the diagnostics files it reads (keys of :data:`DIAGNOSTIC_FILES`), whether it reads the
    evaluation files (``metrics``), its number in the paper (``None``: ours), ``user``: whether it is drawn for
    a user data set, asked of the data set's registry entry (``None``: always), and ``every_run``: whether its
    diagnostics files are written for every fitted run and seed (:func:`long_horizon_plan`) rather than for the
    diagnosed run only; such a figure is drawn wherever a model is fitted, as figure 1 is. ``across_fits``: its one
    file per data set compares every fit of the diagnosed run (:func:`identifiability_plan`)."""

    title: str
    category: str
    datasets: tuple[str, ...] | None
    diagnostics: tuple[str, ...]
    metrics: bool = False
    paper_figure: int | None = None
    user: Callable[[DatasetInfo], bool] | None = None
    every_run: bool = False
    across_fits: bool = False

    def applies_to(self, dataset: str) -> bool:
        """Whether the figure is drawn for ``dataset`` (a paper data set, or a registered user data set)."""
        if dataset in DATASETS:
            return self.datasets is None or dataset in self.datasets
        return self.user is None or self.user(dataset_info(dataset))


def _knows_allen_cahn_energy(info: DatasetInfo) -> bool:
    return info.energy == "allen_cahn"


FIGURES: dict[str, FigureInfo] = {
    "rel_rmse": FigureInfo("relative RMSE against lead time", "Fig. 1 – error against lead time", None, (),
                           metrics=True, paper_figure=1),
    "energy_vs_truth": FigureInfo("learned against true energy", "Fig. 3 – learned against true energy",
                                  ("allen_cahn", "allen_cahn_2d"), ("energy_vs_truth",), paper_figure=3,
                                  user=_knows_allen_cahn_energy),
    "step_size_sweep": FigureInfo("step-size sweep", "Fig. 4 – step-size sweep", ("allen_cahn", "allen_cahn_2d"),
                                  ("step_size_sweep",), paper_figure=4, user=_knows_allen_cahn_energy),
    "energy_along_truth": FigureInfo("learned energy along the true trajectories",
                                     "Fig. 5 – learned energy along the truth", ("kdv", "fput", "fene"),
                                     ("energy_along_truth",), paper_figure=5),
    "energy_change_vs_dt": FigureInfo("one-step energy change against the time step",
                                      "Fig. 6 – energy change against the time step", ("fput", "fene"),
                                      ("energy_change_vs_dt",), paper_figure=6),
    "energy_order": FigureInfo("order of the learned energy", "Fig. 7 – order of the learned energy", None,
                               ("energy_order", "operator_symbols"), paper_figure=7),
    "stepper_comparison": FigureInfo("explicit Euler against the stabilized stepper",
                                     "Ours – stabilized stepper at large time steps", None, ("step_size_sweep",)),
    "operator_symbols": FigureInfo("learned operator symbols and dissipation",
                                   "Ours – learned operators against the truth", None,
                                   ("operator_symbols", "dissipation")),
    "prediction": FigureInfo("prediction against truth on a test trajectory",
                             "Ours – prediction against truth", None, ("prediction",)),
    "long_horizon": FigureInfo("long-horizon rollouts from every held-out initial state",
                               "Ours – long horizons", None, ("long_horizon",), every_run=True),
    "identifiability": FigureInfo("what the fits learned: linear dynamics and symbols across fits",
                                  "Ours – what the model learned", None, ("identifiability",), across_fits=True),
}
"""Every figure by name (the ``{figure}`` of ``results/figures/{figure}_{dataset}.{pdf,png}``)."""

DIAGNOSTIC_FILES: dict[str, str] = {
    "energy_vs_truth": "energy_vs_truth",
    "step_size_sweep": "step_size_sweep",
    "energy_along_truth": "energy_along_truth",
    "energy_change_vs_dt": "energy_change_vs_dt",
    "energy_order": "energy_order",
    "operator_symbols": "operator_symbols",
    "dissipation": "dissipation_along_rollout",
    "prediction": "prediction",
    "long_horizon": "long_horizon",
    "identifiability": "identifiability",
}
"""Diagnostics file name (``results/diagnostics/{dataset}/{run}/seed{seed}/{name}.nc``) -> the function of
:data:`mesodyn.diagnostics.DIAGNOSTICS` that writes it."""

# V is evaluated at about this many steps per sweep rollout (mesodyn.diagnostics.step_size_sweep): enough for a
# smooth curve, and every step wherever a rollout is this short or shorter (where explicit Euler diverges).
_ENERGY_POINTS = 200
# Trajectories of figure 5 (the paper's 10); the other rollout diagnostics take figures.samples (the paper's 5).
_TRUTH_SAMPLES = 10
# The learned operator symbols are fitted to the truth over the modes holding this share of the data's energy.
_FIT_ENERGY = "99.9%"


def figures_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The diagnosed run (``figures.run``), its first seed, the data sets it is fitted on, and the figures settings.

    Raises
    ------
    mesodyn.config.ConfigError
        One sentence, if ``figures.run`` is not a run of ``fit.models`` or not a model the diagnostics can read.
    """
    from mesodyn.config import ConfigError, fit_runs

    figs = dict(config.get("figures", {}) or {})
    run = str(figs.get("run", "speconsnet"))
    models = config.get("fit", {}).get("models", {})
    if run not in models:
        raise ConfigError(f"config 'figures.run' names '{run}', which is not a run of fit.models "
                          f"({', '.join(sorted(models)) or 'none'}).")
    name = models[run].get("name")
    if name not in diagnosable_models():
        raise ConfigError(f"config 'figures.run' = '{run}' is a {name} model; the energy and operator figures need "
                          f"one of {', '.join(diagnosable_models())}.")
    fitted = [(d, s) for d, r, s in fit_runs(config) if r == run]
    seed = fitted[0][1] if fitted else None
    datasets = [d for d in config.get("datasets", []) if any(d == f for f, _ in fitted)]
    return {"run": run, "model": name, "seed": seed, "datasets": datasets,
            "samples": int(figs.get("samples", 5)),
            "sweep_factors": {d: [float(f) for f in figs.get("sweep_factors", {}).get(d, (1, 3, 10))]
                              for d in config.get("datasets", [])}}


def _diagnostic_path(dataset: str, settings: Mapping[str, Any], name: str) -> str:
    return f"results/diagnostics/{dataset}/{settings['run']}/seed{settings['seed']}/{name}.nc"


def figure_plan(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every ``(figure, dataset)`` the config makes: figure 1 for every data set with a fitted model, the energy and
    operator figures for the data sets the diagnosed run (``figures.run``) is fitted on, each where it applies."""
    from mesodyn.config import fit_runs

    settings = figures_settings(config)
    with_models = {d for d, _, _ in fit_runs(config)}
    plan = []
    for figure, info in FIGURES.items():
        for dataset in config.get("datasets", []):
            if not info.applies_to(dataset):
                continue
            if info.metrics or info.every_run:
                if dataset in with_models and (not info.every_run or long_horizon_plan(config, dataset=dataset)):
                    plan.append((figure, dataset))
                continue
            if dataset not in settings["datasets"]:
                continue
            if figure == "stepper_comparison" and not any(f > 1 for f in settings["sweep_factors"][dataset]):
                continue  # nothing beyond the training step to compare
            plan.append((figure, dataset))
    return plan


def diagnostic_plan(config: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every diagnostics file the planned figures read: ``(dataset, name) -> {"path", "run_dir", "kind",
    "n_samples", "options"}`` (the arguments of :func:`mesodyn.diagnostics.diagnostic_file`).

    The options reproduce the paper's figures: every test snapshot for figure 3, 10 trajectories for figure 5,
    ``figures.samples`` (5) for the rollouts; FENE's fits only below ``|dV| = 0.2`` and ``s <= 0.2``; rollouts in
    float32 (the paper's precision) with ``V`` at about 200 steps per rollout, the energy changes and orders in
    float64 (changes far below float32 round-off of ``V``), the float64 rollouts of 1-D fields with the exact ``F'``
    (the same function as the interpolant, cheaper on a few fields).
    """
    settings = figures_settings(config)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for figure, dataset in figure_plan(config):
        if FIGURES[figure].every_run or FIGURES[figure].across_fits:
            continue  # their files are per run and seed (long_horizon_plan) or per data set (identifiability_plan)
        for name in FIGURES[figure].diagnostics:
            if (dataset, name) in out:
                continue
            n_samples: int | None = settings["samples"]
            options: dict[str, Any] = {}
            if name == "energy_vs_truth":
                n_samples = None
                options = {"dtype": "float32", "batch_size": 32 if ndim(dataset) == 2 else 256}
            elif name == "step_size_sweep":
                options = {"factors": settings["sweep_factors"][dataset], "horizon": None,
                           "steppers": ["euler", "stabilized"], "energy_points": _ENERGY_POINTS,
                           "dtype": "float32"}
            elif name == "energy_along_truth":
                n_samples = _TRUTH_SAMPLES
                options = {"batch_size": 32 if ndim(dataset) == 2 else 256}
            elif name == "energy_change_vs_dt":
                options = {"cap": 0.2} if dataset == "fene" else {}
            elif name == "energy_order":
                options = {"s_max_fit": 0.2} if dataset == "fene" else {}
                if ndim(dataset) == 2:
                    options["batch_size"] = 32
            elif name == "operator_symbols":
                # compared with the truth where the data have energy (the modes holding 99.9 % of the test
                # trajectories' spectral energy); the others keep about what initialization gave them
                options = {"k_max_fit": _FIT_ENERGY}
            elif name == "dissipation":
                options = {"along": "rollout"}
            if name in ("energy_change_vs_dt", "dissipation") and ndim(dataset) == 1:
                options["local_derivative"] = "exact"   # float64 rollouts of a few 1-D fields: 2.5x cheaper
            if name in ("energy_vs_truth", "operator_symbols") and dataset not in DATASETS:
                # a user's file does not name its system: the registry's entry (its declared pde) does
                options["system"] = dataset_info(dataset).energy
            out[(dataset, name)] = {"path": _diagnostic_path(dataset, settings, name),
                                    "run_dir": f"results/models/{dataset}/{settings['run']}/seed{settings['seed']}",
                                    "kind": DIAGNOSTIC_FILES[name], "n_samples": n_samples, "options": options}
    return out


def figure_inputs(figure: str, dataset: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The files one figure reads, by name: ``metrics`` (a list: every run and seed fitted on ``dataset``) and/or
    the diagnostics files (keys of :data:`DIAGNOSTIC_FILES`)."""
    from mesodyn.config import fit_runs

    info = FIGURES[figure]
    out: dict[str, Any] = {}
    if info.metrics:
        out["metrics"] = [f"results/metrics/{d}/{r}/seed{s}.nc" for d, r, s in fit_runs(config) if d == dataset]
    if info.every_run:
        out.update({name: [entry["path"] for entry in long_horizon_plan(config, dataset=dataset)]
                    for name in info.diagnostics})
    elif info.across_fits:
        out["identifiability"] = identifiability_plan(config)[dataset]["path"]
    elif info.diagnostics:
        settings = figures_settings(config)
        for name in info.diagnostics:
            out[name] = _diagnostic_path(dataset, settings, name)
    return out


def long_horizon_path(dataset: str, run: str, seed: int) -> str:
    """The long-horizon file of one fitted run and seed."""
    return f"results/diagnostics/{dataset}/{run}/seed{seed}/long_horizon.nc"


def long_horizon_steps(config: Mapping[str, Any]) -> int | None:
    """``figures.long_horizon_steps``: steps per long-horizon rollout (``None``: ten times the data's horizon)."""
    value = (config.get("figures", {}) or {}).get("long_horizon_steps")
    return None if value is None else int(value)


def long_horizon_plan(config: Mapping[str, Any], *, dataset: str | None = None) -> list[dict[str, Any]]:
    """Every long-horizon file: one per fitted ``(dataset, run, seed)`` whose run is among
    ``figures.long_horizon_runs`` (default every run) and whose data set is among
    ``figures.long_horizon_datasets`` (default every one), for the data sets of ``dataset`` (default all).

    Returns
    -------
    list of dict
        ``dataset``, ``run``, ``seed``, ``path``, ``run_dir``, ``kind`` (``"long_horizon"``), ``n_samples``
        (``None``: every held-out trajectory) and ``options`` (``n_steps``; the rollouts in float32, the
        evaluation's precision), the arguments of :func:`mesodyn.diagnostics.diagnostic_file`.
    """
    from mesodyn.config import ConfigError, fit_runs

    figures = config.get("figures", {}) or {}
    runs, datasets = figures.get("long_horizon_runs"), figures.get("long_horizon_datasets")
    unknown = sorted(set(runs or ()) - set(config.get("fit", {}).get("models", {})))
    if unknown:
        raise ConfigError(f"config 'figures.long_horizon_runs' names {', '.join(unknown)}, not runs of fit.models.")
    unknown = sorted(set(datasets or ()) - set(config.get("datasets", [])))
    if unknown:
        raise ConfigError(f"config 'figures.long_horizon_datasets' names {', '.join(unknown)}, not data sets of "
                          "'datasets'.")
    out = []
    for d, run, seed in fit_runs(config):
        if (dataset is not None and d != dataset) or (runs is not None and run not in runs) \
                or (datasets is not None and d not in datasets):
            continue
        out.append({"dataset": d, "run": run, "seed": seed, "path": long_horizon_path(d, run, seed),
                    "run_dir": f"results/models/{d}/{run}/seed{seed}", "kind": "long_horizon", "n_samples": None,
                    "options": {"n_steps": long_horizon_steps(config), "dtype": "float32"}})
    return out


def identifiability_plan(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One identifiability file per data set the diagnosed run (``figures.run``) is fitted on, comparing every
    seed of that run: ``dataset -> {"path", "run_dirs"}`` (the arguments of
    :func:`mesodyn.diagnostics.identifiability_file`)."""
    from mesodyn.config import fit_runs

    settings = figures_settings(config)
    run = settings["run"]
    out = {}
    for dataset in settings["datasets"]:
        seeds = [s for d, r, s in fit_runs(config) if d == dataset and r == run]
        out[dataset] = {"path": f"results/diagnostics/{dataset}/{run}/identifiability.nc",
                        "run_dirs": [f"results/models/{dataset}/{run}/seed{s}" for s in seeds]}
    return out


def identifiability_entries(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every identifiability file of the workflow: the diagnosed run's on each data set (:func:`identifiability_plan`,
    the one the figure draws); on each data set of the hypothesis comparison (:func:`hypotheses_settings`) every
    other compared run of a model with Fourier operators, so that the table says whether the class the data prefer
    is identified; and each group of ``identifiability.compare`` (every seed of every run of the group, e.g. fits on
    disjoint halves of the data) on each data set where all its runs are fitted. Each entry:
    ``{"dataset", "run", "path", "run_dirs"}`` (``run``: the run's or the group's name), sorted by data set and run.

    Raises
    ------
    mesodyn.config.ConfigError
        One sentence, if a group of ``identifiability.compare`` names a run that is not in fit.models or not a model
        with Fourier operators, or is named as a run itself.
    """
    from mesodyn.config import ConfigError, fit_runs

    diagnosed = figures_settings(config)["run"]
    entries = [{"dataset": d, "run": diagnosed, **entry} for d, entry in identifiability_plan(config).items()]
    models = config.get("fit", {}).get("models", {})
    fitted = fit_runs(config)

    def add(dataset: str, name: str, runs: list[str]) -> None:
        run_dirs = [f"results/models/{dataset}/{r}/seed{s}" for r in runs for d, rr, s in fitted
                    if d == dataset and rr == r]
        if run_dirs and not any(e["dataset"] == dataset and e["run"] == name for e in entries):
            entries.append({"dataset": dataset, "run": name, "run_dirs": run_dirs,
                            "path": f"results/diagnostics/{dataset}/{name}/identifiability.nc"})

    compared = hypotheses_settings(config)
    for dataset in compared["files"]:
        for run in compared["runs"]:
            if models[run].get("name") in diagnosable_models():
                add(dataset, run, [run])
    groups = dict((config.get("identifiability", {}) or {}).get("compare", {}) or {})
    for name, runs in groups.items():
        key = f"config 'identifiability.compare.{name}'"
        if name in models:
            raise ConfigError(f"{key}: a group must not take the name of a run of fit.models.")
        for run in runs:
            if run not in models:
                raise ConfigError(f"{key} names '{run}', which is not a run of fit.models.")
            if models[run].get("name") not in diagnosable_models():
                raise ConfigError(f"{key} names '{run}', a {models[run].get('name')} model; identifiability "
                                  f"compares models with Fourier operators ({', '.join(diagnosable_models())}).")
        for dataset in config.get("datasets", []):
            if all(any(d == dataset and r == run for d, r, _ in fitted) for run in runs):
                add(dataset, name, list(runs))
    return sorted(entries, key=lambda e: (e["dataset"], e["run"]))


def hypotheses_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``hypotheses``: the compared runs, the ranking step and the tolerance, per data set the evaluation files of
    the compared runs fitted on it (data sets with fewer than two are left out), and ``weights``, the fits' weight
    files (each written with the ``summary.json`` the table reads).

    Raises
    ------
    mesodyn.config.ConfigError
        One sentence, if ``hypotheses.runs`` names a run that is not in fit.models, or fewer than two runs.
    """
    from mesodyn.config import ConfigError, fit_runs

    section = dict(config.get("hypotheses", {}) or {})
    runs = section.get("runs")
    out = {"runs": list(runs or ()), "step": int(section.get("step", 5)),
           "tolerance": float(section.get("tolerance", 0.1)), "files": {}, "weights": []}
    if runs is None:
        return out
    unknown = sorted(set(runs) - set(config.get("fit", {}).get("models", {})))
    if unknown:
        raise ConfigError(f"config 'hypotheses.runs' names {', '.join(unknown)}, not runs of fit.models.")
    if len(runs) < 2:
        raise ConfigError("config 'hypotheses.runs' must name at least two runs to compare.")
    for dataset in config.get("datasets", []):
        fitted = [(r, s) for d, r, s in fit_runs(config) if d == dataset and r in runs]
        if len({r for r, _ in fitted}) >= 2:
            out["files"][dataset] = [f"results/metrics/{dataset}/{r}/seed{s}.nc" for r, s in fitted]
            out["weights"] += [f"results/models/{dataset}/{r}/seed{s}/weights.pt" for r, s in fitted]
    return out


HYPOTHESES_TABLE = "results/tables/hypotheses"
"""Stem of the hypotheses table (``.csv``, ``.md``; :func:`mesodyn.hypotheses.hypothesis_table`)."""

HYPOTHESES_PAGE = "results/figures/table_hypotheses.html"
"""The hypotheses table as an HTML page of the report."""


def hypotheses_targets(config: Mapping[str, Any]) -> list[str]:
    """The hypotheses table (CSV, Markdown, its report page) where the config compares hypotheses on a data set."""
    if not hypotheses_settings(config)["files"]:
        return []
    return [f"{HYPOTHESES_TABLE}.{ext}" for ext in ("csv", "md")] + [HYPOTHESES_PAGE]


IDENTIFIABILITY_TABLE = "results/tables/identifiability"
"""Stem of the identifiability table (``.csv``, ``.md``; :func:`mesodyn.tables.identifiability_table`)."""

LONG_HORIZON_TABLE = "results/tables/long_horizon"
"""Stem of the long-horizon table (``.csv``, ``.md``; :func:`mesodyn.tables.long_horizon_table`)."""


def figure_paths(figure: str, dataset: str) -> dict[str, str]:
    """``pdf``, ``png`` and ``json`` (the numbers) of one figure."""
    stem = f"results/figures/{figure}_{dataset}"
    return {"pdf": f"{stem}.pdf", "png": f"{stem}.png", "json": f"{stem}.json"}


TABLE_PAGE = "results/figures/table_rel_rmse_first5.html"
"""The 5-step table as an HTML page of the report (:func:`mesodyn.tables.table_page`)."""


def figure_targets(config: Mapping[str, Any]) -> list[str]:
    """Every file the figures of ``config`` write: PDF, PNG and numbers per (figure, data set), the table page, and
    the identifiability and hypotheses tables with their pages."""
    return [path for figure, dataset in figure_plan(config) for path in figure_paths(figure, dataset).values()] + [
        TABLE_PAGE] + identifiability_targets(config) + hypotheses_targets(config)


def identifiability_targets(config: Mapping[str, Any]) -> list[str]:
    """The identifiability table (CSV, Markdown, and its page of the report) where the diagnosed run is fitted."""
    if not identifiability_entries(config):
        return []
    return [f"{IDENTIFIABILITY_TABLE}.{ext}" for ext in ("csv", "md")] + [IDENTIFIABILITY_PAGE]


IDENTIFIABILITY_PAGE = "results/figures/table_identifiability.html"
"""The identifiability table as an HTML page of the report."""


def long_horizon_targets(config: Mapping[str, Any]) -> list[str]:
    """The long-horizon table (CSV and Markdown) where the config makes long-horizon files, else nothing."""
    return [f"{LONG_HORIZON_TABLE}.{ext}" for ext in ("csv", "md")] if long_horizon_plan(config) else []


def report_labels(figure: str, dataset: str) -> Callable[..., dict[str, str]]:
    """The report's labels of one figure (a function Snakemake calls when it writes the report, when the figure's
    numbers exist): the figure's title and what we find."""

    def labels(wildcards: Any = None) -> dict[str, str]:
        record = json.loads(Path(figure_paths(figure, dataset)["json"]).read_text(encoding="utf-8"))
        return {"figure": FIGURES[figure].title, "we find": record["finding"]}

    return labels
