"""mesodyn as an installed package: the wheel holds every file the library reads, the command line works from an
empty folder, the version has one source, and the release metadata (CITATION.cff, CHANGELOG.md, the workflow
catalog's file) agree with it.

The wheel is installed here into a fresh virtual environment without its dependencies, which are taken from the
environment running the tests (a full ``pip install`` of the wheel with its dependencies, torch included, is
``.ci/wheel-smoke``, run by CI after the suite).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

import mesodyn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ("config.schema.yaml", "mesodyn.mplstyle", "paper_table.csv", "paper_figures.json")


def _run(cmd, *, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (the build writes nothing into the checkout)."""
    src = tmp_path_factory.mktemp("sdist")
    for item in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / item, src / item)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.nbi",
                                                                            "*.nbc"))
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
         cwd=src)
    (wheel,) = dist.glob("mesodyn-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv holding the wheel; the dependencies come from this environment's site-packages through a .pth
    line (that directory's own .pth files, among them the editable install of the checkout, are not read)."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(venv)], cwd=venv)
    bindir = venv / "bin"
    _run([str(bindir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=venv)
    purelib = Path(_run([str(bindir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=venv).stdout.strip())
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", MESODYN_GIT_COMMIT="", PYTHONNOUSERSITE="1")
    return {"bin": bindir, "purelib": purelib, "env": env}


def test_wheel_holds_every_file_the_library_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in PACKAGE_DATA:
        assert f"mesodyn/data/{name}" in names, f"{name} is not package data"
    assert "mesodyn/__main__.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mesodyn = mesodyn.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_cli_works_from_an_empty_folder_on_a_wheel_install(installed, tmp_path):
    """``mesodyn --version``, ``python -m mesodyn``, then solve -> fit -> evaluate with the built-in defaults, from a
    folder that holds no config/: the schema and the paper's numbers come from the installed package."""
    env, bindir = installed["env"], installed["bin"]
    where = _run([str(bindir / "python"), "-c", "import mesodyn; print(mesodyn.__file__)"], cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(installed["purelib"]), where.stdout
    assert _run(["mesodyn", "--version"], cwd=tmp_path, env=env).stdout.strip() == f"mesodyn {mesodyn.__version__}"
    version = _run([str(bindir / "python"), "-m", "mesodyn", "--version"], cwd=tmp_path, env=env)
    assert version.stdout.strip() == f"mesodyn {mesodyn.__version__}"
    _run(["mesodyn", "solve", "allen_cahn", "--out", "ac.nc", "--set", "data.allen_cahn.n_samples=12",
          "--set", "data.allen_cahn.t_final=0.01", "--set", "progress=false", "--threads", "1"], cwd=tmp_path,
         env=env)
    _run(["mesodyn", "fit", "ac.nc", "--model", "speconsnet", "--out", "run", "--set", "fit.train.max_epochs=3",
          "--set", "fit.train.valid_every=1", "--set", "fit.train.window=6", "--set", "fit.train.rollout_steps=2",
          "--set", "fit.train.batch_size=4", "--set", "progress=false", "--threads", "1"], cwd=tmp_path, env=env)
    assert (tmp_path / "run" / "weights.pt").is_file()
    _run(["mesodyn", "evaluate", "run", "ac.nc", "--out", "metrics.nc"], cwd=tmp_path, env=env)
    import xarray as xr

    with xr.open_dataset(tmp_path / "metrics.nc") as ds:
        assert ds.attrs["mesodyn_version"] == mesodyn.__version__
        assert int(ds["n_trajectories"].sel(set="heldout")) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ac.nc", "metrics.nc", "run"]


def test_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in project.get("dynamic", []) and "version" not in project
    from importlib.metadata import version

    assert version("mesodyn") == mesodyn.__version__
    parts = mesodyn.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), "versions are MAJOR.MINOR.PATCH (CHANGELOG.md)"


def test_citation_file_names_the_workflow_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version", "license"):
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert cff["version"] == mesodyn.__version__
    paper = cff["preferred-citation"]
    assert paper["title"] == "Hypothesis-driven construction of mesoscopic dynamics"
    assert "2605.16211" in paper["url"]
    license_text = (ROOT / "LICENSE").read_text()
    assert cff["license"] == "MIT" and license_text.startswith("MIT License")


def test_changelog_has_an_entry_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{mesodyn.__version__}]" in changelog


def test_workflow_catalog_file_uses_the_documented_keys():
    """The Snakemake workflow catalog reads ``usage`` with ``mandatory-flags`` (``desc``, ``flags``),
    ``software-stack-deployment`` (booleans for conda, singularity/apptainer and their combination) and ``report``;
    standardized usage also wants ``workflow/Snakefile`` and ``config/README.md``."""
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert set(catalog) == {"usage"}
    usage = catalog["usage"]
    assert set(usage) <= {"mandatory-flags", "software-stack-deployment", "report"}
    assert set(usage["mandatory-flags"]) <= {"desc", "flags"} and isinstance(usage["mandatory-flags"]["flags"], str)
    stacks = usage["software-stack-deployment"]
    assert set(stacks) <= {"conda", "singularity", "singularity+conda", "apptainer", "apptainer+conda"}
    assert all(isinstance(v, bool) for v in stacks.values()) and stacks["conda"] is True
    assert usage["report"] is True
    assert (ROOT / "workflow" / "Snakefile").is_file() and (ROOT / "config" / "README.md").is_file()
    assert not (ROOT / "Snakefile").exists(), "keep one Snakefile (workflow/Snakefile)"
    assert "configfile:" in (ROOT / "workflow" / "Snakefile").read_text()
