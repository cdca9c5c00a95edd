"""The average-vector-field stepper ``"avf"``: its energy law, order, solver failure and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from mesodyn.models import build_model, check_model_config
from mesodyn.onsager import SpecOnsNet
from mesodyn.onsager.avf import StepperConvergenceError, avf_step, energy_defect
from mesodyn.training import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("torch_one_thread")

DTS = (1e-3, 1e-1, 1.0, 10.0, 100.0)
# Scale 0.3 of the random weights keeps a + F'' > 0 on the fields' range (measured: F'' in [-0.17, 0.23],
# a >= 0.48), where the implicit equation is uniquely solvable at every dt; at scale 0.5 V is strongly
# non-convex (a + F'' down to -13) and large steps have several solutions (see the solver test).
MEMBERS = [((16,), 0, "both"), ((15,), 1, "both"), ((16,), 2, "M"), ((5, 6), 3, "both")]


def random_member(shape, seed, *, operators="both", scale=0.3, hidden=8, nonlocal_modes=3,
                  local_derivative="exact"):
    """A float64 SpecOnsNet whose every parameter is drawn at random (not the default initialization)."""
    torch.manual_seed(seed)
    length = tuple(2 * np.pi * (1 + 0.5 * i) for i in range(len(shape)))
    model = SpecOnsNet(shape=shape, length=length, dt=1e-3, operators=operators, hidden=hidden,
                       nonlocal_modes=nonlocal_modes, stepper="avf", local_derivative=local_derivative).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def random_field(shape, seed, batch=3):
    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)


def allowance(v):
    """Round-off and solver allowance of an energy comparison."""
    return 1e-10 * (1.0 + v.abs())


@pytest.mark.parametrize("shape, seed, operators", MEMBERS)
def test_energy_law_on_random_members_for_every_dt(shape, seed, operators):
    """V(u+) - V(u) = -dt <mu_bar, M mu_bar> <= 0 for dt from 1e-3 to 100, to round-off and solver tolerance."""
    model = random_member(shape, seed, operators=operators)
    u = random_field(shape, seed)
    with torch.no_grad():
        v0 = model.energy(u)["total"]
        for dt in DTS:
            u_next = model.step(u, dt=dt)
            law = energy_defect(model, u, u_next, dt)
            assert (law["change"] <= allowance(v0)).all(), (dt, law["change"])
            assert (law["dissipation"] >= 0).all()
            assert (law["defect"].abs() <= allowance(v0)).all(), (dt, law["defect"])


@pytest.mark.parametrize("shape, seed", [((16,), 4), ((5, 6), 5)])
def test_energy_is_conserved_without_m(shape, seed):
    model = random_member(shape, seed, operators="W")
    u = random_field(shape, seed)
    with torch.no_grad():
        v0 = model.energy(u)["total"]
        for dt in DTS:
            u_next = model.step(u, dt=dt)
            assert (u_next - u).abs().max() > 1e-6 or dt < 1e-2  # the state moves, the energy does not
            assert ((model.energy(u_next)["total"] - v0).abs() <= allowance(v0)).all(), dt


def test_energy_law_holds_whatever_the_quadrature():
    """The quadrature remainder is put back along d, so even the midpoint (1 node) keeps the law exactly; more
    nodes only change the accuracy of the average vector field."""
    model = random_member((16,), 6)
    u = random_field((16,), 6)
    with torch.no_grad():
        v0 = model.energy(u)["total"]
        states = {q: avf_step(model, u, 1.0, nodes=q) for q in (1, 2, 4)}
        for q, u_next in states.items():
            assert (energy_defect(model, u, u_next, 1.0, nodes=q)["defect"].abs() <= allowance(v0)).all(), q
    # Gauss-Legendre with 2 and 4 nodes agree to the quadrature error, the midpoint less closely.
    assert (states[2] - states[4]).abs().max() < (states[1] - states[4]).abs().max()


def test_second_order_in_dt():
    model = random_member((16,), 7, scale=0.2)
    u0 = 0.5 * random_field((16,), 7, batch=2)
    horizon = 0.4
    with torch.no_grad():
        reference = model.rollout(u0, 256, dt=horizon / 256)[:, -1]
        errors = [float((model.rollout(u0, n, dt=horizon / n)[:, -1] - reference).norm()) for n in (4, 8, 16)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.8 < p < 2.3 for p in orders), (errors, orders)


@pytest.mark.parametrize("shape, seed, operators", MEMBERS[1:])
def test_interpolant_members_read_v_from_one_table_and_keep_the_law(shape, seed, operators):
    """With ``local_derivative="interpolant"`` the step reads ``F`` from one verified table per step: the law
    holds for the exact ``V`` to the table's tolerance (1e-12 in float64), and the state is the exact-F step's."""
    exact = random_member(shape, seed, operators=operators)
    fast = random_member(shape, seed, operators=operators, local_derivative="interpolant")
    u = random_field(shape, seed)
    with torch.no_grad():
        v0 = exact.energy(u)["total"]
        for dt in DTS:
            u_fast, u_exact = fast.step(u, dt=dt), exact.step(u, dt=dt)
            law = energy_defect(exact, u, u_fast, dt)
            assert (law["change"] <= allowance(v0)).all(), (dt, law["change"])
            assert (law["defect"].abs() <= allowance(v0)).all(), (dt, law["defect"])
            assert (u_fast - u_exact).abs().max() <= 1e-9 * (1 + u_exact.abs().max()), dt


def test_one_step_of_an_interpolant_member_fits_two_tables(monkeypatch):
    """One table of F' for the whole solve (not one per iterate) and one of F; the state is the exact-F step's."""
    from mesodyn.onsager import interpolant

    fits = []
    original = interpolant.Table.fit.__func__
    monkeypatch.setattr(interpolant.Table, "fit",
                        classmethod(lambda cls, *a, **k: fits.append(k["what"]) or original(cls, *a, **k)))
    fast = random_member((16,), 12, local_derivative="interpolant")
    u = random_field((16,), 12)
    with torch.no_grad():
        u_fast, iterations = avf_step(fast, u, 0.1, return_iterations=True)
        u_exact = avf_step(random_member((16,), 12), u, 0.1)
    assert iterations >= 3 and sorted(fits) == ["F", "F'"]
    assert (u_fast - u_exact).abs().max() <= 1e-9


def test_the_table_widens_when_an_iterate_leaves_it(monkeypatch):
    from mesodyn.onsager import avf

    monkeypatch.setattr(avf._StepEnergy, "MARGIN", 0.0)  # the first iterate beyond u's range must refit it
    widened = []
    original = avf._StepEnergy.widen
    monkeypatch.setattr(avf._StepEnergy, "widen", lambda self, v: widened.append(original(self, v)) or widened[-1])
    model = random_member((16,), 10, local_derivative="interpolant")
    u = random_field((16,), 10)
    with torch.no_grad():
        v0 = model.energy(u)["total"]
        u_next = model.step(u, dt=10.0)
        law = energy_defect(model, u, u_next, 10.0)
    assert any(widened)
    assert (law["change"] <= allowance(v0)).all() and (law["defect"].abs() <= allowance(v0)).all()


def test_too_few_iterations_raise_a_clear_error():
    model = random_member((16,), 8)
    u = random_field((16,), 8)
    with pytest.raises(StepperConvergenceError, match=r"did not converge in 2 iterations.*residual \d"):
        with torch.no_grad():
            avf_step(model, u, 1.0, max_iter=2)


def test_a_strongly_non_convex_member_at_a_large_step_fails_loudly():
    model = random_member((16,), 0, scale=0.5)  # a + F'' reaches -13: the step has several solutions
    with pytest.raises(StepperConvergenceError, match="implicit equation"):
        with torch.no_grad():
            model.step(random_field((16,), 0), dt=100.0)


def test_gradcheck_through_the_implicit_step():
    """Implicit differentiation: the gradient to the state and to parameters of V, M and W is that of the
    converged step (finite differences of the forward solve)."""
    model = random_member((6,), 9, hidden=4, nonlocal_modes=2)
    names = ["operators.theta", "operators.psi", "free_energy.raw_a", "free_energy.local.lin1.weight",
             "free_energy.nonlocal_part.v"]
    params = dict(model.named_parameters())
    base = {name: params[name].detach().clone() for name in names}
    u = random_field((6,), 9, batch=2)

    def step(u, *values):
        with torch.nn.utils.stateless._reparametrize_module(model, dict(zip(names, values))):
            return model.step(u, dt=0.5)

    inputs = (u.clone().requires_grad_(),) + tuple(v.clone().requires_grad_() for v in base.values())
    assert torch.autograd.gradcheck(step, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradients_through_the_table_of_an_interpolant_member():
    """Training through the step of an interpolant model: the weights' gradient reaches ``F``'s table (through
    its node values) and agrees with the exact-F model's to the tables' tolerance."""
    grads = {}
    for mode in ("exact", "interpolant"):
        model = random_member((8,), 11, hidden=4, nonlocal_modes=2, local_derivative=mode)
        u = random_field((8,), 11, batch=2)
        model.step(u, dt=0.5).pow(2).sum().backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.allclose(grads["interpolant"], grads["exact"], rtol=1e-7, atol=1e-9)


def test_configs_accept_avf_where_it_applies():
    config = {"name": "speconsnet", "shape": [8], "length": [1.0], "dt": 0.1, "stepper": "avf"}
    check_model_config(config)
    assert build_model(config).stepper == "avf"
    with pytest.raises(ValueError, match="gradient flow"):
        check_model_config({"name": "speconsnet", "shape": [8], "length": [1.0], "dt": 0.1, "stepper": "avf",
                            "nonlocal_gradient": "paper"})
    with pytest.raises(ValueError, match="euler or sbdf1"):
        check_model_config({"name": "res_onsagernet", "shape": [8], "length": [1.0], "dt": 0.1, "stepper": "avf"})


def _decaying_waves(n_samples=12, n_time=9, nx=16, dt=0.05):
    rng = np.random.default_rng(0)
    x = np.arange(nx) * 2 * np.pi / nx
    t = np.arange(n_time) * dt
    k = np.arange(1, 4)
    amp, phase = rng.uniform(0, 1, (n_samples, 3)), rng.uniform(0, 2 * np.pi, (n_samples, 3))
    u = np.einsum("sm,tm,smtx->stx", amp, np.exp(-0.5 * k**2 * t[:, None]),
                  np.sin(k[None, :, None, None] * (x - 0.3 * t[:, None]) + phase[:, :, None, None]))
    return xr.Dataset({"u": (("sample", "time", "x"), u)}, coords={"time": t, "x": x})


def test_training_with_the_avf_step_lowers_the_loss(tmp_path):
    train = TrainConfig(window=4, rollout_steps=2, batch_size=4, lr=0.01, max_epochs=12, valid_every=4,
                        early_stopping=5, dtype="float32", device="cpu", seed=0, split_seed=0)
    result = fit(_decaying_waves(), model_config={"name": "speconsnet", "stepper": "avf", "hidden": 8,
                                                   "nonlocal_modes": 2}, train=train, out_dir=tmp_path,
                 progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0], losses
