"""Hypotheses compared: the preference rule (Occam's razor on held-out error) and the classes' names."""

from __future__ import annotations

import pandas as pd
import pytest

from mesodyn.config import ConfigError
from mesodyn.figure_plan import hypotheses_settings
from mesodyn.hypotheses import describe_hypothesis, free_parameters, preferred


def rows(*items):
    return pd.DataFrame([{"run": r, "free_parameters": n, "heldout_mean": m, "heldout_std_seeds": s}
                         for r, n, m, s in items])


def test_the_simplest_class_as_good_as_the_best_is_preferred():
    table = preferred(rows(("paper", 1000, 1.00e-2, 1e-4), ("m_local", 200, 1.05e-2, 1e-4),
                           ("w_local", 200, 9.0e-2, 1e-3), ("mc_local", 199, 3.0e-1, 1e-2)), tolerance=0.1)
    assert table["as_good_as_best"].tolist() == [True, True, False, False]
    assert table.loc[table["preferred"], "run"].tolist() == ["m_local"]


def test_a_simpler_class_outside_the_tolerance_is_not_preferred():
    table = preferred(rows(("paper", 1000, 1.0e-2, 0.0), ("m_local", 200, 1.2e-2, 0.0)), tolerance=0.1)
    assert table.loc[table["preferred"], "run"].tolist() == ["paper"]
    # the seeds' spread widens what counts as as good as the best
    table = preferred(rows(("paper", 1000, 1.0e-2, 1.5e-3), ("m_local", 200, 1.2e-2, 1.5e-3)), tolerance=0.1)
    assert table.loc[table["preferred"], "run"].tolist() == ["m_local"]


def test_diverged_or_missing_errors_are_never_preferred():
    table = preferred(rows(("a", 10, float("nan"), 0.0), ("b", 100, 0.5, 0.0)), tolerance=0.1)
    assert table["preferred"].tolist() == [False, True]


def test_free_parameters_count_what_a_class_pins():
    base = {"name": "speconsnet", "shape": [64]}
    assert free_parameters({**base, "operators": "M"}, 100) == 100
    assert free_parameters({**base, "operators": "M", "conserved": True}, 100) == 99
    assert free_parameters({**base, "operators": "W"}, 100) == 98          # k = 0 and the Nyquist mode
    assert free_parameters({**base, "shape": [63], "operators": "W"}, 100) == 99
    assert free_parameters({**base, "shape": [8, 6], "conserved": True}, 100) == 95
    assert free_parameters({"name": "fno", "conserved": True}, 100) == 100


def test_hypothesis_names():
    assert describe_hypothesis({"name": "speconsnet"}) == "M + W; V local + nonlocal"
    assert describe_hypothesis({"name": "speconsnet", "operators": "M", "conserved": True,
                                "nonlocal_modes": 0}) == "M (conserved); V local"
    assert describe_hypothesis({"name": "speconsnet", "operators": "W", "nonlocal_modes": 0}) == "W; V local"
    assert describe_hypothesis({"name": "speconsnet_true_v", "operators": "M"}) == "M; V true"
    assert describe_hypothesis({"name": "fno"}) == "fno"


def _config(runs):
    return {"datasets": ["allen_cahn"], "seed": 0, "hypotheses": {"runs": runs},
            "fit": {"models": {"a": {"name": "speconsnet"}, "b": {"name": "speconsnet", "operators": "M"}},
                    "seeds": [1, 2]}}


def test_hypotheses_settings_plan_and_mistakes():
    settings = hypotheses_settings(_config(["a", "b"]))
    assert settings["files"] == {"allen_cahn": [f"results/metrics/allen_cahn/{r}/seed{s}.nc"
                                                for r in "ab" for s in (1, 2)]}
    assert hypotheses_settings(_config(None))["files"] == {}
    with pytest.raises(ConfigError, match="not runs of fit.models"):
        hypotheses_settings(_config(["a", "zz"]))
    with pytest.raises(ConfigError, match="at least two"):
        hypotheses_settings(_config(["a"]))


def test_a_mobility_above_a_wavenumber_acts_there_only():
    """``mobility_above``: m(k) = 0 on |k| <= K (pinned: not free), M as before above; W untouched."""
    import math

    import numpy as np
    import torch

    from mesodyn.models import build_model

    model = build_model({"name": "speconsnet", "shape": [32], "length": [2 * math.pi], "dt": 1e-3,
                         "nonlocal_modes": 0, "hidden": 4, "mobility_above": 3, "init_m_cap": None}).double()
    m, _ = model.operators.symbols()
    k = np.abs(np.fft.rfftfreq(32, d=1 / 32))
    assert torch.all(m[torch.as_tensor(k <= 3)] == 0) and torch.all(m[torch.as_tensor(k > 3)] == 1)
    u = torch.randn(2, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    model.zero_grad()
    model.step(u).pow(2).sum().backward()
    theta_grad = model.operators.theta.grad
    assert torch.all(theta_grad[:4] == 0) and theta_grad[4:].abs().sum() > 0  # pairs k = 0..3 have no gradient
    config = {"name": "speconsnet", "operators": "both", "mobility_above": 3, "nonlocal_modes": 0,
              "shape": [32], "length": [2 * math.pi]}
    assert describe_hypothesis(config) == "W + M (|k| > 3); V local"
    assert free_parameters(config, 1000) == 1000 - 4 - 2  # m(0..3); W on k = 0 and on the Nyquist mode
    for bad, message in (({"operators": "W"}, "needs operators 'both' or 'M'"), ({"mobility_above": -1.0},
                                                                                    "mobility_above")):
        with pytest.raises(ValueError, match=message):
            build_model({"name": "speconsnet", "shape": [32], "length": [2 * math.pi], "dt": 1e-3,
                         "mobility_above": 3, **bad})


def test_a_first_order_w_is_c_dot_k_with_one_coefficient_per_axis():
    """``w_symbol: first_order``: phi(k) = c . k (Nyquist components as 0), odd on the grid, and
    ``-c d/dx`` in 1-D: it moves a wave as the exact advection does."""
    import math

    import torch

    from mesodyn.models import build_model

    model = build_model({"name": "speconsnet", "shape": [8, 6], "length": [2 * math.pi, math.pi], "dt": 1e-3,
                         "operators": "W", "w_symbol": "first_order", "nonlocal_modes": 0, "hidden": 4}).double()
    ops = model.operators
    assert ops.psi is None and ops.w_coef.numel() == 2
    with torch.no_grad():
        ops.w_coef.copy_(torch.tensor([0.5, -2.0], dtype=torch.float64))
    _, phi = ops.symbols()
    k = ops.grid.k_half.clone()
    k[0, 4], k[1, :, 3] = 0.0, 0.0  # the Nyquist components (8 and 6 points) count as 0 in an odd derivative
    expected = 0.5 * k[0] - 2.0 * k[1]
    torch.testing.assert_close(phi, expected.to(phi.dtype))
    _, phi_full = ops.symbols(full=True)
    minus = [(-torch.arange(n)) % n for n in (8, 6)]
    torch.testing.assert_close(phi_full[minus[0]][:, minus[1]], -phi_full)  # odd: phi(-k) = -phi(k)
    one_d = build_model({"name": "speconsnet", "shape": [16], "length": [2 * math.pi], "dt": 1e-3,
                         "operators": "W", "w_symbol": "first_order", "nonlocal_modes": 0, "hidden": 4}).double()
    with torch.no_grad():
        one_d.operators.w_coef.fill_(1.5)
    x = torch.arange(16, dtype=torch.float64) * 2 * math.pi / 16
    mu = torch.sin(2 * x)[None]
    torch.testing.assert_close(one_d.operators.apply(mu), (1.5 * 2 * torch.cos(2 * x))[None], rtol=0, atol=1e-12)
    config = {"name": "speconsnet", "operators": "W", "w_symbol": "first_order", "nonlocal_modes": 0, "shape": [16]}
    assert describe_hypothesis(config) == "W (first order); V local"
    assert free_parameters(config, 100) == 100
    with pytest.raises(ValueError, match="needs operators 'both' or 'W'"):
        build_model({"name": "speconsnet", "shape": [16], "length": [2 * math.pi], "dt": 1e-3, "operators": "M",
                     "w_symbol": "first_order"})
