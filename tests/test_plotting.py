"""Figures from diagnostics and evaluation files: every figure draws from real diagnostics of a small model, shows
labelled axes, log scales where the paper uses them, the models named as the paper names them and the paper's
numbers beside ours; PDF and PNG are byte-identical on rerun (also in a fresh process with another hash seed and a
SOURCE_DATE_EPOCH) and carry no date or version; the plan of figures and diagnostics follows the config."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import matplotlib
import numpy as np
import pytest
import torch
import xarray as xr

from mesodyn.config import ConfigError, load_config
from mesodyn.diagnostics import (
    dissipation_along_rollout, energy_along_truth, energy_change_vs_dt, energy_order, energy_vs_truth,
    operator_symbols, prediction, step_size_sweep, write_diagnostic,
)
from mesodyn.diagnostics import identifiability, long_horizon
from mesodyn.evaluation import metric_dataset
from mesodyn.figure_plan import hypotheses_targets, identifiability_plan, identifiability_targets, long_horizon_plan
from mesodyn.models import build_model, cast_module
import mesodyn.figure_plan as plan_module
import mesodyn.plotting as plotting_module
from mesodyn.plotting import (
    FIGURES, MODEL_LABELS, STYLE, diagnostic_plan, figure_inputs, figure_plan, figure_targets, make_figure,
    paper_values, plot_energy_change_vs_dt, plot_energy_order, plot_energy_vs_truth, plot_operator_symbols,
    plot_prediction, plot_rel_rmse, plot_step_size_sweep, plot_stepper_comparison, save_figure, style,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TWO_PI = 2 * math.pi
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


# -- small real inputs -----------------------------------------------------------------------------------------------
def waves(*, n_samples=4, n_time=11, dt=0.01, nx=16, seed=0, name="allen_cahn", epsilon=0.5):
    """Smooth travelling waves: a fields data set of the shape the diagnostics read."""
    rng = np.random.default_rng(seed)
    x = np.arange(nx) * TWO_PI / nx
    t = np.arange(n_time) * dt
    amp = rng.uniform(0.2, 0.8, (n_samples, 3))
    phase = rng.uniform(0, TWO_PI, (n_samples, 3))
    k = np.arange(1, 4)
    u = np.einsum("sk,stkx->stx", amp, np.sin(k[None, None, :, None] * (x[None, None, None, :] - 0.5 * t[None, :, None, None])
                                              + phase[:, None, :, None]))
    return xr.Dataset({"u": (("sample", "time", "x"), u)}, coords={"time": t, "x": x},
                      attrs={"dataset": name, "epsilon": epsilon})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model({"name": "speconsnet", "shape": [16], "length": [TWO_PI], "dt": 0.01, "hidden": 4,
                     "nonlocal_modes": 2})
    cast_module(m, device="cpu", dtype=torch.float64)
    return m


@pytest.fixture(scope="module")
def diagnostics(model):
    data = waves()
    return {
        "energy_vs_truth": energy_vs_truth(model, data, samples=[0, 1, 2], system="allen_cahn"),
        "step_size_sweep": step_size_sweep(model, data, samples=[0, 1], factors=(0.3, 1, 3, 10), horizon=None),
        "energy_along_truth": energy_along_truth(model, data, samples=[0, 1]),
        "energy_change_vs_dt": energy_change_vs_dt(model, data, samples=[0, 1], n_dt=3),
        "energy_order": energy_order(model, data, samples=[0, 1], n_u=21),
        "operator_symbols": operator_symbols(model, system="allen_cahn"),
        "dissipation": dissipation_along_rollout(model, data, samples=[0, 1], n_steps=5),
        "prediction": prediction(model, data, samples=[1, 0]),
        "long_horizon": long_horizon(model, data, samples=[0, 1], n_steps=12),
        "identifiability": identifiability([model, model], data, labels=["seed0", "seed1"], samples=[0, 1],
                                           system="allen_cahn"),
    }


def metrics_file(*, model_name, label, seed, scale, n_steps=100, dt=1e-3, diverge_at=None):
    """An evaluation data set with known errors: e_i(t) = scale * (1 + i/10) * t (and 2 from ``diverge_at``)."""
    steps = np.arange(1, n_steps + 1)
    err = scale * (1 + np.arange(4)[:, None] / 10) * steps[None, :]
    if diverge_at is not None:
        err[:, diverge_at - 1:] = 2.0
    split = {"train": [0, 1], "valid": [2], "test": [3, 4, 5, 6]}
    return metric_dataset({"heldout": err, "paper": err[:2]}, {"heldout": [3, 4, 5, 6], "paper": [0, 1]},
                          split=split, dt=dt, attrs={"model": model_name, "label": label, "seed": seed, "dt": dt})


def _axes_labelled(fig):
    """Every panel has both axis labels, on itself or on a panel it shares that axis with (a grid labels its outer
    panels only)."""
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        for axis, shared in (("x", ax.get_shared_x_axes()), ("y", ax.get_shared_y_axes())):
            labels = [getattr(a, f"get_{axis}label")().strip() for a in shared.get_siblings(ax)]
            assert any(labels), f"panel {ax.get_title()!r} of {fig.texts[0].get_text()!r} has no {axis} label"


def _legend_texts(fig):
    texts = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    return texts + [t.get_text() for leg in fig.legends for t in leg.get_texts()]


# -- the figures -----------------------------------------------------------------------------------------------------
def test_rel_rmse_names_models_as_the_paper_draws_published_steps_and_pools_seeds():
    metrics = {
        "speconsnet": [metrics_file(model_name="speconsnet", label="speconsnet", seed=s, scale=1e-3 * (1 + s))
                       for s in (0, 1)],
        "fno": [metrics_file(model_name="fno", label="fno", seed=0, scale=5e-3, diverge_at=18)],
    }
    with style():
        drawn = plot_rel_rmse(metrics, dataset="kdv")
    fig = drawn.figure
    _axes_labelled(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    texts = _legend_texts(fig)
    assert any(t.startswith(MODEL_LABELS["speconsnet"]) and "2 seeds" in t for t in texts)
    assert any(t.startswith("FNO") for t in texts)
    assert any("published" in t for t in texts)
    # the mean over both seeds and all trajectories: e = 1e-3 (1 + s)(1 + i/10) t, averaged
    expected = np.mean([(1 + s) * (1 + i / 10) for s in (0, 1) for i in range(4)]) * 1e-3
    assert drawn.numbers["speconsnet"]["step_1"] == pytest.approx(expected, rel=1e-12)
    assert drawn.numbers["fno"]["diverged_step"] == 18 and drawn.numbers["speconsnet"]["diverged_step"] == -1
    # the paper's KdV statements are drawn: FNO diverges near step 18, SpecOnsNet ends near 0.17
    assert "paper: FNO diverges near step 18" in texts
    assert "paper: SpecOnsNet at step 100 (≈ 0.17)" in texts
    star = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(star) == 1 and star[0].get_ydata()[0] == 0.17
    # the published steps 1-5 of SpecOnsNet on KdV (2.80e-3 at step 1) beside ours, in the inset of steps 1-5
    (inset,) = [a for a in ax.child_axes if a.lines]   # (the other child is the top axis of steps)
    plotted = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in inset.lines])
    assert np.any(np.isclose(plotted, 2.80e-3, rtol=2e-3)) and inset.get_yscale() == "log"
    assert np.any(np.isclose(plotted, expected, rtol=1e-12))
    assert "FNO" in drawn.finding and "diverged at step 18" in drawn.finding
    matplotlib.pyplot.close(fig)


def test_energy_vs_truth_shows_our_fit_and_the_papers_line(diagnostics):
    ds = diagnostics["energy_vs_truth"]
    with style():
        drawn = plot_energy_vs_truth(ds, dataset="allen_cahn")
    _axes_labelled(drawn.figure)
    texts = _legend_texts(drawn.figure)
    assert any(t.startswith("ours:") and f"r = {ds['pearson_r'].item():.6f}" in t for t in texts)
    assert any(t.startswith("paper:") and "1.85" in t and "138" in t for t in texts)
    assert drawn.numbers["slope"] == ds["slope"].item() and drawn.paper == {"slope": 1.85, "intercept": 138.0}
    # the residual panel is the data minus our line
    residual = drawn.figure.axes[1].collections[0].get_offsets()[:, 1]
    expected = ds["learned_energy"].values.ravel() - (ds["slope"].item() * ds["true_energy"].values.ravel()
                                                      + ds["intercept"].item())
    np.testing.assert_allclose(residual, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())
    matplotlib.pyplot.close(drawn.figure)


def test_step_size_sweep_and_stepper_comparison_mark_divergence(diagnostics):
    sweep = diagnostics["step_size_sweep"].copy(deep=True)
    # make the Euler rollouts at 3 dt_train diverge at step 2, as the file would record it (NaN afterwards)
    sweep["diverged"].loc[{"stepper": "euler", "factor": 3.0}] = 1
    sweep["diverged_step"].loc[{"stepper": "euler", "factor": 3.0}] = 2
    sweep["energy"].loc[{"stepper": "euler", "factor": 3.0, "step": slice(3, None)}] = np.nan
    with style():
        drawn = plot_step_size_sweep(sweep, dataset="allen_cahn")
        comparison = plot_stepper_comparison(sweep, dataset="allen_cahn")
    _axes_labelled(drawn.figure)
    _axes_labelled(comparison.figure)
    titles = [ax.get_title() for ax in drawn.figure.axes]
    assert "explicit Euler (paper)" in titles and "stabilized (ours)" in titles
    assert [ax.get_yscale() for ax in drawn.figure.axes[2:4]] == ["log", "log"]   # the errors
    assert drawn.numbers["euler"]["smallest_diverging_factor"] == 3.0
    assert drawn.numbers["stabilized"]["smallest_diverging_factor"] is None
    assert "paper: explicit Euler blows up from 3" in drawn.finding
    assert comparison.numbers["euler"]["3"]["first_diverged_step"] == 2
    assert "explicit Euler (paper) at 3 × dt_train diverges in 2/2 rollouts (first at step 2)" in comparison.finding
    assert "stabilized (ours) at 3 × dt_train stays bounded" in comparison.finding
    labels = _legend_texts(comparison.figure)
    assert "explicit Euler (paper)" in labels and "stabilized (ours)" in labels
    crosses = [line for ax in comparison.figure.axes for line in ax.lines if line.get_marker() == "x"]
    assert crosses, "the diverged rollouts are marked"
    for d in (drawn, comparison):
        matplotlib.pyplot.close(d.figure)
    with pytest.raises(ValueError, match="none of the factors"):
        plot_stepper_comparison(sweep, dataset="allen_cahn", factors=(7,))


def test_energy_change_order_symbols_and_truth_figures(diagnostics):
    with style():
        change = plot_energy_change_vs_dt(diagnostics["energy_change_vs_dt"], dataset="fput")
        order = plot_energy_order(diagnostics["energy_order"], dataset="allen_cahn",
                                  symbols=diagnostics["operator_symbols"], epsilon=0.5)
        symbols = plot_operator_symbols(diagnostics["operator_symbols"], dataset="allen_cahn",
                                        dissipation=diagnostics["dissipation"])
    for d in (change, order, symbols):
        _axes_labelled(d.figure)
    ax = change.figure.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert change.numbers["median"]["exponent"] == diagnostics["energy_change_vs_dt"]["median_exponent"].item()
    assert any("reference slope 2" in t for t in _legend_texts(change.figure))
    assert order.figure.axes[0].get_xscale() == "log"
    exponents = diagnostics["energy_order"]["exponent"]
    assert order.numbers["total"]["exponent"] == exponents.sel(component="total").item()
    assert any("true density × b" in t for t in _legend_texts(order.figure))       # the truth in the learned gauge
    assert symbols.numbers["b_m_fit_coefficient"] == diagnostics["operator_symbols"]["b_m_fit_coefficient"].item()
    assert any(t == "truth" for t in _legend_texts(symbols.figure))
    for d in (change, order, symbols):
        matplotlib.pyplot.close(d.figure)


def test_prediction_figure_shows_truth_prediction_and_error_from_the_file(diagnostics):
    ds = diagnostics["prediction"]
    assert json.loads(ds.attrs["samples"]) == [1] and ds["rel_rmse"].values[0] == 0.0
    np.testing.assert_allclose(ds["error"].values, ds["prediction"].values - ds["truth"].values, atol=1e-6)
    with style():
        drawn = plot_prediction(ds, dataset="allen_cahn")
    images = [ax for ax in drawn.figure.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert [ax.get_title(loc="right") for ax in images] == ["truth", "prediction", "error"]
    assert drawn.numbers["sample"] == 1 and drawn.numbers["rel_rmse_last"] == float(ds["rel_rmse"].values[-1])
    assert "test trajectory 1" in drawn.finding
    matplotlib.pyplot.close(drawn.figure)


def test_every_figure_is_byte_identical_on_rerun_and_in_a_fresh_process(tmp_path, diagnostics):
    paths = {}
    for name, ds in diagnostics.items():
        paths[name] = str(write_diagnostic(ds, tmp_path / f"{name}.nc"))
    metric_paths = []
    for model_name, scale in (("speconsnet", 1e-3), ("classical", 2e-3)):
        ds = metrics_file(model_name=model_name, label=model_name, seed=0, scale=scale)
        path = tmp_path / f"m_{model_name}.nc"
        ds.to_netcdf(path)
        metric_paths.append(str(path))
    jobs = []
    for figure, info in FIGURES.items():
        inputs = {"metrics": metric_paths} if info.metrics else {
            k: [paths[k]] if info.every_run else paths[k] for k in info.diagnostics}
        jobs.append((figure, inputs))
    script = textwrap.dedent(f"""
        import json, sys
        import matplotlib
        matplotlib.rcParams["lines.linewidth"] = 7          # a user's rc must not change a figure
        from mesodyn.plotting import make_figure
        out = sys.argv[1]
        for figure, inputs in json.loads({json.dumps(json.dumps(jobs))}):
            make_figure(figure, "allen_cahn", inputs, pdf=f"{{out}}/{{figure}}.pdf", png=f"{{out}}/{{figure}}.png",
                        numbers=f"{{out}}/{{figure}}.json", epsilon=0.5)
    """)
    # once in a fresh process with another hash seed and a SOURCE_DATE_EPOCH, once here
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    subprocess.run([sys.executable, "-c", script, str(fresh)], check=True, timeout=600,
                   env={**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "123", "SOURCE_DATE_EPOCH": "1700000000"})
    here = tmp_path / "here"
    for figure, inputs in jobs:
        make_figure(figure, "allen_cahn", inputs, pdf=here / f"{figure}.pdf", png=here / f"{figure}.png",
                    numbers=here / f"{figure}.json", epsilon=0.5)
    runs = [{p.name: p.read_bytes() for p in sorted(out.iterdir())} for out in (fresh, here)]
    assert len(runs[0]) == 3 * len(FIGURES)
    for other in runs[1:]:
        assert other.keys() == runs[0].keys()
        changed = [name for name in runs[0] if runs[0][name] != other[name]]
        assert not changed, f"not byte-identical: {changed}"
    for name, payload in runs[0].items():
        if name.endswith(".pdf"):
            assert payload.startswith(b"%PDF") and b"CreationDate" not in payload and b"Matplotlib" not in payload
        elif name.endswith(".png"):
            assert payload.startswith(b"\x89PNG") and b"Software" not in payload and b"matplotlib" not in payload
        else:
            record = json.loads(payload)
            assert record["finding"] and record["numbers"], name
    record = json.loads(runs[0]["energy_vs_truth.json"])
    assert record["paper"] == {"slope": 1.85, "intercept": 138.0}
    assert record["numbers"]["slope"] == pytest.approx(float(diagnostics["energy_vs_truth"]["slope"].item()))
    assert "2605.16211" in record["paper_source"]


def test_style_file_is_the_one_style_and_independent_of_the_users_rc():
    assert STYLE.is_file()
    with matplotlib.rc_context({"lines.linewidth": 9.0, "font.size": 30}):
        with style():
            assert matplotlib.rcParams["lines.linewidth"] == 1.4 and matplotlib.rcParams["font.size"] == 9
        assert matplotlib.rcParams["lines.linewidth"] == 9.0
    fig = matplotlib.pyplot.figure()
    assert save_figure(fig) == [] and not matplotlib.pyplot.fignum_exists(fig.number)   # nothing asked, closed


def test_paper_values_name_their_source():
    values = paper_values()
    assert "2605.16211" in values["source"]
    assert values["energy_vs_truth"]["allen_cahn"] == {"slope": 1.85, "intercept": 138.0}
    assert values["energy_vs_truth"]["allen_cahn_2d"] == {"slope": 2.83, "intercept": 964.0}
    assert values["rel_rmse"]["kdv"]["fno"]["diverged_step"] == 18


# -- the plan of figures and diagnostics -------------------------------------------------------------------------------
def test_plan_follows_the_config():
    config = load_config(ROOT / "config" / "ci.yaml")
    plan = figure_plan(config)
    assert ("energy_vs_truth", "allen_cahn") in plan and ("energy_vs_truth", "kdv") not in plan
    assert ("energy_change_vs_dt", "fene") in plan and ("step_size_sweep", "fput") not in plan
    assert {d for f, d in plan if f == "rel_rmse"} == set(config["datasets"])
    assert all(d in FIGURES[f].datasets for f, d in plan if FIGURES[f].datasets is not None)
    diags = diagnostic_plan(config)
    assert diags[("fene", "energy_change_vs_dt")]["options"] == {"cap": 0.2, "local_derivative": "exact"}
    assert diags[("kdv", "operator_symbols")]["options"] == {"k_max_fit": "99.9%"}
    assert diags[("fene", "energy_order")]["options"] == {"s_max_fit": 0.2}
    assert diags[("kdv", "energy_along_truth")]["n_samples"] == 10
    sweep = diags[("allen_cahn", "step_size_sweep")]
    assert sweep["options"]["factors"] == config["figures"]["sweep_factors"]["allen_cahn"]
    assert sweep["path"] == "results/diagnostics/allen_cahn/speconsnet/seed0/step_size_sweep.nc"
    # every input of every figure is a diagnostics file of the plan or an evaluation file of the config
    planned = {e["path"] for e in diags.values()}
    for figure, dataset in plan:
        for key, value in figure_inputs(figure, dataset, config).items():
            if key == "metrics":
                assert value and all(v.startswith(f"results/metrics/{dataset}/") for v in value)
            elif FIGURES[figure].every_run:
                assert value == [e["path"] for e in long_horizon_plan(config, dataset=dataset)] and value
            elif FIGURES[figure].across_fits:
                assert value == identifiability_plan(config)[dataset]["path"]
            else:
                assert value in planned
    targets = figure_targets(config)
    tables = identifiability_targets(config) + hypotheses_targets(config)
    assert len(tables) == 6 and targets[-6:] == tables
    assert len(targets) == 3 * len(plan) + 7 and targets[-7].endswith("table_rel_rmse_first5.html")


def test_a_wrong_figures_run_is_one_sentence():
    config = load_config(ROOT / "config" / "ci.yaml")
    with pytest.raises(ConfigError, match=r"^config 'figures.run' names 'nope', which is not a run of fit.models"):
        figure_plan({**config, "figures": {**config["figures"], "run": "nope"}})
    with pytest.raises(ConfigError, match=r"'figures.run' = 'fno' is a fno model"):
        figure_plan({**config, "figures": {**config["figures"], "run": "fno"}})


def test_the_plan_the_workflow_parses_imports_no_plotting_stack():
    """Every Snakemake start-up (two per cluster job) parses figures.smk: its plan must not import matplotlib,
    xarray or torch (1.5-2 s of CPU per start-up here)."""
    code = ("import sys, mesodyn.figure_plan, mesodyn.config, mesodyn.training.settings\n"
            "heavy = [m for m in ('matplotlib', 'xarray', 'torch') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert plotting_module.figure_plan is plan_module.figure_plan and plotting_module.FIGURES is plan_module.FIGURES
