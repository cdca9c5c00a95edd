"""Translation-invariant Onsager operators on periodic grids: the mobility M and the antisymmetric W.

Both are Fourier multipliers. On the full grid of integer frequencies, every mode ``k`` is paired with
``-k`` (indices taken modulo the grid size along each axis). One learned parameter belongs to each pair:

* ``M`` has the symbol ``m(k) = theta[pair(k)]**2``: real, even (``m(-k) = m(k)``) and non-negative, so
  the assembled real matrix is symmetric positive semi-definite in the grid inner product.
* ``W`` has the symbol ``i * phi(k)`` with ``phi(k) = sign(k) * psi[pair(k)]``, where ``sign`` is ``+1``
  on the representative of a pair, ``-1`` on its partner and ``0`` on self-conjugate modes (``k = 0`` and
  the Nyquist modes, where ``k`` and ``-k`` coincide). Hence ``phi`` is odd and ``W`` is a real
  antisymmetric matrix.

The symbols are built on the full grid first and only then restricted to the half spectrum used by
``rfftn``; they are Hermitian-consistent by construction, so nothing relies on ``irfftn`` silently
discarding an inconsistent imaginary part.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mesodyn.models.configs import W_SYMBOLS  # the one list, shared with the configs

__all__ = ["SpectralGrid", "mode_pairs", "FourierOperators", "grid_and_operators"]


def mode_pairs(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Pair every mode of the full frequency grid with its negative.

    Parameters
    ----------
    shape
        Grid size along each axis.

    Returns
    -------
    pair
        Integer array of ``shape``: the index of the pair ``{k, -k}`` each mode belongs to.
    sign
        Float array of ``shape``: ``+1`` on the representative of a pair, ``-1`` on its partner and ``0``
        on self-conjugate modes.
    n_pairs
        Number of pairs (the number of learned parameters of one symbol).
    """
    shape = tuple(int(n) for n in shape)
    pair = np.full(shape, -1, dtype=np.int64)
    sign = np.zeros(shape, dtype=np.float64)
    n_pairs = 0
    for idx in itertools.product(*(range(n) for n in shape)):
        if pair[idx] >= 0:
            continue
        partner = tuple((-i) % n for i, n in zip(idx, shape))
        pair[idx] = n_pairs
        pair[partner] = n_pairs
        if partner != idx:
            sign[idx] = 1.0
            sign[partner] = -1.0
        n_pairs += 1
    return pair, sign, n_pairs


class SpectralGrid(nn.Module):
    """Wavenumbers of a periodic grid, taken from its size and physical length.

    Parameters
    ----------
    shape
        ``(n,)`` in 1-D or ``(ny, nx)`` in 2-D.
    length
        Domain length along each axis (same order as ``shape``).

    Notes
    -----
    The grid inner product is ``<f, g> = cell_volume * sum(f * g)``, i.e. the mean over cells times the
    domain volume, the midpoint rule for the integral over the periodic domain.
    """

    def __init__(self, *, shape: Sequence[int], length: Sequence[float]):
        super().__init__()
        self.shape = tuple(int(n) for n in shape)
        self.length = tuple(float(L) for L in length)
        if len(self.shape) not in (1, 2):
            raise ValueError(f"shape must have 1 or 2 entries, got {self.shape}.")
        if len(self.length) != len(self.shape):
            raise ValueError(f"length must have as many entries as shape ({len(self.shape)}), got {self.length}.")
        if any(n < 2 for n in self.shape):
            raise ValueError(f"shape must have at least 2 points along every axis, got {self.shape}.")
        if any(not (L > 0 and math.isfinite(L)) for L in self.length):
            raise ValueError(f"length must be positive and finite, got {self.length}.")
        self.ndim = len(self.shape)
        self.n_points = int(np.prod(self.shape))
        self.volume = float(np.prod(self.length))
        self.cell_volume = self.volume / self.n_points
        self.dims = tuple(range(-self.ndim, 0))
        # Wavenumbers of the full grid, broadcast to the grid shape, then restricted to the rfft half.
        axes = [2 * np.pi / L * np.fft.fftfreq(n, d=1.0 / n) for n, L in zip(self.shape, self.length)]
        mesh = np.meshgrid(*axes, indexing="ij")
        k2 = sum(k**2 for k in mesh)
        half = self.half_slice
        self.register_buffer("k2_half", torch.as_tensor(k2[half], dtype=torch.get_default_dtype()), persistent=False)
        self.register_buffer("k_half", torch.as_tensor(np.stack([k[half] for k in mesh]), dtype=torch.get_default_dtype()), persistent=False)
        # Parseval weights on the half spectrum: interior columns of the last axis stand for two modes.
        nx = self.shape[-1]
        weight = np.full(nx // 2 + 1, 2.0)
        weight[0] = 1.0
        if nx % 2 == 0:
            weight[-1] = 1.0
        self.register_buffer("parseval_half", torch.as_tensor(np.broadcast_to(weight, k2[half].shape).copy(),
                                                              dtype=torch.get_default_dtype()),
                             persistent=False)

    @property
    def half_slice(self) -> tuple[slice, ...]:
        return (slice(None),) * (self.ndim - 1) + (slice(0, self.shape[-1] // 2 + 1),)

    def full_wavenumbers(self) -> np.ndarray:
        """Wavenumber vectors of the full grid, shape ``(ndim, *shape)``."""
        axes = [2 * np.pi / L * np.fft.fftfreq(n, d=1.0 / n) for n, L in zip(self.shape, self.length)]
        return np.stack(np.meshgrid(*axes, indexing="ij"))

    def rfft(self, u: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfftn(u, dim=self.dims)

    def irfft(self, u_hat: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfftn(u_hat, s=self.shape, dim=self.dims)

    def inner(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Grid inner product per batch member: ``cell_volume * sum(f * g)`` over the spatial axes."""
        return (f * g).sum(dim=self.dims) * self.cell_volume

    def integral(self, f: torch.Tensor) -> torch.Tensor:
        return f.sum(dim=self.dims) * self.cell_volume

    def quadratic_form(self, u_hat: torch.Tensor, symbol: torch.Tensor) -> torch.Tensor:
        """``<u, S u>`` for the real even multiplier ``S`` from the half spectrum ``u_hat`` (Parseval)."""
        power = (u_hat.real**2 + u_hat.imag**2) * (symbol * self.parseval_half)
        return power.sum(dim=self.dims) * (self.cell_volume / self.n_points)


class FourierOperators(nn.Module):
    """The learned mobility ``M`` (real even non-negative symbol) and antisymmetric ``W`` (odd, imaginary).

    Parameters
    ----------
    grid
        The spectral grid.
    operators
        ``"both"``, ``"M"`` (dissipative only) or ``"W"`` (conservative only).
    conserved
        If true, ``m(0) = 0`` so that ``M`` conserves the mean of the field.
    init_m
        Initial value of ``m(k)`` (``theta = sqrt(init_m)``), or per pair of modes an array of ``n_pairs``
        values (see :meth:`SpecOnsNet` option ``init_m_cap``).
    mobility_above
        If given, ``m(k) = 0`` on every mode with ``|k| <= mobility_above``: ``M`` acts on the modes above only.
    w_symbol
        ``"free"`` (default): one value of ``phi`` per pair of modes. ``"first_order"``: ``W = c . grad``, the
        symbol ``phi(k) = c . k`` with one coefficient per axis (a local first-order operator, e.g. KdV's
        ``-d/dx``), the Nyquist component of an even axis taken as 0 (as in a spectral first derivative).
    """

    def __init__(self, *, grid: SpectralGrid, operators: str = "both", conserved: bool = False,
                 init_m: float | np.ndarray = 1.0, mobility_above: float | None = None, w_symbol: str = "free"):
        super().__init__()
        if operators not in ("both", "M", "W"):
            raise ValueError(f"operators must be 'both', 'M' or 'W', got {operators!r}.")
        if w_symbol not in W_SYMBOLS:
            raise ValueError(f"w_symbol must be one of {', '.join(W_SYMBOLS)}, got {w_symbol!r}.")
        self.w_symbol = w_symbol
        self.grid = grid
        self.operators = operators
        self.conserved = bool(conserved)
        pair, sign, n_pairs = mode_pairs(grid.shape)
        half = grid.half_slice
        self.n_pairs = n_pairs
        self.register_buffer("pair_full", torch.as_tensor(pair), persistent=False)
        self.register_buffer("sign_full", torch.as_tensor(sign, dtype=torch.get_default_dtype()), persistent=False)
        self.register_buffer("pair_half", torch.as_tensor(np.ascontiguousarray(pair[half])), persistent=False)
        self.register_buffer("sign_half", torch.as_tensor(np.ascontiguousarray(sign[half]), dtype=torch.get_default_dtype()), persistent=False)
        mask = np.ones(n_pairs)
        if self.conserved:
            mask[pair[(0,) * grid.ndim]] = 0.0
        self.mobility_above = None if mobility_above is None else float(mobility_above)
        if self.mobility_above is not None:
            mask[self.pair_k2() <= self.mobility_above ** 2 * (1 + 1e-12)] = 0.0
        self.register_buffer("m_mask", torch.as_tensor(mask, dtype=torch.get_default_dtype()), persistent=False)
        theta0 = torch.sqrt(torch.as_tensor(np.broadcast_to(np.asarray(init_m, dtype=float), (n_pairs,)).copy(),
                                            dtype=torch.get_default_dtype()))
        self.theta = nn.Parameter(theta0) if operators in ("both", "M") else None
        with_w = operators in ("both", "W")
        self.psi = nn.Parameter(torch.zeros(n_pairs)) if with_w and w_symbol == "free" else None
        self.w_coef = nn.Parameter(torch.zeros(grid.ndim)) if with_w and w_symbol == "first_order" else None
        if self.w_coef is not None:
            # The wavenumbers of an odd derivative: the Nyquist component of an even axis is its own negative on the
            # grid, so it is set to 0 there (as a spectral first derivative does); c . k is then odd on the grid.
            k_odd = grid.full_wavenumbers()
            for axis, n in enumerate(grid.shape):
                if n % 2 == 0:
                    k_odd[(axis,) + (slice(None),) * axis + (n // 2,)] = 0.0
            self.register_buffer("k_odd_full", torch.as_tensor(k_odd, dtype=torch.get_default_dtype()),
                                 persistent=False)
            self.register_buffer("k_odd_half", torch.as_tensor(np.ascontiguousarray(k_odd[(slice(None),) + half]),
                                                               dtype=torch.get_default_dtype()), persistent=False)

    @property
    def has_m(self) -> bool:
        return self.theta is not None

    @property
    def has_w(self) -> bool:
        return self.psi is not None or self.w_coef is not None

    @torch.no_grad()
    def cap_mobility_(self, *, dt: float, init_m: float, cap: float, a: float, b: float) -> None:
        """The explicit-Euler-stable start: ``m(k) = min(init_m, cap / (dt (a + b |k|^2)))``, so that one explicit
        Euler step through the quadratic part ``a + b |k|^2`` of ``V`` changes no mode by more than the fraction
        ``cap``; a mode without stiffness (``a + b |k|^2 = 0``) keeps ``init_m``. No-op without ``M``."""
        if self.theta is None:
            return
        stiffness = dt * (a + b * self.pair_k2())
        bound = np.divide(cap, stiffness, out=np.full_like(stiffness, np.inf), where=stiffness > 0)
        m0 = np.minimum(init_m, bound)
        self.theta.copy_(torch.as_tensor(np.sqrt(m0), dtype=self.theta.dtype))

    @torch.no_grad()
    def paper_init_(self, *, generator: torch.Generator | None = None) -> None:
        """Redraw ``theta`` and ``psi`` as the authors do (arXiv 2605.16211, code MLDS-NUS/Meso-SpecOnsNet).

        ``theta ~ N(0, 0.1^2)`` (so ``m = theta^2``) and then ``psi ~ N(0, 0.01^2)``, one value per pair of
        modes, drawn from ``generator`` (default: torch's global generator, i.e. the caller's seed).

        Draw order: ``n_pairs`` standard normals for ``theta`` first, then ``n_pairs`` for ``psi``, both as
        ``torch.randn(n_pairs) * scale`` in the parameters' dtype. Both are always drawn, also when
        ``operators`` is ``"M"`` or ``"W"`` (the unused draw is discarded), so that the ``psi`` of a given
        seed does not depend on ``operators``, as in the authors' code, which always creates both.

        In 1-D the pairs are the rfft bins ``k = 0 .. n/2`` in order, the authors' layout. In 2-D the authors
        hold one value per rfft bin (``ny (nx/2 + 1)``, the bins ``(ky, 0)`` and ``(-ky, 0)`` being separate);
        here there is one per pair ``{k, -k}``, so the same distribution over fewer draws.
        """
        like = next(p for p in (self.theta, self.psi, self.w_coef) if p is not None)
        options = {"dtype": like.dtype, "device": like.device, "generator": generator}
        theta = torch.randn(self.n_pairs, **options) * 0.1
        psi = torch.randn(self.n_pairs, **options) * 0.01
        if self.theta is not None:
            self.theta.copy_(theta)
        if self.psi is not None:
            self.psi.copy_(psi)

    def pair_k2(self) -> np.ndarray:
        """``|k|²`` of each pair of modes ``{k, -k}``."""
        out = np.zeros(self.n_pairs)
        out[self.pair_half.cpu().numpy().ravel()] = self.grid.k2_half.cpu().numpy().ravel()
        return out

    def m_pairs(self) -> torch.Tensor:
        return self.theta**2 * self.m_mask.to(self.theta.dtype)

    def symbols(self, *, full: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(m, phi)``: the real symbols of ``M`` and ``W`` (``W`` acts as ``i * phi``).

        On the rfft half spectrum by default; on the full frequency grid with ``full=True``.
        """
        pair = self.pair_full if full else self.pair_half
        sign = self.sign_full if full else self.sign_half
        ref = next(p for p in (self.theta, self.psi, self.w_coef) if p is not None)
        m = self.m_pairs()[pair] if self.has_m else torch.zeros(pair.shape, dtype=ref.dtype, device=ref.device)
        if self.psi is not None:
            phi = sign.to(ref.dtype) * self.psi[pair]
        elif self.w_coef is not None:
            k = self.k_odd_full if full else self.k_odd_half
            phi = torch.tensordot(self.w_coef, k.to(ref.dtype), dims=1)
        else:
            phi = torch.zeros_like(m)
        return m, phi

    def apply_hat(self, mu_hat: torch.Tensor) -> torch.Tensor:
        """``(M + W) mu`` in Fourier space (half spectrum)."""
        m, phi = self.symbols()
        return torch.complex(m, phi) * mu_hat

    def apply(self, mu: torch.Tensor) -> torch.Tensor:
        """``(M + W) mu`` on the grid."""
        return self.grid.irfft(self.apply_hat(self.grid.rfft(mu)))

    def dissipation(self, mu: torch.Tensor) -> torch.Tensor:
        """``<mu, M mu>`` per batch member (W does not contribute: it is antisymmetric)."""
        if not self.has_m:
            return torch.zeros(mu.shape[0], dtype=mu.dtype, device=mu.device)
        m, _ = self.symbols()
        return self.grid.quadratic_form(self.grid.rfft(mu), m)


def grid_and_operators(cfg) -> tuple[SpectralGrid, FourierOperators]:
    """The grid and the learned ``M``, ``W`` of a model config with the operator keys of SpecOnsNet (``shape``,
    ``length``, ``operators``, ``conserved``, ``init_m``): shared by SpecOnsNet, its true-V ablation and
    Res-OnsagerNet, which then set their initial symbols (``cap_mobility_`` or ``paper_init_``)."""
    grid = SpectralGrid(shape=cfg.shape, length=cfg.length)
    return grid, FourierOperators(grid=grid, operators=cfg.operators, conserved=cfg.conserved, init_m=cfg.init_m,
                                  mobility_above=cfg.mobility_above, w_symbol=cfg.w_symbol)
