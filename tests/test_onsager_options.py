"""SpecOnsNet's options for a like-for-like comparison with the paper: ``init`` and ``nonlocal_gradient``.

``init="paper"``: the authors' initial weights (arXiv 2605.16211, code MLDS-NUS/Meso-SpecOnsNet).
``nonlocal_gradient="paper"``: the gradient of ``V_nl`` taken on the raw FFT coefficients, which is the
consistent gradient rescaled by ``w_k |Omega| / N^2`` on mode ``k`` (see :class:`NonlocalEnergy`).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from torch import nn

from mesodyn.models.configs import SpecOnsNetConfig
from mesodyn.onsager.model import SpecOnsNet

TWO_PI = 2 * math.pi


def _model(shape, length, **options):
    return SpecOnsNet(shape=shape, length=length, dt=1e-3, **options)


def _digest(model) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --- init -----------------------------------------------------------------------------------------------------
def test_paper_init_statistics_on_a_256_grid(torch_one_thread):
    torch.manual_seed(0)
    model = _model((256,), (TWO_PI,), init="paper", hidden=4, nonlocal_modes=2)
    theta = model.operators.theta.detach().double()
    psi = model.operators.psi.detach().double()
    n = theta.numel()
    assert n == 129  # one value per rfft bin k = 0..128, the authors' layout in 1-D
    # Sample std of n normals: relative standard error 1/sqrt(2 n) (6.2 % here); allow 4 of them.
    tol = 4 / math.sqrt(2 * n)
    assert abs(theta.std().item() / 0.1 - 1) < tol
    assert abs(psi.std().item() / 0.01 - 1) < tol
    assert abs(theta.mean().item()) < 4 * 0.1 / math.sqrt(n)
    assert abs(psi.mean().item()) < 4 * 0.01 / math.sqrt(n)
    assert abs(np.corrcoef(theta.numpy(), psi.numpy())[0, 1]) < 4 / math.sqrt(n)  # independent draws
    # a = b = softplus(0) = log 2: the raw parameters are exactly 0.
    assert model.free_energy.raw_a.item() == 0.0 and model.free_energy.raw_b.item() == 0.0
    assert model.free_energy.a.item() == pytest.approx(math.log(2.0), rel=1e-7)
    assert model.free_energy.b.item() == pytest.approx(math.log(2.0), rel=1e-7)
    # init_a, init_b, init_m and init_m_cap are not used.
    torch.manual_seed(0)
    other = _model((256,), (TWO_PI,), init="paper", hidden=4, nonlocal_modes=2, init_a=3.0, init_b=0.5,
                   init_m=7.0, init_m_cap=None)
    assert _digest(other) == _digest(model)


def test_paper_init_statistics_2d(torch_one_thread):
    torch.manual_seed(1)
    model = _model((64, 64), (TWO_PI, TWO_PI), init="paper", hidden=4, nonlocal_modes=2, gauge="unit_b")
    theta, psi = model.operators.theta.detach().double(), model.operators.psi.detach().double()
    n = theta.numel()
    assert n == (64 * 64 + 4) // 2  # pairs {k, -k}; 4 self-conjugate modes
    tol = 4 / math.sqrt(2 * n)
    assert abs(theta.std().item() / 0.1 - 1) < tol
    assert abs(psi.std().item() / 0.01 - 1) < tol
    assert model.free_energy.a.item() == pytest.approx(math.log(2.0), rel=1e-7)
    assert model.free_energy.b.item() == 1.0  # the gauge still fixes b


def test_paper_draw_order_and_pytorch_default_layers(torch_one_thread):
    """The documented order: F's layers, V_nl's layers (PyTorch defaults), then theta, then psi."""
    hidden, modes = 5, 3
    torch.manual_seed(11)
    model = _model((16,), (2.0,), init="paper", hidden=hidden, nonlocal_modes=modes)
    after_model = torch.randn(4)

    torch.manual_seed(11)
    f_layers = [nn.Linear(1, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden),
                nn.Linear(hidden, 1, bias=False)]
    nl_layers = [nn.Linear(2 * modes, 64), nn.Linear(64, 64), nn.Linear(64, 32)]
    n_pairs = 16 // 2 + 1
    theta = torch.randn(n_pairs) * 0.1
    psi = torch.randn(n_pairs) * 0.01
    assert torch.equal(torch.randn(4), after_model)  # nothing else is drawn

    local, nonlocal_ = model.free_energy.local, model.free_energy.nonlocal_part
    for mine, ref in zip([local.lin1, local.lin2, local.lin3, local.out, nonlocal_.lin1, nonlocal_.lin2,
                          nonlocal_.lin3], f_layers + nl_layers):
        assert torch.equal(mine.weight, ref.weight)
        assert (mine.bias is None and ref.bias is None) or torch.equal(mine.bias, ref.bias)
    assert torch.equal(model.operators.theta, theta)
    assert torch.equal(model.operators.psi, psi)

    # "ours" at the same seed: the same F and V_nl, other a, b, M and W.
    torch.manual_seed(11)
    ours = _model((16,), (2.0,), hidden=hidden, nonlocal_modes=modes)
    paper_sd, ours_sd = model.free_energy.state_dict(), ours.free_energy.state_dict()
    for key in paper_sd:
        if key.startswith(("local.", "nonlocal_part.")):
            assert torch.equal(paper_sd[key], ours_sd[key]), key
    # theta is drawn (and discarded) without M too, so psi does not depend on `operators`.
    for operators, name in (("M", "theta"), ("W", "psi")):
        torch.manual_seed(11)
        single = _model((16,), (2.0,), init="paper", hidden=hidden, nonlocal_modes=modes, operators=operators)
        assert torch.equal(getattr(single.operators, name), getattr(model.operators, name))


# Checksums of default-config models (seed 1234, float32), computed with torch 2.13.0+cpu from the code
# BEFORE the init/nonlocal_gradient options were implemented: build as below, hash the sorted state_dict.
_BEFORE = {(16,): "6bad65bf1d706d03", (8, 6): "e539ff2a4812dffd"}
_BEFORE_TORCH = "2.13.0+cpu"


@pytest.mark.parametrize("shape", [(16,), (8, 6)])
def test_default_config_is_unchanged(shape, torch_one_thread):
    options = ({"length": (TWO_PI,), "dt": 0.01} if len(shape) == 1
               else {"length": (2.0, 3.0), "dt": 0.05, "nonlocal_modes": 4, "hidden": 8})
    torch.manual_seed(1234)
    model = SpecOnsNet(shape=shape, **options)
    assert model.cfg.init == "ours" and model.cfg.nonlocal_gradient == "consistent"
    assert model.is_gradient_flow
    if torch.__version__ != _BEFORE_TORCH:  # another torch may draw other bits; the checks above still ran
        pytest.skip(f"checksums recorded with torch {_BEFORE_TORCH}, running {torch.__version__}")
    assert _digest(model) == _BEFORE[shape]


# --- nonlocal gradient --------------------------------------------------------------------------------------
def _retained(shape, n_modes):
    """Rows and columns of the rfftn half spectrum fed to V_nl (written out here, not taken from the model)."""
    cols = np.arange(min(n_modes, shape[-1] // 2 + 1))
    if len(shape) == 1:
        return None, cols
    m = min(n_modes, shape[0])
    rows = np.concatenate([np.arange((m + 1) // 2), np.arange(shape[0] - m // 2, shape[0])])
    return rows, cols


def _paper_gradient_by_autograd(nl, u, shape, n_modes):
    """The definition: autograd of V_nl with respect to the raw coefficients U = rfftn(u) (no 1/N), with
    PyTorch's convention for a real function of a complex tensor (dV/dRe U + i dV/dIm U, checked below),
    zero elsewhere, mapped back with irfftn, as the authors' code does."""
    dims = tuple(range(-len(shape), 0))
    big_u = torch.fft.rfftn(u, dim=dims).detach().requires_grad_(True)
    rows, cols = _retained(shape, n_modes)
    sub = big_u[..., cols] if rows is None else big_u[:, rows][..., cols]
    c = torch.cat([sub.real.flatten(1), sub.imag.flatten(1)], dim=1) / np.prod(shape)
    assert torch.allclose(c, nl.features(u), rtol=0, atol=1e-13)  # our V_nl's input, as a function of U
    z = tF.silu(nl.lin1(c))
    z = tF.silu(nl.lin2(z))
    energy = nl.grid.volume * ((1 - torch.cos(nl.lin3(z))) @ nl.v**2)
    assert torch.allclose(energy, nl(u), rtol=1e-13, atol=0)
    (g,) = torch.autograd.grad(energy.sum(), big_u)
    return torch.fft.irfftn(g, s=shape, dim=dims)


def test_complex_autograd_convention():
    z = torch.tensor([1.0 + 2.0j], dtype=torch.complex128, requires_grad=True)
    (g,) = torch.autograd.grad((3 * z.real**2 + 5 * z.imag).sum(), z)
    assert torch.equal(g, torch.tensor([6.0 + 5.0j], dtype=torch.complex128))


@pytest.mark.parametrize("shape, length, n_modes", [
    ((32,), (3.0,), 6),
    ((32,), (3.0,), 17),         # every mode up to the Nyquist one
    ((15,), (1.5,), 8),          # odd: no Nyquist mode
    ((8, 12), (2.0, 3.0), 4),
    ((7, 10), (1.0, 2.0), 6),    # Nyquist column of x retained, odd y
    ((6, 6), (1.0, 1.0), 6),     # every row and column
])
def test_paper_gradient_is_autograd_on_raw_fft_coefficients(shape, length, n_modes, torch_one_thread):
    torch.manual_seed(3)
    model = _model(shape, length, nonlocal_gradient="paper", nonlocal_modes=n_modes, hidden=4).double()
    nl = model.free_energy.nonlocal_part
    with torch.no_grad():  # larger weights than the default so that the MLP is far from linear
        for p in nl.parameters():
            p.copy_(torch.randn_like(p))
    u = 2 * torch.randn(3, *shape, dtype=torch.float64)
    expected = _paper_gradient_by_autograd(nl, u, shape, n_modes)
    got = nl.gradient(u)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12 * expected.abs().max().item())
    assert expected.abs().max() > 0


@pytest.mark.parametrize("shape, length", [((256,), (TWO_PI,)), ((12, 10), (2.0, 3.0))])
def test_paper_gradient_is_the_consistent_one_rescaled_per_mode(shape, length, torch_one_thread):
    options = {"nonlocal_modes": 16 if len(shape) == 1 else 6, "hidden": 4}
    torch.manual_seed(5)
    consistent = _model(shape, length, **options).double()
    paper = _model(shape, length, nonlocal_gradient="paper", **options).double()
    paper.load_state_dict(consistent.state_dict())
    assert consistent.is_gradient_flow and not paper.is_gradient_flow
    u = torch.randn(2, *shape, dtype=torch.float64)
    g_cons = consistent.free_energy.nonlocal_part.gradient(u)
    g_paper = paper.free_energy.nonlocal_part.gradient(u)
    dims = tuple(range(-len(shape), 0))
    h_cons, h_paper = torch.fft.rfftn(g_cons, dim=dims), torch.fft.rfftn(g_paper, dim=dims)

    n, volume = int(np.prod(shape)), float(np.prod(length))
    factor = torch.as_tensor(paper.free_energy.nonlocal_part.mode_factor())
    cols = torch.arange(shape[-1] // 2 + 1)
    predicted = torch.where((cols == 0) | (2 * cols == shape[-1]), 1.0, 2.0).double() * volume / n**2
    assert torch.allclose(factor, predicted.expand_as(factor), rtol=1e-15, atol=0)
    assert torch.allclose(h_paper, factor * h_cons, rtol=0, atol=1e-12 * h_paper.abs().max().item())
    if shape == (256,):
        # 2 |Omega| / N^2 = 4 pi / 65536 = 1.917e-4 on k >= 1, and |Omega| / N^2 = 9.59e-5 on k = 0.
        assert factor[1].item() == pytest.approx(1.9174759848570515e-4, rel=1e-12)
        assert factor[0].item() == pytest.approx(9.587379924285257e-05, rel=1e-12)
        ratio = (h_paper[:, 1:16] / h_cons[:, 1:16]).real
        assert torch.allclose(ratio, torch.full_like(ratio, factor[1].item()), rtol=1e-9, atol=0)
        # Only V_nl's part of mu changes; the energy does not.
        assert torch.equal(paper.energy(u)["total"], consistent.energy(u)["total"])
        mu_paper, mu_cons = paper.mu(u), consistent.mu(u)
        scale = mu_cons.abs().max().item()  # round-off of mu's larger local and quadratic parts
        assert torch.allclose(mu_paper - mu_cons, g_paper - g_cons, rtol=0, atol=1e-13 * scale)


def test_paper_gradient_trains(torch_one_thread):
    """The rescaled gradient stays differentiable in the weights (a training step through it)."""
    torch.manual_seed(2)
    model = _model((16,), (TWO_PI,), nonlocal_gradient="paper", nonlocal_modes=4, hidden=4, stepper="sbdf1")
    u = torch.randn(2, 16)
    loss = model.step(u).square().mean()
    loss.backward()
    grad = model.free_energy.nonlocal_part.lin1.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().max() > 0


def test_stabilized_stepper_is_refused_with_the_paper_gradient(torch_one_thread):
    with pytest.raises(ValueError, match="gradient flow"):
        SpecOnsNetConfig(shape=(8,), length=(1.0,), dt=0.1, stepper="stabilized", nonlocal_gradient="paper")
    # Without V_nl the option changes nothing and the model is a gradient flow.
    model = _model((8,), (1.0,), stepper="stabilized", nonlocal_gradient="paper", nonlocal_modes=0, hidden=4)
    assert model.is_gradient_flow
    model = _model((8,), (1.0,), stepper="euler", nonlocal_gradient="paper", nonlocal_modes=3, hidden=4)
    u = torch.randn(2, 8)
    model.step(u, stepper="sbdf1")
    with pytest.raises(ValueError, match="gradient flow"):
        model.step(u, stepper="stabilized")


# --- train_stepper ----------------------------------------------------------------------------------------------
def test_train_stepper_is_the_training_step_and_stepper_every_rollout(torch_one_thread):
    """``train_stepper``/``train_substeps`` act only in training mode; evaluation mode rolls out with ``stepper``."""
    torch.manual_seed(0)
    options = dict(hidden=8, nonlocal_modes=2, init_m=0.5)
    model = _model((32,), (TWO_PI,), stepper="avf", substeps=2, train_stepper="etdrk2", **options).double()
    x = torch.arange(32, dtype=torch.float64) * TWO_PI / 32
    u = torch.stack([torch.sin(x), 0.5 * torch.cos(2 * x)])
    with torch.no_grad():
        model.train()
        trained = model.step(u)
        model.eval()
        rolled = model.step(u)
    with torch.no_grad():
        # training: etdrk2 with the rollout's 2 substeps (train_substeps not given); evaluation: 2 avf substeps
        assert torch.allclose(trained, _substeps(model, u, "etdrk2", 2), rtol=0, atol=1e-14)
        assert torch.allclose(rolled, _substeps(model, u, "avf", 2), rtol=0, atol=1e-12)
        assert not torch.allclose(trained, rolled, rtol=0, atol=1e-12)
    single = _model((32,), (TWO_PI,), stepper="avf", substeps=2, train_stepper="etdrk2", train_substeps=1,
                    **options).double()
    single.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(single.train().step(u), _substeps(single, u, "etdrk2", 1), rtol=0, atol=1e-14)


def _substeps(model, u, stepper, n):
    from mesodyn.onsager.steppers import step

    for _ in range(n):
        u = step(model, u, model.dt / n, stepper)
    return u


def test_train_stepper_is_validated(torch_one_thread):
    with pytest.raises(ValueError, match="train_stepper"):
        SpecOnsNetConfig(shape=(8,), length=(1.0,), dt=0.1, train_stepper="rk4")
    with pytest.raises(ValueError, match="train_substeps"):
        SpecOnsNetConfig(shape=(8,), length=(1.0,), dt=0.1, train_substeps=0)
    with pytest.raises(ValueError, match="train_stepper 'avf'.*gradient flow"):
        SpecOnsNetConfig(shape=(8,), length=(1.0,), dt=0.1, train_stepper="avf", nonlocal_gradient="paper")
