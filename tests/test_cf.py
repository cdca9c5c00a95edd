"""CF-1.10 on every kind of netCDF file the workflow writes (fields in 1-D, 2-D and of a chain, microscopic
trajectories, metrics, every diagnostic), from the suite's run of ``config/ci.yaml``: the IOOS compliance checker
finds no error, and our own checks find the attributes CF asks for.

One class of the checker's errors is expected and excluded by name: it takes any variable called ``time`` for CF's
calendar time axis, which needs units ``<unit> since <epoch>``. Our time is dimensionless (the equations' own units,
``units: 1``) and its name is fixed by the data contract, so it is a plain coordinate, without ``axis: T``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import xarray as xr

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

# the checker's messages about a variable named `time` read as a calendar axis (see the module docstring)
CALENDAR_TIME = (re.compile(r"^time must be in a valid units format <unit> since <epoch> not 1$"),
                 re.compile(r"^time does not have correct time units$"),
                 re.compile(r"^Coordinate variable 'time' should have standard_name='time', found: 'None'$"))
PLACEHOLDER_UNITS = ("unit of the data", "energy unit", "unit of u", "argument unit")


def _files(work: Path) -> dict[str, Path]:
    results = work / "results"
    files = {"fields 1-D": results / "data" / "kdv.nc", "fields 2-D": results / "data" / "allen_cahn_2d.nc",
             "fields of a chain": results / "data" / "fput.nc", "micro": results / "micro" / "fput.nc",
             "metrics": sorted((results / "metrics" / "kdv").rglob("*.nc"))[0]}
    for path in sorted((results / "diagnostics").rglob("*.nc")):
        files.setdefault(f"diagnostic {path.stem}", path)
    return files


def _checker_errors(path: Path, out: Path) -> list[str]:
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite().load_all_available_checkers()
    ComplianceChecker.run_checker(str(path), ["cf:1.10"], 0, "normal", output_filename=str(out),
                                  output_format="json")
    report = json.loads(out.read_text())["cf:1.10"]
    errors = []
    for result in report["all_priorities"]:
        scored, possible = result["value"]
        if result["weight"] < 3 or scored >= possible:  # weight 3: the checker's errors; 2 and 1 are advice
            continue
        msgs = [m for m in result["msgs"] if not any(p.match(m) for p in CALENDAR_TIME)]
        errors.extend(f"{result['name']}: {m}" for m in msgs)
    return errors


@pytest.fixture(scope="module")
def outputs(ci_workflow):
    files = _files(ci_workflow["workdir"])
    assert {"diagnostic operator_symbols", "diagnostic energy_vs_truth", "diagnostic step_size_sweep"} <= set(files)
    return files


def test_compliance_checker_finds_no_cf_error(outputs, tmp_path):
    found = {kind: _checker_errors(path, tmp_path / "report.json") for kind, path in outputs.items()}
    assert not any(found.values()), {kind: errors for kind, errors in found.items() if errors}


def test_every_file_carries_the_cf_attributes(outputs):
    for kind, path in outputs.items():
        ds = xr.open_dataset(path, decode_cf=False)
        for key in ("Conventions", "source", "references", "history"):
            assert ds.attrs.get(key), f"{kind}: no global attribute {key}"
        assert ds.attrs["Conventions"] == "CF-1.10" and "2605.16211" in ds.attrs["references"]
        assert not re.search(r"\d{4}-\d\d-\d\d", ds.attrs["history"]), "history must not hold a timestamp"
        for name in ds.coords:
            assert "long_name" in ds[name].attrs, f"{kind}: coordinate {name} has no long_name"
        for name in ("x", "y"):
            if name in ds.coords:
                assert ds[name].attrs.get("axis") == name.upper(), f"{kind}: {name} has no axis"
        assert "axis" not in ds.coords.get("time", xr.DataArray()).attrs, "dimensionless time is no calendar axis"
        for name, var in ds.variables.items():
            assert "padding" not in var.attrs, f"{kind}: {name} marks padding without _FillValue"
            units = var.attrs.get("units")
            assert not (isinstance(units, str) and any(p in units for p in PLACEHOLDER_UNITS)), \
                f"{kind}: {name} has units {units!r}, not a UDUNITS string"


def test_metrics_padding_is_the_fill_value(outputs):
    raw = xr.open_dataset(outputs["metrics"], decode_cf=False)
    assert raw["sample"].attrs["_FillValue"] == -1 and raw["split_part"].attrs["_FillValue"] == -1
    assert raw["split_part"].attrs["flag_meanings"] == "train valid test"
    decoded = xr.open_dataset(outputs["metrics"])
    n = decoded["n_trajectories"].values
    for k in range(decoded.sizes["set"]):  # the slots past a set's trajectories read as missing
        assert decoded["sample"].isel(set=k).isnull().sum() == decoded.sizes["trajectory"] - n[k]
