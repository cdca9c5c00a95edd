"""Shared fixtures. Reference data are read only through :mod:`mesodyn.reference`."""

from __future__ import annotations

import pytest

from mesodyn.reference import ENV_VAR, open_reference, reference_dir


@pytest.fixture(scope="session")
def reference():
    """Loader of the authors' reference data sets; skips (with the reason) where the folder is absent."""
    if reference_dir() is None:
        pytest.skip(f"reference data folder not found (set {ENV_VAR}); CI always has it")
    cache: dict = {}

    def load(name: str):
        if name not in cache:
            cache[name] = open_reference(name)
        return cache[name]

    return load


@pytest.fixture
def torch_one_thread():
    """One torch thread: on tiny tensors a second thread only waits on a shared 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run_snakemake(work, *args, check=True, timeout=1500):
    """``snakemake --cores 2 ARGS`` in ``work``, with the provenance commit pinned (commits landing during a test must
    not change an output's attributes)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MESODYN_GIT_COMMIT": "pinned-for-test"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=work, capture_output=True,
                          text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_workflow(work):
    """Copy what the workflow needs (workflow/, config/, profiles/) into ``work``; mesodyn itself is
    imported from the installed package."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for item in ("workflow", "config", "profiles"):
        src = root / item
        if src.is_dir():
            shutil.copytree(src, work / item)
        elif src.exists():
            shutil.copy2(src, work / item)
    return work


@pytest.fixture
def workflow_copy(tmp_path):
    """A fresh copy of the workflow in a temporary folder (nothing run)."""
    return copy_workflow(tmp_path)


@pytest.fixture(scope="session")
def ci_workflow(tmp_path_factory):
    """The workflow on ``config/ci.yaml`` in a temporary copy of the repository, once, then ``snakemake --report
    results/report.html``. Returns a dict with ``workdir``, ``first`` (the bytes of every file under ``results/``
    after the run; the report, written last, is not among them) and ``rerun()``, the same after a second run of
    every job. The second run is the SLURM test's where that test has already run the workflow again from scratch
    through SLURM and found every file byte-identical (it stores its files as ``second``); otherwise ``rerun()``
    makes it here, with ``--forceall`` (one full run of the suite saved where SLURM is installed, as in CI)."""
    work = copy_workflow(tmp_path_factory.mktemp("workflow"))
    report = work / "results" / "report.html"

    def snapshot():
        return {p.relative_to(work): p.read_bytes() for p in (work / "results").rglob("*")
                if p.is_file() and p != report}

    run_snakemake(work, "--configfile", "config/ci.yaml")
    first = snapshot()
    run_snakemake(work, "--configfile", "config/ci.yaml", "--report", "results/report.html")
    state = {"workdir": work, "first": first}

    def rerun():
        if "second" not in state:
            run_snakemake(work, "--configfile", "config/ci.yaml", "--forceall")
            state["second"] = snapshot()
        return state["second"]

    state["rerun"] = rerun
    return state
