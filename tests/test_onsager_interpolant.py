"""The verified interpolant of ``F'`` (``local_derivative="interpolant"``) is the exact ``F'`` to its tolerance.

Values are compared with the exact closed form in float64 at random points (not the nodes or the check points),
gradients with the exact path's hand-written backward, and a whole training loss with the exact model's.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mesodyn.onsager.interpolant as interpolant
from mesodyn.onsager import SpecOnsNet, model_config
from mesodyn.onsager.energy import PointwiseMLP
from mesodyn.training import rollout_loss

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def local_pair(seed, *, hidden=16, scale=1.0, dtype=torch.float64):
    """The same random MLP twice: through the interpolant and exact. Weights: PyTorch's default draws times
    ``scale`` (and the output weights of unit size), i.e. MLPs like the trained ones."""
    torch.manual_seed(seed)
    fast = PointwiseMLP(hidden=hidden, derivative="interpolant").to(dtype)
    with torch.no_grad():
        for p in fast.parameters():
            p.mul_(scale)
        fast.out.weight.normal_()
    exact = PointwiseMLP(hidden=hidden, derivative="exact").to(dtype)
    exact.load_state_dict(fast.state_dict())
    return fast, exact


def relative_error(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())  # (under no_grad or on detached tensors)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), scale=st.floats(0.3, 3.0), width=st.floats(0.5, 30.0),
       centre=st.floats(-10.0, 10.0))
def test_values_match_the_exact_derivative_to_the_tolerance(seed, scale, width, centre):
    fast, exact = local_pair(seed, scale=scale)
    u = centre + width * (torch.rand(5, 37, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) - 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback must not be needed for these weights
        got = fast.derivative(u)
    # verified at the check points to 1e-12 of max |F'|; at other points within a small factor of that
    assert relative_error(got, exact.derivative(u)) < 4 * interpolant.TOLERANCE[torch.float64]


def test_float32_interpolant_is_as_accurate_as_the_float32_exact_path():
    fast, exact = local_pair(3, hidden=64, dtype=torch.float32)
    u = 3.0 * torch.randn(20000, generator=torch.Generator().manual_seed(0))
    truth = exact.double().derivative(u.double())
    exact.float()
    err_fast = relative_error(fast.derivative(u).double(), truth)
    err_exact = relative_error(exact.derivative(u).double(), truth)
    assert err_fast < 4 * interpolant.TOLERANCE[torch.float32]
    assert err_fast < 3 * err_exact, (err_fast, err_exact)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_match_the_exact_path(seed):
    fast, exact = local_pair(seed, hidden=32)
    gen = torch.Generator().manual_seed(seed)
    u = 2.0 * torch.randn(4, 300, dtype=torch.float64, generator=gen)
    cot = torch.randn(u.shape, dtype=torch.float64, generator=gen)
    grads = []
    for f in (fast, exact):
        x = u.clone().requires_grad_(True)
        (f.derivative(x) * cot).sum().backward()
        grads.append([x.grad] + [p.grad for p in f.parameters()])
    for got, want in zip(*grads):
        assert float((got - want).norm() / want.norm()) < 1e-8


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_compiled_cpu_loops_equal_the_aten_kernels(monkeypatch, dtype):
    """The CPU path (one compiled pass per direction, Horner's rule on monomial coefficients) and the ATen path
    (the GPU's, Clenshaw's recurrence on the Chebyshev coefficients) are the same piecewise polynomial: in float64
    within the interpolant's float64 tolerance (the change of basis amplifies round-off by at most 1393, to about
    1e-13), in float32 to its round-off; a float32 point at a bin's end may land in either neighbour, whose
    polynomials agree there to the interpolant's tolerance."""
    fast, _ = local_pair(9, hidden=32, dtype=dtype)
    gen = torch.Generator().manual_seed(3)
    u = (2.5 * torch.randn(3, 4000, generator=gen, dtype=torch.float64)).to(dtype)
    cot = torch.randn(u.shape, generator=gen, dtype=torch.float64).to(dtype)
    table = interpolant.Table.fit(fast._exact64(), -12.0, 12.0, dtype=dtype, device="cpu", what="F'")

    def run():
        x = u.clone().requires_grad_(True)
        coefficients = table.coefficients.detach().clone().requires_grad_(True)
        y = interpolant.Table(coefficients, table.lo, table.hi)(x)
        (y * cot).sum().backward()
        return y.detach(), x.grad, coefficients.grad

    compiled = run()
    assert all(torch.equal(a, b) for a, b in zip(compiled, run()))  # one fixed order: bit for bit
    monkeypatch.setattr(interpolant, "_compiled", lambda *tensors: False)
    aten = run()
    tol = interpolant.TOLERANCE[torch.float64] if dtype == torch.float64 else 4e-6
    for got, want in zip(compiled, aten):
        assert relative_error(got, want) < tol


def test_chunks_and_threads_change_nothing_but_summation_order(monkeypatch):
    monkeypatch.setattr(interpolant, "_compiled", lambda *tensors: False)  # the ATen path (off the CPU)
    fast, _ = local_pair(4)
    u = torch.randn(3, 1000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)

    def run():
        for p in fast.parameters():
            p.grad = None
        u.grad = None
        y = fast.derivative(u)
        (y * torch.cos(u.detach())).sum().backward()
        return y.detach(), u.grad.clone(), [p.grad.clone() for p in fast.parameters()]

    y0, gu0, gp0 = run()
    monkeypatch.setattr(interpolant, "_CHUNK", 7)
    torch.set_num_threads(2)
    y1, gu1, gp1 = run()
    assert torch.equal(y0, y1) and torch.equal(gu0, gu1)  # pointwise: bit for bit
    for a, b in zip(gp0, gp1):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    y2, gu2, gp2 = run()  # same settings: bit for bit (no dependence on timing or earlier calls)
    assert torch.equal(y1, y2) and all(torch.equal(a, b) for a, b in zip(gp1, gp2))


def test_falls_back_to_the_exact_path_with_a_warning_when_the_bins_do_not_suffice(monkeypatch):
    fast, exact = local_pair(5, scale=4.0)
    monkeypatch.setattr(interpolant, "MAX_BINS", 16)
    u = torch.linspace(-20, 20, 500, dtype=torch.float64)[None]
    with pytest.warns(RuntimeWarning, match="using the exact F'"):
        got = fast.derivative(u)
    assert torch.equal(got, exact.derivative(u))


def test_bins_grow_with_the_range_and_the_tolerance_is_met_where_checked():
    fast, _ = local_pair(6, hidden=32)
    exact64 = lambda x: fast.exact_derivative(x)  # noqa: E731
    with torch.no_grad():
        narrow = interpolant.choose_bins(exact64, -1.0, 1.0, 1e-12)
        wide = interpolant.choose_bins(exact64, -20.0, 20.0, 1e-12)
        loose = interpolant.choose_bins(exact64, -20.0, 20.0, 1e-6)
    assert narrow[1] <= 1e-12 and wide[1] <= 1e-12 and loose[1] <= 1e-6
    assert narrow[0] < wide[0] and loose[0] < wide[0]


def test_constant_and_non_finite_fields():
    fast, exact = local_pair(7)
    u = torch.full((2, 8), 0.37, dtype=torch.float64)
    assert relative_error(fast.derivative(u), exact.derivative(u)) < 1e-12
    u[0, 3] = math.nan
    out = fast.derivative(u)  # handed to the exact path: NaN stays where it was, for the training NaN guard
    assert torch.isnan(out[0, 3]) and torch.isfinite(out[1]).all()


@pytest.mark.parametrize("shape", [(64,), (16, 12)])
def test_training_loss_and_gradients_match_the_exact_model(shape):
    options = dict(shape=shape, length=(2 * math.pi,) * len(shape), dt=1e-3, hidden=32, nonlocal_modes=4)
    torch.manual_seed(0)
    exact = SpecOnsNet(**options)
    fast = SpecOnsNet(**options, local_derivative="interpolant")
    fast.load_state_dict(exact.state_dict())
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(6, 1, *shape, generator=gen)
    windows = base + 0.01 * torch.cumsum(torch.randn(6, 5, *shape, generator=gen), dim=1)
    results = []
    for model in (exact, fast):
        loss = rollout_loss(model, windows, rollout_steps=3)
        loss.backward()
        results.append((float(loss.detach()), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (l0, g0), (l1, g1) = results
    assert l1 == pytest.approx(l0, rel=1e-5)
    assert float((g1 - g0).norm() / g0.norm()) < 1e-4


def test_the_option_is_validated_and_recorded():
    cfg = model_config(shape=[8], length=[1.0], dt=0.1, local_derivative="interpolant")
    assert cfg["local_derivative"] == "interpolant"
    assert model_config(shape=[8], length=[1.0], dt=0.1)["local_derivative"] == "exact"
    with pytest.raises(ValueError, match="local_derivative must be one of exact, interpolant"):
        model_config(shape=[8], length=[1.0], dt=0.1, local_derivative="chebyshev")


def test_node_polynomial_peaks_at_the_check_points():
    s = np.linspace(-1, 1, 20001)
    omega = np.prod(s[:, None] - interpolant._NODES[None, :], axis=1)
    at_checks = np.prod(interpolant._CHECKS[:, None] - interpolant._NODES[None, :], axis=1)
    assert np.abs(at_checks).min() == pytest.approx(np.abs(omega).max(), rel=1e-6)


def test_stopped_and_resumed_fit_equals_an_uninterrupted_one(tmp_path):
    import xarray as xr

    from mesodyn.training import TrainConfig, fit

    x = 2 * np.pi * np.arange(32) / 32
    t = 0.01 * np.arange(9)
    rng = np.random.default_rng(0)
    amp = rng.uniform(0.5, 2.0, (12, 1, 1))
    u = amp * np.sin(x + rng.uniform(0, 2 * np.pi, (12, 1, 1))) * np.exp(-t)[None, :, None]
    data = xr.Dataset({"u": (("sample", "time", "x"), u)}, coords={"time": t, "x": x})
    model = {"name": "speconsnet", "hidden": 8, "nonlocal_modes": 2, "local_derivative": "interpolant"}

    def run(out, epochs):
        settings = TrainConfig(window=4, rollout_steps=2, batch_size=4, lr=1e-2, max_epochs=epochs, valid_every=5,
                               early_stopping=10, seed=1, split_seed=1, device="cpu")
        return fit(data, model_config=model, train=settings, out_dir=out, progress=False)

    run(tmp_path / "straight", 20)
    run(tmp_path / "resumed", 10)
    assert run(tmp_path / "resumed", 20).resumed_from == 10
    for name in ("weights.pt", "history.csv"):
        assert (tmp_path / "straight" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name


def test_the_table_of_f_meets_the_tolerance_and_carries_the_weights_gradient():
    """``PointwiseMLP.density_table``: ``F`` itself (the AVF step's energy) to 1e-12 of max |F| in float64, and
    its gradient to the weights is that of the exact ``F`` to the same order."""
    fast, exact = local_pair(8)
    x = torch.linspace(-2.5, 2.5, 1001, dtype=torch.float64)
    table = fast.density_table(-3.0, 3.0, like=x)
    assert table.covers(x) and not table.covers(x + 1.0)
    value, reference = table(x), exact(x)
    assert float((value - reference).detach().abs().max()) <= 1e-11 * float(reference.detach().abs().max())
    (g_table,) = torch.autograd.grad(value.sum(), fast.lin2.weight)
    (g_exact,) = torch.autograd.grad(reference.sum(), exact.lin2.weight)
    assert relative_error(g_table, g_exact) < 1e-9


def _interpolant_model(dtype=torch.float64, seed=12):
    from mesodyn.models import build_model

    torch.manual_seed(seed)
    config = {"name": "speconsnet", "shape": [32], "length": [2 * math.pi], "dt": 0.01, "hidden": 16,
              "nonlocal_modes": 4, "local_derivative": "interpolant"}
    return build_model(config).to(dtype)


def _windows(dtype=torch.float64, batch=6, frames=6, seed=13):
    gen = torch.Generator().manual_seed(seed)
    x = torch.arange(32, dtype=dtype) * 2 * math.pi / 32
    phase = 6.3 * torch.rand(batch, 1, 1, generator=gen, dtype=dtype)
    decay = torch.exp(-0.05 * torch.arange(frames, dtype=dtype))[None, :, None]
    return (torch.sin(x + phase) + 0.3 * torch.cos(3 * x - phase)) * decay


def _train(model, windows, steps, *, shared):
    from mesodyn.training import rollout_loss

    if not shared:  # per-call tables, as before the shared one (an instance attribute hides the method)
        model.shared_tables = lambda fields: contextlib.nullcontext()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = rollout_loss(model, windows, rollout_steps=3)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_one_table_serves_the_whole_training_rollout(monkeypatch):
    """Inside a training step's K-step rollout the interpolant is fitted once (on the windows' range), not once
    per step; a state that leaves the table still gets a verified table of its own."""
    calls = []
    original = interpolant.choose_bins
    monkeypatch.setattr(interpolant, "choose_bins", lambda *a, **k: calls.append(a[1:3]) or original(*a, **k))
    _train(_interpolant_model(), _windows(), 1, shared=True)
    assert len(calls) == 1
    model = _interpolant_model()
    with torch.no_grad(), model.shared_tables(_windows()):
        calls.clear()
        model.free_energy.local.derivative(torch.full((1, 32), 5.0, dtype=torch.float64))  # far outside
    assert len(calls) == 1 and calls[0][0] > 4.0


def test_training_losses_with_one_table_agree_with_per_call_tables():
    """50 Adam steps (float64, interpolant tolerance 1e-12): the shared table changes the losses at the level of
    the tolerance only (measured: 2.4e-13 relative at most)."""
    windows = _windows()
    shared = _train(_interpolant_model(), windows, 50, shared=True)
    per_call = _train(_interpolant_model(), windows, 50, shared=False)
    assert shared[-1] < 0.5 * shared[0]
    assert max(abs(a - b) / b for a, b in zip(shared, per_call)) < 1e-10


def test_without_gradients_one_table_is_kept_while_the_weights_and_the_range_hold(monkeypatch):
    """Rollouts and evaluation (no autograd) keep the ``F'`` table of an earlier call: twenty Euler steps whose
    fields stay in range fit one table, not twenty; a change of the weights (in place, as an optimizer step, or
    through ``.data``, which no version counter sees) or a field outside the table fits a new one; the values stay
    those of the exact ``F'`` to the tolerance; and with gradients on (training) nothing is kept."""
    calls = []
    original = interpolant.choose_bins
    monkeypatch.setattr(interpolant, "choose_bins", lambda *a, **k: calls.append(a[1:3]) or original(*a, **k))
    model = _interpolant_model()
    local = model.free_energy.local
    exact = PointwiseMLP(hidden=16, derivative="exact").double()
    exact.load_state_dict(local.state_dict())
    u = _windows()[:, 0]
    with torch.no_grad():
        for _ in range(20):
            u = model.step(u)
        assert len(calls) == 1
        assert relative_error(local.derivative(u), exact.derivative(u)) < 4 * interpolant.TOLERANCE[torch.float64]
        local.derivative(3.0 * u)  # outside: a new table, kept from now on
        assert len(calls) == 2
        local.derivative(2.5 * u)
        assert len(calls) == 2
        local.lin2.weight.mul_(1.01)  # new weights: the kept table is stale
        local.derivative(u)
        assert len(calls) == 3
        local.lin3.bias.data.add_(0.01)  # an edit through .data (no version bump) is seen too
        local.derivative(u)
        assert len(calls) == 4
        exact.load_state_dict(local.state_dict())
        assert relative_error(local.derivative(u), exact.derivative(u)) < 4 * interpolant.TOLERANCE[torch.float64]
    local.derivative(u)  # with gradients: a table of its own, every call
    local.derivative(u)
    assert len(calls) == 6


def test_the_avf_table_of_f_is_kept_between_steps_of_a_rollout(monkeypatch):
    """An AVF rollout of an interpolant model without gradients: the tables of ``F`` and ``F'`` are fitted once for
    ten steps whose fields stay in range (before: two per step), and every step keeps its energy law."""
    from mesodyn.onsager.avf import energy_defect

    calls = []
    original = interpolant.choose_bins
    monkeypatch.setattr(interpolant, "choose_bins", lambda *a, **k: calls.append(a[1:3]) or original(*a, **k))
    model = _interpolant_model()
    u = _windows()[:, 0]
    with torch.no_grad():
        for _ in range(10):
            v = model.step(u, stepper="avf")
            law = energy_defect(model, u, v, model.dt)
            assert float(law["defect"].abs().max()) < 1e-9 * (1 + float(law["change"].abs().max()))
            u = v
    assert len(calls) <= 4, len(calls)  # (measured: 2)


def test_the_tabulated_energy_is_v_to_the_tolerance_and_only_where_it_applies(monkeypatch):
    """``energy(u, tabulated=True)``: ``F`` from the kept table of ``F`` (one fit for calls in range), equal to the
    exact ``V`` to the table's tolerance in float64; the exact path, bit for bit, for an exact model and wherever
    gradients are on (differentiable as before)."""
    calls = []
    original = interpolant.choose_bins
    monkeypatch.setattr(interpolant, "choose_bins", lambda *a, **k: calls.append(a[1:3]) or original(*a, **k))
    model = _interpolant_model()
    fields = _windows()
    with torch.no_grad():
        exact = model.energy(fields[:, 0])
        for frame in range(fields.shape[1]):
            u = fields[:, frame]
            tabulated, reference = model.energy(u, tabulated=True), model.energy(u)
            scale = float(model.free_energy.grid.volume) * float(model.free_energy.local(u).abs().max())
            assert float((tabulated["local"] - reference["local"]).abs().max()) <= 1e-11 * scale
            assert not torch.equal(tabulated["local"], reference["local"])  # (it did read the table)
            for part in ("quadratic", "nonlocal"):
                assert torch.equal(tabulated[part], reference[part])
    assert len(calls) <= 2, len(calls)  # the decaying frames stay in the first table's range
    model.local_derivative = "exact"
    with torch.no_grad():
        assert torch.equal(model.energy(fields[:, 0], tabulated=True)["total"], exact["total"])
    model.local_derivative = "interpolant"
    u = fields[:, 0].clone().requires_grad_()
    with_graph = model.energy(u, tabulated=True)["total"]
    assert torch.equal(with_graph.detach(), exact["total"]) and with_graph.requires_grad
