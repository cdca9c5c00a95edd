"""The workflow under any executor: rules that a SLURM cluster can place, proven on a real one.

- Unit checks (no cluster): the data rules rerun on a change of what they compute, not on ``progress``; the default
  config's memory and time requests cover what a real default run measured; a local run is not limited by the fit
  rules' ``gpu`` resource unless ``--resources gpu=N`` is given.
- ``@pytest.mark.slurm``: a single-node SLURM cluster on loopback (``tests/slurm/cluster.sh``: Debian's slurmctld,
  slurmd, slurm-client and munge, started as root), ``config/ci.yaml`` run through ``profiles/slurm`` as README.md
  tells a user, every file under ``results/`` byte-identical to a local run of the same config, GPUs requested by
  the fit jobs and by no other job. Skipped only where the SLURM binaries are absent.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "sinfo")
# the commit is pinned so that commits landing during the test cannot change the provenance attribute
ENV = {**os.environ, "MESODYN_GIT_COMMIT": "pinned-for-test"}


def _copy_workflow(dest: Path, root: Path = ROOT,
                   items=("workflow", "config", "profiles")) -> Path:
    """A copy of the workflow (with ``src`` among ``items``, the workflow imports mesodyn from the copy)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in items:
        src = root / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dest / item)
    return dest


def _snakemake(work: Path, *args: str, env=None, timeout: float = 900, check: bool = True,
               prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    proc = subprocess.run([*prefix, *SNAKEMAKE, *args], cwd=work, capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def _planned_jobs(output: str) -> dict[str, list[str]]:
    """rule -> list of the 'reason:' lines of the jobs a dry run (-n) plans."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block)
        if match:
            reason = re.search(r"^\s*reason: (.*)$", block, re.M)
            jobs.setdefault(match.group(1), []).append(reason.group(1) if reason else "")
    return jobs


# --------------------------------------------------------------------------------------------------- no cluster


TINY = """\
seed: 0
datasets: [kdv]
progress: false
data:
  threads: 1
  kdv: {n_samples: 2, t_final: 0.01}
"""


def test_progress_bars_do_not_rerun_a_simulation(tmp_path):
    work = _copy_workflow(tmp_path / "wf")
    (work / "tiny.yaml").write_text(TINY)
    (work / "tiny_progress.yaml").write_text(TINY.replace("progress: false", "progress: true"))
    target = "results/data/kdv.nc"
    # the target first: --configfile and --config take several values
    _snakemake(work, target, "--cores", "1", "--configfile", "tiny.yaml")
    before = (work / target).read_bytes()

    toggled = _snakemake(work, target, "-n", "--cores", "1", "--configfile", "tiny_progress.yaml").stdout
    assert "solve_pde" not in _planned_jobs(toggled), toggled
    assert "Nothing to be done" in toggled, toggled

    # control: a key the data depend on does rerun it, for its params
    reseeded = _snakemake(work, target, "-n", "--cores", "1", "--configfile", "tiny.yaml", "--config",
                          "seed=1").stdout
    assert any("params" in reason.lower() for reason in _planned_jobs(reseeded).get("solve_pde", [])), reseeded
    assert (work / target).read_bytes() == before


# Peak memory (MB, max_rss) and wall time (s) per rule and data set, the maximum over models and seeds, from the
# Snakemake benchmark files of a real default run (config/config.yaml, 2 CPU cores, 80 min; docs/cluster.md). The
# data rules had no benchmark file then: their wall times are from that run's logs, their memory from /usr/bin/time
# on the same data (a benchmark file samples memory now and then and missed the chains' short peak: 762 MB for
# fene against 1570 MB), allen_cahn_2d from the benchmark file of a later default run.
MEASURED = {
    ("fit", "allen_cahn"): (1856, 243), ("fit", "kdv"): (1917, 363), ("fit", "fput"): (2205, 493),
    ("fit", "fene"): (2049, 572), ("fit", "allen_cahn_2d"): (4758, 605),
    ("evaluate", "allen_cahn"): (506, 52), ("evaluate", "kdv"): (500, 49), ("evaluate", "fput"): (512, 43),
    ("evaluate", "fene"): (518, 49), ("evaluate", "allen_cahn_2d"): (639, 79),
    ("solve_pde", "kdv"): (652, 18), ("solve_pde", "allen_cahn"): (652, 15),
    ("solve_pde", "allen_cahn_2d"): (2979, 457), ("simulate_chain", "fput"): (1124, 23),
    ("simulate_chain", "fene"): (1570, 37),
}


def test_default_requests_cover_the_measured_default_run(tmp_path):
    work = _copy_workflow(tmp_path / "wf")
    out = _snakemake(work, "-n", "--cores", "2").stdout  # config/config.yaml through profiles/default
    seen = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        dataset = re.search(r"wildcards: dataset=(\w+)", block)
        resources = re.search(r"resources: (.*)", block)
        if not (rule and dataset and resources and (rule.group(1), dataset.group(1)) in MEASURED):
            continue
        key = (rule.group(1), dataset.group(1))
        res = dict(item.split("=", 1) for item in resources.group(1).split(", "))
        rss, seconds = MEASURED[key]
        assert int(res["mem_mb"]) >= 1.25 * rss, (key, res["mem_mb"], rss)
        assert int(res["runtime"]) * 60 >= 3 * seconds, (key, res["runtime"], seconds)
        seen.add(key)
    assert seen == set(MEASURED), set(MEASURED) - seen


def test_gpu_resource_limits_local_concurrency_only_when_declared(tmp_path):
    """Snakemake treats a resource that --resources does not name as unlimited: the fit rules' gpu=1 does not
    serialize a local run; --resources gpu=1 does."""
    (tmp_path / "Snakefile").write_text(
        "rule all:\n    input: expand('o{i}.txt', i=range(2))\n\n"
        "rule a:\n    output: 'o{i}.txt'\n    resources: gpu=1\n"
        "    shell: 'date +%s.%N > {output}; sleep 1.5; date +%s.%N >> {output}'\n")

    def overlap(*extra):
        for p in tmp_path.glob("o*.txt"):
            p.unlink()
        _snakemake(tmp_path, "--cores", "2", *extra)
        (s0, e0), (s1, e1) = (map(float, (tmp_path / f"o{i}.txt").read_text().split()) for i in range(2))
        return min(e0, e1) > max(s0, s1)

    assert overlap()
    assert not overlap("--resources", "gpu=1")


# ------------------------------------------------------------------------------------------------ real SLURM


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node cluster (state, logs and pids in the yielded folder); stopped by its pids after."""
    path = _sbin_path()
    missing = [b for b in SLURM_BINARIES if shutil.which(b, path=path) is None]
    if missing:
        pytest.skip(f"SLURM binaries not found ({', '.join(missing)}): install Debian's slurmctld slurmd "
                    "slurm-client munge (.ci/run does)")
    # one cluster on this machine at a time: it owns /etc/slurm/slurm.conf and its ports
    lock = open("/tmp/mesodyn-slurm-test.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "PATH": path}
    start = time.monotonic()
    proc = subprocess.run(["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, env=env,
                          timeout=180)
    try:
        assert proc.returncode == 0, f"could not start the test cluster:\n{proc.stdout}\n{proc.stderr}"
        print(f"cluster up in {time.monotonic() - start:.1f} s")
        yield state
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], env=env, timeout=60)
        lock.close()


def _slurm_jobs() -> list[dict[str, str]]:
    """Every job the controller remembers (MinJobAge keeps finished ones): id, state, comment (rule and wildcards),
    partition, CPUs, memory, time limit and the GPUs it was granted."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T|%k|%P|%C|%m|%l"],
                         capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        job_id, state, comment, partition, cpus, mem, limit = line.split("|")
        detail = subprocess.run(["scontrol", "-d", "-o", "show", "job", job_id], capture_output=True, text=True,
                                check=True).stdout
        # TresPerJob: what the job asked for (--gpus=1: gres:gpu:1); JOB_GRES: what the node granted (gpu:1)
        asked, granted = (re.search(rf"\b{key}=(\S+)", detail) for key in ("TresPerJob", "JOB_GRES"))
        rule = re.match(r"rule_(.+?)(?:_wildcards_|$)", comment)
        jobs.append({"id": job_id, "state": state, "rule": rule.group(1) if rule else comment, "comment": comment,
                     "partition": partition, "cpus": cpus, "mem": mem, "limit": limit,
                     "gpus": asked.group(1) if asked and asked.group(1) != "(null)" else "",
                     "granted": granted.group(1) if granted and granted.group(1) != "(null)" else ""})
    return sorted(jobs, key=lambda job: int(job["id"]))


def _results(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted((work / "results").rglob("*")) if p.is_file()}


def _newest_mtime(root: Path, items) -> float:
    return max(p.stat().st_mtime for item in items for p in [root / item, *(root / item).rglob("*")]
               if p.exists() and "__pycache__" not in p.parts)


def _local_reference(request, tmp_path, items):
    """(bytes of every file under results/ of a local run of config/ci.yaml, the folder to copy the workflow from).

    The suite's ``ci_workflow`` fixture (conftest.py) has made that run already, from the working tree, so it is
    reused when nothing it ran from has changed since it copied the workflow; otherwise (another worker's edit in
    the working tree, or no such fixture) a local run is made here, from one snapshot shared with the SLURM run."""
    try:
        ci = request.getfixturevalue("ci_workflow")
    except pytest.FixtureLookupError:
        ci = None
    if ci is not None and _newest_mtime(ROOT, items) < (ci["workdir"] / "workflow" / "Snakefile").stat().st_ctime:
        return {str(path): data for path, data in ci["first"].items()}, ROOT
    snapshot = _copy_workflow(tmp_path / "snapshot", items=items)
    local = _copy_workflow(tmp_path / "local", root=snapshot, items=items)
    _snakemake(local, "--cores", "2", "--configfile", "config/ci.yaml", timeout=1500)
    return _results(local), snapshot


@pytest.mark.slurm
@pytest.mark.workflow
def test_ci_config_on_slurm_matches_a_local_run(slurm_cluster, tmp_path, request):
    timings = {}
    # mesodyn is copied too (common.smk imports it from src/ beside the Snakefile): the SLURM run uses exactly the
    # code of the local run, and the Numba check below sees whether anything was written into that source tree
    items = ("workflow", "config", "profiles", "src")
    start = time.monotonic()
    reference, source = _local_reference(request, tmp_path, items)
    ci = request.getfixturevalue("ci_workflow") if source == ROOT else None  # cached: the reference came from it
    timings["local run (or the suite's)"] = time.monotonic() - start

    # README.md, "On a cluster": the profile, a node-local Numba cache, and squeue for the status (no slurmdbd here;
    # the cluster keeps finished jobs for MinJobAge = 3600 s >= 3 x the initial status delay)
    work = _copy_workflow(tmp_path / "slurm", root=source, items=items)
    numba_cache = slurm_cluster / "node-local" / "numba"
    env = {**ENV, "PATH": _sbin_path(), "NUMBA_CACHE_DIR": str(numba_cache)}
    start = time.monotonic()
    # a broken status query makes Snakemake wait forever and ignore SIGTERM: timeout -k ends it
    proc = _snakemake(work, "--profile", "profiles/slurm", "--configfile", "config/ci.yaml",
                      "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                      "--slurm-keep-successful-logs", env=env, timeout=1300, check=False,
                      prefix=("timeout", "-k", "30", "1200"))
    timings["SLURM run"] = time.monotonic() - start
    jobs = _slurm_jobs()
    table = "\n".join(f"{j['id']:>4} {j['state']:<10} {j['partition']:<4} cpus={j['cpus']:<2} mem={j['mem']:<6} "
                      f"time={j['limit']:<8} gpus={j['gpus'] or '-':<11} granted={j['granted'] or '-':<5} "
                      f"{j['comment']}" for j in jobs)
    (slurm_cluster / "jobs.txt").write_text(table + "\n")
    print(f"\n{table}\n" + ", ".join(f"{k}: {v:.0f} s" for k, v in timings.items()))
    assert proc.returncode == 0, (f"SLURM run failed ({proc.returncode}):\n{proc.stderr[-8000:]}\n{table}\n"
                                  f"{(slurm_cluster / 'slurmctld.log').read_text()[-3000:]}")

    # every job ran through SLURM and finished; GPUs on the fit jobs, on no other
    assert jobs and all(j["state"] == "COMPLETED" for j in jobs), table
    rules = {j["rule"] for j in jobs}
    assert {"simulate_chain", "solve_pde", "fit", "evaluate"} <= rules, table
    # the jobs of seconds (localrules: the table, its page, the figures) run on the login node, not as SLURM jobs
    local = {rule for rule in rules if rule in ("all", "table", "table_page") or rule.startswith("figure_")}
    assert not local, f"jobs of seconds submitted to SLURM: {sorted(local)}\n{table}"
    fits = [j for j in jobs if j["rule"] == "fit"]
    assert len(fits) == len({Path(name).parent for name in reference if name.startswith("results/models/")}), table
    assert all(j["gpus"] == "gres:gpu:1" and re.fullmatch(r"gpu:1(\(IDX:\d\))?", j["granted"]) for j in fits), table
    assert not [j for j in jobs if j["rule"] != "fit" and (j["gpus"] or j["granted"])], table
    # threads from the config reach SLURM as CPUs per task (ci.yaml: data.threads 2, fit.threads 1)
    assert {j["cpus"] for j in jobs if j["rule"] in ("simulate_chain", "solve_pde")} == {"2"}, table
    assert {j["cpus"] for j in fits} == {"1"}, table
    # the profile's GPU partition for the fits, the cluster's default partition for the rest
    assert {j["partition"] for j in fits} == {"gpu"}, table
    assert {j["partition"] for j in jobs if j["rule"] != "fit"} == {"cpu"}, table
    # one log per SLURM job where the README says
    logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == len(jobs), [str(p) for p in logs]
    # the chain jobs compiled into the node-local Numba cache, not into the shared source tree
    assert list(numba_cache.rglob("*.nbi")), "no Numba cache written under NUMBA_CACHE_DIR"
    assert not list((work / "src").rglob("*.nbi")), "a Numba cache was written into the shared source tree"

    # byte-identical outputs: every file under results/ (fields, micro, weights, model configs, histories, splits,
    # metrics, tables and whatever else the config makes); logs/ and .snakemake/ are not outputs
    ours, theirs = _results(work), reference
    assert sorted(ours) == sorted(theirs)
    differ = [name for name in theirs if ours[name] != theirs[name]]
    assert not differ, f"outputs differ between the SLURM and the local run: {differ}"
    if source == ROOT and ci is not None:
        # a second run of the suite's workflow from scratch, byte-identical: test_workflow need not make another
        ci["second"] = {Path(name): data for name, data in ours.items()}
    print(f"{len(theirs)} files under results/ byte-identical: " + ", ".join(sorted(theirs)))
