"""The hand-written derivatives behind the fast training step agree with autograd.

``F'`` is one :class:`torch.autograd.Function` (closed-form forward mode, hand-written reverse-over-forward
backward, chunked over grid points), and ``V_nl`` reads its Fourier modes through real cosine/sine tables.
These tests check both against plain autograd: ``gradcheck`` in float64, the double-backward gradient the
authors' approach computes, and the FFT definition of the modes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mesodyn.onsager.energy as energy
from mesodyn.onsager import SpecOnsNet


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 points, so that several chunks and a short last chunk are exercised."""
    monkeypatch.setattr(energy, "_CHUNK", 7)


def random_local(seed, hidden=5, scale=1.0):
    torch.manual_seed(seed)
    f = energy.PointwiseMLP(hidden=hidden).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in f.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return f


def weights(f):
    return (f.lin1.weight, f.lin1.bias, f.lin2.weight, f.lin2.bias, f.lin3.weight, f.lin3.bias, f.out.weight[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_local_derivative_function_passes_gradcheck(seed, small_chunks):
    f = random_local(seed)
    u = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in weights(f)]
    assert torch.autograd.gradcheck(energy._LocalDerivative.apply, (u, *params), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_local_derivative_refuses_a_second_derivative(small_chunks):
    f = random_local(3)
    u = torch.randn(10, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f.derivative(u).sum(), u, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), u)


@pytest.mark.parametrize("chunk", [7, 4096])
def test_local_derivative_matches_autograd_double_backward(chunk, monkeypatch):
    """Value and every weight gradient of ``sum lam F'(u)`` equal the ``create_graph=True`` result."""
    monkeypatch.setattr(energy, "_CHUNK", chunk)
    f = random_local(4, hidden=16, scale=0.8)
    gen = torch.Generator().manual_seed(5)
    u = 3 * torch.randn(2, 50, dtype=torch.float64, generator=gen)
    lam = torch.randn(2, 50, dtype=torch.float64, generator=gen)

    ours = f.derivative(u)
    grads = torch.autograd.grad((lam * ours).sum(), list(f.parameters()))

    uu = u.clone().requires_grad_()
    (ref,) = torch.autograd.grad(f(uu).sum(), uu, create_graph=True)
    ref_grads = torch.autograd.grad((lam * ref).sum(), list(f.parameters()))
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(7,), (8,), (40,), (5, 7), (6, 8), (20, 12), (17, 40)])
def test_nonlocal_features_equal_the_fft_modes_and_adjoint_is_the_transpose(shape):
    torch.manual_seed(0)
    grid = SpecOnsNet(shape=shape, length=(2 * math.pi,) * len(shape), dt=1e-3).grid
    nl = energy.NonlocalEnergy(grid=grid, n_modes=16).double()
    u = torch.randn(3, *shape, dtype=torch.float64)
    # The definition: real and imaginary parts of u_hat(k) / N on the lowest modes (2-D: ky in
    # -m/2 .. m/2-1 with m = min(16, ny), kx in 0 .. 15), clipped to the half spectrum.
    u_hat = np.fft.fftn(u.numpy(), axes=tuple(range(1, len(shape) + 1))) / grid.n_points
    nx_half = shape[-1] // 2 + 1
    cols = np.arange(min(16, nx_half))
    if len(shape) == 1:
        modes = u_hat[:, cols]
    else:
        m = min(16, shape[0])
        rows = np.concatenate([np.arange((m + 1) // 2), np.arange(shape[0] - m // 2, shape[0])])
        modes = u_hat[:, rows][:, :, cols].reshape(3, -1)
    expected = np.concatenate([modes.real, modes.imag], axis=1)
    c = nl.features(u)
    assert np.allclose(c.numpy(), expected, rtol=0, atol=1e-14)
    g = torch.randn_like(c)
    # <P u, g> = <u, P^T g> (Euclidean)
    lhs = (c * g).sum(dim=1)
    rhs = (u * nl.adjoint(g)).sum(dim=tuple(range(1, len(shape) + 1)))
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("mode", ["consistent", "paper"])
@pytest.mark.parametrize("shape", [(12,), (6, 8)])
def test_nonlocal_gradient_function_passes_gradcheck(shape, mode, compiled, monkeypatch):
    """``V_nl``'s gradient is one Function with a hand-written reverse pass: its derivatives in the field and in
    every weight against finite differences (float64), and it refuses a second derivative; on both paths (the
    compiled CPU kernels and the ATen operators other devices run)."""
    if not compiled:
        monkeypatch.setattr(energy, "_compiled_nonlocal", lambda *args: False)
    torch.manual_seed(2)
    grid = SpecOnsNet(shape=shape, length=(2 * math.pi,) * len(shape), dt=1e-3).grid
    nl = energy.NonlocalEnergy(grid=grid, n_modes=3, hidden=6, n_out=5, gradient=mode).double()
    weights = tuple(t.detach().clone().requires_grad_() for t in (nl.lin1.weight, nl.lin1.bias, nl.lin2.weight,
                                                                  nl.lin2.bias, nl.lin3.weight, nl.lin3.bias, nl.v))
    u = torch.randn(2, *shape, dtype=torch.float64, requires_grad=True)
    scale = nl._weight(u) if mode == "paper" else 1.0 / grid.cell_volume
    apply = lambda x, *w: energy._NonlocalGradient.apply(x, *w, nl, scale)  # noqa: E731
    assert torch.autograd.gradcheck(apply, (u,) + weights)
    (g,) = torch.autograd.grad(apply(u, *weights).sum(), u, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), weights[0])


@pytest.mark.parametrize("shape", [(16,), (6, 8)])
def test_training_gradients_equal_the_authors_double_backward(shape, monkeypatch):
    """One Euler step's loss gradient, every parameter, against ``mu`` from autograd with create_graph=True."""
    monkeypatch.setattr(energy, "_CHUNK", 13)
    torch.manual_seed(1)
    model = SpecOnsNet(shape=shape, length=(2 * math.pi,) * len(shape), dt=1e-2, hidden=8,
                       nonlocal_modes=4).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    u = torch.randn(4, *shape, dtype=torch.float64)
    target = torch.randn_like(u)

    ours = ((model.step(u) - target) ** 2).mean()
    grads = torch.autograd.grad(ours, list(model.parameters()))

    uu = u.clone().requires_grad_()
    (mu,) = torch.autograd.grad(model.energy(uu)["total"].sum(), uu, create_graph=True)
    ref_step = uu - model.dt * model.operators.apply(mu / model.grid.cell_volume)
    ref = ((ref_step - target) ** 2).mean()
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    assert torch.allclose(ours, ref, rtol=1e-12)
    for (name, _), g, r in zip(model.named_parameters(), grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-8, atol=1e-12 * (1 + r.abs().max())), name


def test_energy_without_a_graph_is_chunked_and_equal(monkeypatch):
    """``F(u)`` under ``no_grad`` goes in chunks (no large activations); the values are those of the graph path."""
    f = random_local(4, hidden=8)
    u = torch.randn(3, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with_graph = f(u)
    assert with_graph.requires_grad
    monkeypatch.setattr(energy, "_ENERGY_CHUNK", 7)
    with torch.no_grad():
        chunked = f(u)
    scale = float(with_graph.detach().abs().max())
    assert torch.allclose(chunked, with_graph.detach(), rtol=0, atol=1e-13 * scale)


@pytest.mark.parametrize("tangent", [True, False])
@pytest.mark.parametrize("keep", [4096, 5])
def test_node_kernels_equal_autograd_in_values_and_weight_gradients(tangent, keep, monkeypatch):
    """The compiled float64 kernels a table's nodes read (:mod:`mesodyn.onsager._nodes64`): ``F'`` and ``F`` and
    their weight gradients equal the ATen path, with intermediates kept and (``keep=5``: chunks of 5 points)
    recomputed by the backward; float32 weights get float32 gradients."""
    import mesodyn.onsager._nodes64 as nodes64
    monkeypatch.setattr(nodes64, "_KEEP_POINTS", keep)
    f = random_local(5, hidden=6, scale=0.8)
    x = torch.linspace(-2.0, 3.0, 23, dtype=torch.float64)
    lam = torch.randn(23, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    reference = [p.detach().clone().requires_grad_() for p in weights(f)]
    exact = energy._LocalDerivative.apply(x, *reference) if tangent else energy._density(x, *reference)
    expected = torch.autograd.grad(exact, reference, lam)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        params = [p.detach().to(dtype).requires_grad_() for p in weights(f)]
        kernel = nodes64.on_nodes(tuple(params), tangent)
        values = kernel(x)
        cast = [p.double() for p in params]  # the float32 weights, exactly, in float64
        exact = energy._LocalDerivative.apply(x, *cast) if tangent else energy._density(x, *cast)
        assert values.dtype == torch.float64
        assert torch.allclose(values, exact, rtol=0, atol=1e-13 * float(exact.detach().abs().max()))
        grads = torch.autograd.grad(values, params, lam)
        for got, want in zip(grads, expected):
            assert got.dtype == dtype and got.shape == want.shape
            assert torch.allclose(got.double(), want, rtol=0, atol=tol * float(want.abs().max()))


def test_node_kernels_refuse_a_gradient_in_the_points():
    import mesodyn.onsager._nodes64 as nodes64
    f = random_local(2)
    x = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="weights only"):
        nodes64.on_nodes(tuple(weights(f)), True)(x).sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nonlocal_gradient_paths_agree(dtype, monkeypatch):
    """The compiled CPU kernels of ``V_nl``'s gradient and the ATen path: the same values and gradients, to
    round-off of the dtype (float32: 1e-5 of the largest entry; float64: 1e-12)."""
    torch.manual_seed(3)
    grid = SpecOnsNet(shape=(32,), length=(2 * math.pi,), dt=1e-3).grid
    nl = energy.NonlocalEnergy(grid=grid, n_modes=6, hidden=16, n_out=8).to(dtype)
    with torch.no_grad():
        for p in nl.parameters():
            p.add_(0.5 * torch.randn_like(p))
    u = torch.randn(5, 32, dtype=dtype)
    cot = torch.randn(5, 32, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    results = []
    for compiled in (True, False):
        monkeypatch.setattr(energy, "_compiled_nonlocal", lambda *args, on=compiled: on)
        x = u.clone().requires_grad_()
        value = nl.gradient(x)
        grads = torch.autograd.grad(value, [x, *nl.parameters()], cot)
        results.append((value.detach(), *grads))
    for got, want in zip(*results):
        assert got.dtype == dtype
        assert torch.allclose(got, want, rtol=0, atol=tol * float(want.abs().max()))


def test_vectorizable_exp_sin_cos_are_accurate_to_a_few_ulps():
    """The float64 ``exp``, ``sin``, ``cos`` of the compiled kernels (``onsager._vmath``, straight-line code the
    compiler vectorizes) against NumPy: ``exp`` on [-708, 708] within 4e-16 relative, ``sin`` and ``cos`` within
    4e-16 absolute for ``|x| <= TRIG_LIMIT`` (their documented range), ``exp`` clamped beyond 708."""
    from numba import njit

    from mesodyn.onsager import _vmath

    @njit
    def apply(x, which):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = _vmath.exp(x[i]) if which == 0 else (_vmath.sin(x[i]) if which == 1 else _vmath.cos(x[i]))
        return out

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-708, 708, 200_000), rng.uniform(-1, 1, 50_000), [0.0, -708.0, 708.0]])
    assert np.max(np.abs(apply(x, 0) - np.exp(x)) / np.exp(x)) <= 4e-16
    assert np.allclose(apply(np.array([-1000.0, 1000.0]), 0), np.exp([-708.0, 708.0]), rtol=4e-16, atol=0)
    for scale in (1.0, 50.0, 1e4, _vmath.TRIG_LIMIT):
        t = np.concatenate([rng.uniform(-scale, scale, 200_000), np.arange(-8, 9) * np.pi / 4])
        assert np.max(np.abs(apply(t, 1) - np.sin(t))) <= 4e-16, scale
        assert np.max(np.abs(apply(t, 2) - np.cos(t))) <= 4e-16, scale


@pytest.mark.parametrize("tangent", [True, False])
def test_node_kernels_fall_back_to_numpy_trig_beyond_the_fast_range(tangent):
    """Weights that put ``|z3|`` beyond ``TRIG_LIMIT`` (where the vectorizable sine and cosine lose accuracy) take
    NumPy's functions: values and gradients still equal the ATen path."""
    import mesodyn.onsager._nodes64 as nodes64
    from mesodyn.onsager import _vmath

    f = random_local(6, hidden=5)
    with torch.no_grad():
        f.lin3.bias.fill_(3.0 * _vmath.TRIG_LIMIT)
    x = torch.linspace(-1.0, 1.0, 9, dtype=torch.float64)
    lam = torch.linspace(0.5, 1.5, 9, dtype=torch.float64)
    params = [p.detach().clone().requires_grad_() for p in weights(f)]
    values = nodes64.on_nodes(tuple(params), tangent)(x)
    reference = [p.detach().clone().requires_grad_() for p in weights(f)]
    exact = energy._LocalDerivative.apply(x, *reference) if tangent else energy._density(x, *reference)
    assert torch.allclose(values, exact.detach(), rtol=0, atol=1e-12 * float(exact.detach().abs().max()))
    for got, want in zip(torch.autograd.grad(values, params, lam), torch.autograd.grad(exact, reference, lam)):
        assert torch.allclose(got, want, rtol=0, atol=1e-12 * float(want.abs().max()))


def test_nonlocal_kernels_fall_back_to_numpy_trig_beyond_the_fast_range(monkeypatch):
    """The same for ``V_nl``'s gradient: ``|z3|`` beyond ``TRIG_LIMIT`` gives the ATen path's values and gradients."""
    from mesodyn.onsager import _vmath

    grid = SpecOnsNet(shape=(16,), length=(2 * math.pi,), dt=1e-3).grid
    nl = energy.NonlocalEnergy(grid=grid, n_modes=4, hidden=6, n_out=5).double()
    with torch.no_grad():
        nl.lin3.bias.fill_(3.0 * _vmath.TRIG_LIMIT)
    u = torch.randn(3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    cot = torch.randn(3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    results = []
    for compiled in (True, False):
        monkeypatch.setattr(energy, "_compiled_nonlocal", lambda *args, on=compiled: on)
        x = u.clone().requires_grad_()
        value = nl.gradient(x)
        results.append((value.detach(), *torch.autograd.grad(value, [x, *nl.parameters()], cot)))
    for got, want in zip(*results):
        assert torch.allclose(got, want, rtol=0, atol=1e-12 * float(want.abs().max()))


@pytest.mark.parametrize("tangent", [True, False])
def test_large_node_sets_take_the_aten_path_with_the_same_values(tangent, monkeypatch):
    """``PointwiseMLP._on_nodes`` hands more than ``COMPILED_POINTS`` points to the ATen path (faster there): the same
    values and weight gradients as the compiled kernels, to float64 round-off."""
    f = random_local(7, hidden=6)
    x = torch.linspace(-2.0, 2.0, 23, dtype=torch.float64)
    lam = torch.linspace(-1.0, 1.0, 23, dtype=torch.float64)
    results = []
    for limit in (1024, 5):
        monkeypatch.setattr(energy, "COMPILED_POINTS", limit)
        values = f._on_nodes(tangent=tangent)(x)
        results.append((values.detach(), *torch.autograd.grad(values, list(f.parameters()), lam)))
    for compiled, aten in zip(*results):
        assert torch.allclose(compiled, aten, rtol=0, atol=1e-13 * float(aten.abs().max()))


def test_kernels_run_scipy_blas_on_one_thread_and_give_the_count_back(monkeypatch):
    """The kernels' ``np.dot`` goes to SciPy's OpenBLAS (all cores unless told): inside a kernel call it runs on one
    thread, and the caller's count is back afterwards, also when the kernel raises."""
    import glob
    import os

    import scipy

    import mesodyn.onsager._blas as blas
    import mesodyn.onsager._nodes64 as nodes64
    site = os.path.dirname(os.path.dirname(scipy.__file__))
    if not any(glob.glob(os.path.join(site, p)) for p in blas._PATTERNS):
        pytest.skip("SciPy here has no bundled OpenBLAS (a conda or system SciPy): nothing to control")
    assert blas.blas_threads() is not None
    previous = blas.blas_threads()
    seen = []
    real_forward, real_backward = nodes64._forward, nodes64._backward
    monkeypatch.setattr(nodes64, "_forward", lambda *a: (seen.append(blas.blas_threads()), real_forward(*a))[1])
    monkeypatch.setattr(nodes64, "_backward", lambda *a: (seen.append(blas.blas_threads()), real_backward(*a))[1])
    try:
        blas._CONTROL[1](3)
        f = random_local(4)
        params = [p.detach().clone().requires_grad_() for p in weights(f)]
        nodes64.on_nodes(tuple(params), True)(torch.linspace(-1.0, 1.0, 9, dtype=torch.float64)).sum().backward()
        assert seen == [1, 1] and blas.blas_threads() == 3
        with pytest.raises(ZeroDivisionError), blas.one_thread():
            assert blas.blas_threads() == 1
            raise ZeroDivisionError
        assert blas.blas_threads() == 3
    finally:
        blas._CONTROL[1](previous)
