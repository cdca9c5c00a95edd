"""The exponential steppers: ``"exponential"`` (exponential Euler) and ``"etdrk2"`` (ETD2RK), both exact for the
linear part, of first and second order, differentiable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mesodyn.onsager import SpecOnsNet

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def member(shape, seed, *, linear_only=False, operators="both", stepper="exponential"):
    torch.manual_seed(seed)
    length = tuple(2 * np.pi * (1 + 0.5 * i) for i in range(len(shape)))
    model = SpecOnsNet(shape=shape, length=length, dt=1e-2, operators=operators, hidden=8, nonlocal_modes=3,
                       stepper=stepper).double()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        if linear_only:  # F and V_nl constant: grad G = 0, the dynamics are linear
            for name, p in model.named_parameters():
                if "free_energy" in name and not name.split(".")[-1].startswith(("raw_a", "raw_b", "a_", "b_")):
                    p.zero_()
    return model


def field(shape, seed, batch=3):
    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)


@pytest.mark.parametrize("stepper", ["exponential", "etdrk2"])
@pytest.mark.parametrize("shape", [(32,), (8, 12)])
def test_linear_part_is_integrated_exactly(shape, stepper):
    """With grad G = 0 the step is the exact flow exp(-dt (M + W) A): steps compose (a semigroup) at any dt, even
    where dt |s A| is far beyond explicit Euler's stability."""
    model = member(shape, 0, linear_only=True, stepper=stepper)
    with torch.no_grad():
        g = model.free_energy.nonlinear_gradient(field(shape, 0))
    assert float(g.abs().max()) == 0.0
    u = field(shape, 1)
    with torch.no_grad():
        for dt in (1e-3, 1.0, 50.0):
            once = model.step(u, dt=dt)
            twice = model.step(model.step(u, dt=dt / 2), dt=dt / 2)
            torch.testing.assert_close(once, twice, rtol=0, atol=1e-12)
        assert torch.isfinite(model.step(u, dt=1e4)).all()


@pytest.mark.parametrize("stepper, order", [("exponential", 1), ("etdrk2", 2)])
def test_order_on_a_random_member(stepper, order):
    """Against a reference of 2048 ETD2RK steps (its error, about 1e-11 here, far below those measured; the AVF
    step's quadrature and solver tolerance floor near 1e-7 would hide the second order)."""
    model = member((32,), 3, stepper=stepper)
    u = field((32,), 3)
    with torch.no_grad():
        ref = u.clone()
        for _ in range(2048):
            ref = model.step(ref, dt=0.05 / 2048, stepper="etdrk2")
        errors = []
        for n in (8, 16, 32):
            v = u.clone()
            for _ in range(n):
                v = model.step(v, dt=0.05 / n)
            errors.append(float((v - ref).abs().max()))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > order - 0.15) & (orders < order + 0.2)), (errors, orders)


@pytest.mark.parametrize("stepper", ["exponential", "etdrk2"])
def test_gradients_flow_through_the_step(stepper):
    model = member((16,), 4, stepper=stepper)
    u = field((16,), 4)
    loss = model.step(u).pow(2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
