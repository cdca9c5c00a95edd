"""Every command of the README's "Command line without Snakemake" runs as written.

The commands run in a temporary folder whose ``config/config.yaml`` is the tiny ``config/ci.yaml`` (the default
config simulates 1000 trajectories per data set), after ``results/data/kdv.nc`` is made there as the workflow
would make it; each must exit with status 0 and print no traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(section: str = "## Command line without Snakemake") -> list[str]:
    """The ``mesodyn`` lines of the first bash block after ``section`` (comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text[text.index(section):], re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("mesodyn ")]


def test_the_readme_lists_the_fit_example():
    commands = readme_commands()
    assert "mesodyn fit results/data/kdv.nc --model fno --out runs/kdv_fno --set fit.train.max_epochs=50" in commands
    assert len(commands) >= 6


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "ci.yaml", tmp_path / "config" / "config.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "MESODYN_GIT_COMMIT": "pinned-for-test"}

    def run(command: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (command, proc.stderr[-3000:])
        return proc

    run("mesodyn solve kdv --out results/data/kdv.nc")  # what the workflow leaves in results/data/
    for command in readme_commands():
        proc = run(command)
        if " fit " in f" {command} ":
            # ci.yaml's kdv has no override of max_epochs: the --set applies, and nothing says otherwise
            assert "does not apply" not in proc.stderr
            assert (tmp_path / "runs" / "kdv_fno" / "weights.pt").is_file()
    assert (tmp_path / "runs" / "tables" / "rel_rmse_first5.csv").is_file()
