r"""The classical row of the comparison: the true PDE in Onsager form, stepped with SBDF1 (nothing learned).

Every equation is written as ``u_t = -K mu``, ``mu = dV/du = L u + N(u)`` with a Fourier multiplier ``K``, the
linear symbol ``L(k) = a + b |k|^2`` and a pointwise ``N``. One step of size ``dt`` treats ``L`` implicitly and
``N`` explicitly (SBDF1, i.e. IMEX Euler), on the grid of the data, without dealiasing (the classical model of
arXiv 2605.16211 and of the authors' public code MLDS-NUS/Meso-SpecOnsNet)::

    u+_hat = (u_hat - dt K N_hat(u)) / (1 + dt K L).

* Allen–Cahn ``u_t = Lap u + (u - u^3)/eps^2`` (1-D or 2-D): ``K = 1``, ``L = |k|^2``, ``N = (u^3 - u)/eps^2``.
* Cahn–Hilliard ``u_t = Lap (u^3 - u - kappa Lap u)`` (a user data set that declares it): ``K = |k|^2`` (the
  conserved mobility), ``L = kappa |k|^2``, ``N = u^3 - u``.
* Generalised KdV ``u_t + c u^p u_x + d u_xxx = 0`` (1-D): ``u_t = d/dx mu`` with
  ``mu = -d u_xx - c u^{p+1}/(p+1)``, so ``K = -ik``, ``L = d k^2``, ``N = -c u^{p+1}/(p+1)``. KdV (c = 6,
  p = 1, d = 1) gives ``u+_hat = (u_hat - 3 i k dt FFT(u^2)) / (1 - i dt k^3)``. The chains use their
  leading-order long-wave limits (FPUT: KdV, FENE: modified KdV), whose coefficients the data set's config fills
  in (:class:`mesodyn.models.configs.ClassicalConfig`).

Nyquist mode of the odd symbol ``K = -ik`` (even grids). On the grid the Nyquist mode is its own negative, so
a real antisymmetric multiplier (the ``W`` of the Onsager form) must vanish there, exactly as the learned ``W``
of :class:`mesodyn.onsager.operators.FourierOperators` does. We therefore set ``k = 0`` in ``K`` at the Nyquist
mode: that mode is left unchanged by the step. The authors' code keeps ``+k_N`` there (``rfftfreq``); the
result is then not Hermitian-consistent and ``irfft`` silently drops the imaginary part, which turns the
Nyquist mode into ``Re[(u_hat - dt K N_hat) / (1 + dt K L)]``: a damped copy mixed with the nonlinear forcing.
The two choices differ only in the Nyquist coefficient. On the authors' KdV data (whose initial fields are not
exactly periodic and so carry some Nyquist content) the step-1 outputs differ by at most 4e-4 of the field's
RMS, and the mean step-1 error of the classical row is 1.156e-2 either way. The even symbol ``L`` keeps
``k_N^2``.

The model has no parameters and no saved state: it is written by :func:`mesodyn.training.fit` without training, and
its ``state_dict`` is empty. It computes in the dtype of its input (evaluation uses float32, the paper's choice);
the wavenumbers are formed in float64 and rounded once to that dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mesodyn.models.base import Model
from mesodyn.models.configs import ClassicalConfig

__all__ = ["Classical", "ClassicalConfig"]


class Classical(Model):
    """The true PDE (chains: its long-wave limit) stepped with SBDF1; nothing is trained.

    Construct with the keyword arguments of :class:`mesodyn.models.configs.ClassicalConfig` (usually from
    :func:`mesodyn.models.config_for_data`, which fills ``pde`` and its coefficients from the data set).
    Fields are tensors ``(batch, *shape)``.
    """

    config_class = ClassicalConfig
    trainable = False

    def __init__(self, **options: Any):
        super().__init__(**options)
        cfg = self.cfg
        self._dims = tuple(range(-cfg.ndim, 0))
        # Wavenumbers of the rfft half spectrum, in float64; every axis but the last is a full fftfreq axis.
        axes = [2 * np.pi / length * np.fft.fftfreq(n, d=1.0 / n) for n, length in zip(cfg.shape, cfg.length)]
        nx = cfg.shape[-1]
        axes[-1] = axes[-1][: nx // 2 + 1].copy()
        axes[-1][-1] = abs(axes[-1][-1])  # rfft's last column is +k for odd and even sizes alike
        mesh = np.meshgrid(*axes, indexing="ij")
        self._k2 = sum(k**2 for k in mesh)
        k_odd = axes[-1].copy()
        if nx % 2 == 0:
            k_odd[-1] = 0.0  # an odd real multiplier vanishes on the self-conjugate Nyquist mode
        self._k_odd = k_odd
        # Per (dtype, device): the symbols rounded once; nothing here is a parameter or saved state.
        self._symbols: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def pde(self) -> str:
        return self.cfg.pde

    def _symbols_for(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (u.dtype, u.device)
        if key not in self._symbols:
            k2 = torch.as_tensor(self._k2, dtype=u.dtype, device=u.device)
            k_odd = torch.as_tensor(self._k_odd, dtype=u.dtype, device=u.device)
            self._symbols[key] = (k2, k_odd)
        return self._symbols[key]

    def nonlinear(self, u: torch.Tensor) -> torch.Tensor:
        """The explicit part ``N(u)`` of ``mu`` on the grid."""
        cfg = self.cfg
        if cfg.pde == "allen_cahn":
            return (u * u * u - u) * (1.0 / cfg.epsilon**2)
        if cfg.pde == "cahn_hilliard":
            return u * u * u - u
        up1 = u * u if cfg.power == 1 else u ** (cfg.power + 1)
        return up1 * (-float(cfg.nonlinear) / (cfg.power + 1))

    def step(self, u: torch.Tensor, dt: float | None = None) -> torch.Tensor:
        """One SBDF1 step of size ``dt`` (default :attr:`dt`), in the dtype of ``u``."""
        self.check_input(u)
        if not u.is_floating_point():
            raise ValueError(f"u must be a real floating-point tensor, got dtype {u.dtype}.")
        dt = self.dt if dt is None else float(dt)
        cfg = self.cfg
        k2, k_odd = self._symbols_for(u)
        u_hat = torch.fft.rfftn(u, dim=self._dims)
        n_hat = torch.fft.rfftn(self.nonlinear(u), dim=self._dims)
        if cfg.pde == "allen_cahn":
            # K = 1: a real, positive denominator.
            new_hat = (u_hat - dt * n_hat) / (1.0 + dt * k2)
        elif cfg.pde == "cahn_hilliard":
            # K = |k|^2, L = kappa |k|^2: real and positive.
            new_hat = (u_hat - dt * k2 * n_hat) / (1.0 + dt * float(cfg.kappa) * k2 * k2)
        else:
            # K = -ik and L = d k^2; dt K is formed once in the input's complex dtype.
            dt_k = torch.complex(torch.zeros_like(k_odd), -dt * k_odd)
            new_hat = (u_hat - dt_k * n_hat) / (1.0 + dt_k * (float(cfg.dispersion) * k2))
        return torch.fft.irfftn(new_hat, s=cfg.shape, dim=self._dims)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The vector field ``du/dt = -K (L u + N(u))`` of the equation (spectral derivatives)."""
        self.check_input(u)
        cfg = self.cfg
        k2, k_odd = self._symbols_for(u)
        coefficient = {"allen_cahn": 1.0, "cahn_hilliard": float(cfg.kappa)}.get(cfg.pde, float(cfg.dispersion))
        mu_hat = torch.fft.rfftn(u, dim=self._dims) * (coefficient * k2)
        mu_hat = mu_hat + torch.fft.rfftn(self.nonlinear(u), dim=self._dims)
        if cfg.pde == "gkdv":
            mu_hat = mu_hat * torch.complex(torch.zeros_like(k_odd), k_odd)  # -K = ik
        elif cfg.pde == "cahn_hilliard":
            mu_hat = -k2 * mu_hat
        else:
            mu_hat = -mu_hat
        return torch.fft.irfftn(mu_hat, s=cfg.shape, dim=self._dims)
