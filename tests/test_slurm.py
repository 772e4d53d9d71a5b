"""Runs as submitit jobs: the Slurm parameter mapping; the smoke study on a real one-node
Slurm cluster (tests/slurm_cluster.py: Debian's slurm-wlm), with job arrays, stage
dependencies, a requeued run resuming from its checkpoint and results equal to the local
executor's; and the job path run by submitit's LocalExecutor, preemption included."""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xfer_nb import executors as E
from xfer_nb import sweep as S, notebook_runner as R, outcomes as O, study as St
from xfer_nb.runs import DONE, FAILED, HTML, METRICS, NOTEBOOK

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "tests" / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import toyplan  # noqa: E402

R.fast_jupyter_imports()

SLURM = {"partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "timeout_min": 720,
         "account": "nlp", "array_parallelism": 16, "setup": ["module load cuda/12.4"],
         "additional_parameters": {"mail-type": "END"},
         "stages": {"prepare": {"gpus_per_node": 0, "mem_gb": 16, "timeout_min": 30}}}


def test_slurm_settings_map_to_sbatch_flags(tmp_path):
    import submitit

    params = {"sweep": {"executor": "slurm", "slurm": SLURM}}
    target = E.slurm_settings(params, "target")
    assert target["gpus_per_node"] == 1 and target["mem_gb"] == 64
    prepare = E.slurm_settings(params, "prepare")
    assert prepare["gpus_per_node"] == 0 and prepare["timeout_min"] == 30 and prepare["partition"] == "gpu"
    ex = submitit.AutoExecutor(tmp_path / "%j", cluster="slurm")
    ex.update_parameters(**E.executor_parameters(target, name="xfer-target", dependency=["7_0", "7_1"]))
    text = ex._executor._make_submission_file_text("python -m submitit.core._submit X", "uid")
    for flag in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=64GB", "--time=720",
                 "--account=nlp", "--job-name=xfer-target", "--dependency=afterok:7_0:7_1",
                 "--kill-on-invalid-dep=yes", "--mail-type=END", "--nodes=1", "--ntasks-per-node=1"):
        assert f"#SBATCH {flag}\n" in text, flag
    assert "module load cuda/12.4" in text and "--signal=USR2@" in text  # submitit's preemption signal
    ex = submitit.AutoExecutor(tmp_path / "%j", cluster="slurm")
    ex.update_parameters(**E.executor_parameters(prepare, name="xfer-prepare"))
    text = ex._executor._make_submission_file_text("cmd", "uid")
    assert "--gpus-per-node" not in text and "#SBATCH --time=30\n" in text and "--dependency" not in text
    for bad, match in (({"gpus": 1}, "unknown key"), ({"gpus_per_node": -1}, "non-negative"),
                       ({"mem_gb": 0}, "positive"), ({"stages": {"train": {}}}, "unknown stage")):
        with pytest.raises(ValueError, match=match):
            E.slurm_settings({"sweep": {"slurm": bad}}, "target")


# The smoke study on the test cluster: params/smoke.yaml, with the intermediate run long
# enough (40 steps, a checkpoint every 2) for the test to requeue its job mid-training, and
# jobs that fit a small node (no GPU, one CPU each).
SMOKE_ON_SLURM = """\
extends: {smoke}
name: smoke-slurm
intermediate:
  max_steps: 40
  checkpoint_every_steps: 2
sweep:
  slurm:
    gpus_per_node: 0
    cpus_per_task: 1
    mem_gb: 2
    timeout_min: 30
"""
# Metrics that measure the machine, not the model.
TIMING_METRICS = {"examples_per_second", "train_seconds", "own_train_seconds", "eval_seconds", "seconds"}


def xfer_nb(*args, env, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "xfer_nb.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def results(outputs: Path) -> dict[str, list[dict]]:
    """run id -> its metrics.jsonl rows, the timing metrics left out."""
    out = {}
    for path in sorted(outputs.glob("runs/*/*/" + METRICS)):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out[path.parent.name] = [r for r in rows if r.get("metric") not in TIMING_METRICS]
    return out


def queue(cluster) -> dict[str, dict[str, str]]:
    """squeue, one entry per job or array task: state, dependency, name."""
    text = cluster.run("squeue", "--noheader", "--array", "--format=%i|%T|%E|%j")
    rows = (line.split("|") for line in text.splitlines() if line.strip())
    return {r[0]: {"state": r[1], "dependency": r[2], "name": r[3]} for r in rows}


@pytest.mark.slow
def test_smoke_sweep_on_a_real_slurm_cluster_equals_the_local_executor(slurm_cluster, tmp_path):
    cluster = slurm_cluster
    params = tmp_path / "smoke-slurm.yaml"
    params.write_text(SMOKE_ON_SLURM.format(smoke=ROOT / "params" / "smoke.yaml"))
    env = {**cluster.env(), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    plan = St.load_plan(params)
    started = time.monotonic()
    # the same params through the local executor, meanwhile (the cluster's jobs leave CPUs idle
    # while they wait on each other and on the requeue)
    local_log = open(tmp_path / "local.log", "w")
    local_proc = subprocess.Popen([sys.executable, "-m", "xfer_nb.cli", "sweep", str(params), "--executor", "local",
                                   "--outputs", str(tmp_path / "local")], cwd=ROOT, env=env, stdout=local_log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _sweep_on_slurm_then_compare(cluster, plan, params, env, tmp_path, local_proc, started)
    finally:
        if local_proc.poll() is None:  # a failed assertion: end the local sweep and its workers
            os.killpg(local_proc.pid, 9)
            local_proc.wait()
        local_log.close()


def _sweep_on_slurm_then_compare(cluster, plan, params, env, tmp_path, local_proc, started):
    specs = {s.run_id: s for s in plan.all_specs()}
    (inter,) = plan.stages["intermediate"]
    out = tmp_path / "on-slurm"

    # 1. submit: every run becomes a job at once, the later stages wait on the earlier ones
    proc = xfer_nb("sweep", params, "--executor", "slurm", "--outputs", out, env=env)
    submitted_s = time.monotonic() - started
    record_path = out / "slurm" / "smoke-slurm" / "submitted.json"
    job = json.loads(record_path.read_text())
    assert set(job) == set(specs), proc.stdout
    jobs_now = queue(cluster)
    by_stage = {st: sorted(job[s.run_id] for s in ss) for st, ss in plan.stages.items()}
    (prepare_job,) = by_stage["prepare"]
    assert job[inter.run_id] in jobs_now and f"afterok:{prepare_job}" in jobs_now[job[inter.run_id]]["dependency"]
    after_inter = [job[s.run_id] for s in plan.stages["target"] if inter.run_id in s.upstream.values()]
    assert len(after_inter) >= 2 and len({j.split("_")[0] for j in after_inter}) == 1, "one array of targets"
    assert {j.split("_")[1] for j in after_inter} == {str(i) for i in range(len(after_inter))}
    for j in after_inter:
        assert jobs_now[j]["state"] == "PENDING" and f"afterok:{job[inter.run_id]}" in jobs_now[j]["dependency"]
        assert jobs_now[j]["name"] == "xfer-target"

    # 2. the study command on the same outputs submits nothing twice; the analysis job
    #    waits for every job of the sweep (afterany)
    proc = xfer_nb("study", params, "--executor", "slurm", "--outputs", out, env=env)
    assert json.loads(record_path.read_text()) == job
    analysis = re.search(r"^analysis job (\d+) will write the report", proc.stdout, re.M)
    assert analysis, proc.stdout
    analysis_job = analysis.group(1)

    # 3. requeue the intermediate job once it has written a checkpoint, while it trains
    checkpoints = out / "runs" / "intermediate" / inter.run_id / "checkpoints"
    deadline = time.monotonic() + 600
    while not any(p.name.startswith("step-") for p in (checkpoints.iterdir() if checkpoints.is_dir() else [])):
        assert time.monotonic() < deadline, f"no checkpoint after 600 s:\n{cluster.logs()}"
        time.sleep(0.05)
    seen = sorted(int(p.name.split("-")[1]) for p in checkpoints.iterdir() if p.name.startswith("step-"))
    cluster.run("scontrol", "requeue", job[inter.run_id])
    requeued_at = time.monotonic() - started
    cluster.wait_idle(timeout=900)
    slurm_s = time.monotonic() - started
    assert cluster.job_field(job[inter.run_id], "Restarts") == "1"
    for run_id, spec in specs.items():
        assert (out / "runs" / spec.stage / run_id / DONE).is_file(), f"{spec.stage}/{run_id} is not done"
    nb = json.loads((out / "runs" / "intermediate" / inter.run_id / NOTEBOOK).read_text())
    shown = "".join("".join(o.get("data", {}).get("text/plain", "")) + "".join(o.get("text", ""))
                    for c in nb["cells"] for o in c.get("outputs", []))
    resumed = re.search(r"'resumed_from_step': (\d+)", shown)
    assert resumed and seen[0] <= int(resumed.group(1)) <= 40, "the requeued run did not resume from its checkpoint"
    assert (out / "reports" / "smoke-slurm.html").is_file(), f"analysis job {analysis_job} made no report"

    # 4. the local executor's results are the same
    assert local_proc.wait(timeout=900) == 0, (tmp_path / "local.log").read_text()[-3000:]
    local_s = time.monotonic() - started
    on_slurm, local = results(out), results(tmp_path / "local")
    assert set(local) == set(on_slurm) == set(specs)
    for run_id in specs:
        assert on_slurm[run_id] == local[run_id], run_id
    # the requeued training, resumed from its checkpoint, logged the same loss at every step
    train_log = "runs/intermediate/" + inter.run_id + "/train_log.jsonl"
    assert (out / train_log).read_text() == (tmp_path / "local" / train_log).read_text()
    print(f"slurm: submitted in {submitted_s:.1f} s, requeued at {requeued_at:.1f} s after checkpoints {seen}, "
          f"all jobs done at {slurm_s:.1f} s; the local sweep beside it done at {local_s:.1f} s")


def test_run_job_checkpoint_requeues_itself():
    from submitit.helpers import DelayedSubmission

    spec = toyplan.flat_plan(1).all_specs()[0]
    job = E.RunJob(spec, "/tmp/out", notebooks_dir=str(NOTEBOOKS), force=True)
    again = job.checkpoint()
    assert isinstance(again, DelayedSubmission) and isinstance(again.function, E.RunJob)
    assert again.function.spec == spec and again.function.outputs == "/tmp/out" and again.function.force is False
    assert pickle.loads(pickle.dumps(job)).spec == spec


@pytest.mark.slow
def test_submitit_local_jobs_execute_the_notebooks(tmp_path):
    plan = toyplan.ToyPlan("jobs")  # two stages: intermediate runs, then the targets on them
    good = plan.add("intermediate", "good", None, value=20)
    bad = plan.add("intermediate", "bad", None, fail=True)
    plan.add("target", "ok", good, value=300)
    plan.add("target", "broken", good, fail=True)
    plan.add("target", "after-bad", bad)
    summary = S.sweep(plan, tmp_path, executor="submitit-local", workers=2, notebooks_dir=NOTEBOOKS)
    status = {o.run_id.rsplit("-", 1)[0]: o for o in summary.outcomes}
    assert {k: o.status for k, o in status.items()} == {
        "good": "done", "bad": "failed", "ok": "done", "broken": "failed", "after-bad": "skipped"}
    for name in ("good", "ok"):
        o = status[name]
        assert o.job_id and (Path(o.run_dir) / DONE).is_file() and (Path(o.run_dir) / HTML).is_file()
        assert (tmp_path / "slurm" / "jobs" / o.job_id / f"{o.job_id}_0_result.pkl").is_file()
    assert json.loads((Path(status["ok"].run_dir) / METRICS).read_text())["value"] == 320
    assert json.loads((Path(status["broken"].run_dir) / FAILED).read_text())["error"].startswith("ValueError")
    assert "raise ValueError" in status["broken"].last_cell
    assert status["after-bad"].error.startswith("upstream failed: intermediate run bad-")
    summary = S.sweep(plan, tmp_path, executor="submitit-local", notebooks_dir=NOTEBOOKS, quiet=True)
    assert sum(o.status == O.CACHED for o in summary.outcomes) == 2  # finished runs are not submitted again


@pytest.mark.slow
def test_preempted_job_is_requeued_and_the_run_resumes(tmp_path):
    """The job's time runs out mid-notebook: submitit signals it, calls RunJob.checkpoint()
    and requeues it; the rerun finds the notebook's checkpoint in the run folder."""
    plan = toyplan.flat_plan(1, sleep_s=300.0, name="preempt")
    # the signal comes 20 s into each try: time for the rerun to start a kernel and finish on a busy machine
    plan.params = {"sweep": {"slurm": {"timeout_min": 0.75, "signal_delay_s": 25}}}
    summary = S.sweep(plan, tmp_path, executor="submitit-local", notebooks_dir=NOTEBOOKS, quiet=True)
    (o,) = summary.outcomes
    assert o.status == O.DONE_NOW, o
    run_dir = Path(o.run_dir)
    assert len((run_dir / "executions.log").read_text().splitlines()) >= 2  # started, preempted, started again
    assert (run_dir / "checkpoint.txt").is_file() and "resumed from" in (run_dir / HTML).read_text()
    log = next((tmp_path / "slurm" / "preempt" / o.job_id).glob("*_log.out")).read_text()
    assert re.search(r"Caught signal SIGUSR2", log) and "Requeued job" in log and "Calling checkpoint method" in log
