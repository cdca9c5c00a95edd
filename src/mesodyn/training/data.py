"""Training data: the split by trajectory, the random and the fixed validation windows, and the data's fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from mesodyn.fields import split_sizes

__all__ = ["split_trajectories", "gather_windows", "data_fingerprint"]


def split_trajectories(
    n: int, *, fractions: Sequence[float] = (0.7, 0.2, 0.1), seed: int = 42
) -> dict[str, list[int]]:
    """Split trajectory indices ``0..n-1`` into train, validation and test sets, fixed by ``seed``.

    The sizes are ``round(n f_train)``, ``round(n (f_train + f_valid)) - round(n f_train)`` and the rest
    (1000 trajectories: 700/200/100). Each part is returned sorted.

    Raises
    ------
    ValueError
        If the train or the validation part would be empty.
    """
    fractions = tuple(float(f) for f in fractions)
    # (a fraction computed as 1 - a - b can come out as -5.6e-17: round-off within the sum's tolerance is zero)
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < -1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}.")
    n_train, n_valid, _ = split_sizes(n, fractions)
    cut1, cut2 = n_train, n_train + n_valid
    if n_train < 1 or n_valid < 1:
        raise ValueError(
            f"n = {n} trajectories are too few for the split {fractions}: train and validation "
            "each need at least one trajectory."
        )
    order = np.random.default_rng(seed).permutation(n)
    parts = {"train": order[:cut1], "valid": order[cut1:cut2], "test": order[cut2:]}
    return {name: sorted(int(i) for i in idx) for name, idx in parts.items()}


def gather_windows(u: torch.Tensor, traj: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """Windows ``(batch, length, *grid)`` of trajectories ``traj`` starting at frames ``starts``."""
    frames = starts[:, None] + torch.arange(length)[None, :]
    return u[traj[:, None], frames]


def data_fingerprint(data: xr.Dataset) -> str:
    h = hashlib.blake2b(digest_size=16)
    u = np.ascontiguousarray(data["u"].values, dtype=np.float64)
    h.update(repr(u.shape).encode())
    for dim in data["u"].dims[1:]:
        h.update(np.ascontiguousarray(data[dim].values, dtype=np.float64).tobytes())
    # Hashing all values costs ~0.2 s per GB; for very large sets the first and last frames suffice to
    # tell data sets apart.
    h.update(u.tobytes() if u.nbytes <= 2**30 else np.concatenate([u[:, 0], u[:, -1]]).tobytes())
    return h.hexdigest()
