"""Atomic outputs with normal file modes (mesodyn._io), for every file a run writes."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import xarray as xr

from mesodyn._io import atomic_path, atomic_write


def _normal_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_atomic_write_gives_the_normal_mode_and_leaves_no_temporary(tmp_path):
    path = atomic_write(tmp_path / "a" / "x.bin", b"payload")
    assert path.read_bytes() == b"payload"
    assert stat.S_IMODE(path.stat().st_mode) == _normal_mode()
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = atomic_write(tmp_path / "x.bin", b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_every_file_of_a_run_has_the_normal_mode(tmp_path, torch_one_thread):
    from mesodyn.training import TrainConfig, fit

    n, nt, nx = 4, 6, 16
    x = np.arange(nx) * 2 * np.pi / nx
    u = np.sin(x)[None, None, :] * np.exp(-np.arange(nt) * 1e-3)[None, :, None] * np.ones((n, 1, 1))
    data = xr.Dataset({"u": (("sample", "time", "x"), u)},
                      coords={"time": np.arange(nt) * 1e-3, "x": x})
    fit(data, model_config={"name": "speconsnet", "hidden": 4, "nonlocal_modes": 2},
        train=TrainConfig(window=3, rollout_steps=1, batch_size=2, max_epochs=2, valid_every=2, split=(0.5, 0.5, 0.0),
                          device="cpu"),
        out_dir=tmp_path, progress=False)
    files = sorted(tmp_path.iterdir())
    assert {p.name for p in files} >= {"weights.pt", "model.json", "history.csv", "split.json", "summary.json",
                                       "last.pt"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == _normal_mode(), p.name


def test_trajectories_are_stored_one_per_chunk(tmp_path):
    """An evaluation batch reads a few trajectories; with one chunk per trajectory it decompresses only those."""
    import netCDF4

    from mesodyn.fields import write_netcdf

    u = np.random.default_rng(0).standard_normal((12, 8, 64))
    path = write_netcdf(xr.Dataset({"u": (("sample", "time", "x"), u), "ic": (("sample",), np.arange(12.0))}),
                        tmp_path / "f.nc")
    with netCDF4.Dataset(path) as nc:
        assert nc["u"].chunking() == [1, 8, 64]
        assert nc["u"].filters()["zlib"]
    with xr.open_dataset(path) as ds:
        np.testing.assert_array_equal(ds["u"].isel(sample=[3, 7, 11]).values, u[[3, 7, 11]])


def test_command_line_numbers_in_exponent_form_are_numbers():
    """YAML 1.1 reads ``1e-3`` as a string; ``--set fit.train.lr=1e-3`` must set the number."""
    from mesodyn.cli import _override

    config = _override({}, ["fit.train.lr=1e-3", "fit.train.max_epochs=50", "a.b=fast", "a.c=nan"])
    assert config["fit"]["train"] == {"lr": 1e-3, "max_epochs": 50}
    assert isinstance(config["fit"]["train"]["max_epochs"], int)
    assert config["a"] == {"b": "fast", "c": "nan"}


def test_variables_above_the_compression_limit_are_written_contiguous_and_equal(tmp_path, monkeypatch):
    """Large fields (every paper data set's) are stored uncompressed: zlib saves little on float64 fields and costs
    much time to write and to read in every job; smaller variables of the same file stay compressed. The values are
    the same."""
    import netCDF4

    import mesodyn.fields as fields

    one_d, ood = 1000 * 101 * 256 * 8, 50 * 101 * 256 * 8  # a paper 1-D u; an out-of-distribution set's u
    assert ood < fields.COMPRESS_BYTES < one_d

    monkeypatch.setattr(fields, "COMPRESS_BYTES", 12 * 8 * 64 * 8 - 1)  # just below u's size
    u = np.random.default_rng(1).standard_normal((12, 8, 64))
    small = np.random.default_rng(2).standard_normal((12, 8, 64 * 8 // 9))
    path = fields.write_netcdf(xr.Dataset({"u": (("sample", "time", "x"), u),
                                           "v": (("sample", "time", "z"), small)}), tmp_path / "f.nc")
    with netCDF4.Dataset(path) as nc:
        assert nc["u"].chunking() == "contiguous" and not nc["u"].filters()["zlib"]
        assert nc["v"].filters()["zlib"]
    with xr.open_dataset(path) as ds:
        np.testing.assert_array_equal(ds["u"].isel(sample=[3, 7, 11]).values, u[[3, 7, 11]])
        np.testing.assert_array_equal(ds["v"].values, small)
