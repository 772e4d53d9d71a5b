"""Runs as submitit jobs: the Slurm parameter mapping and submission (sbatch scripts
rendered and handed to a recording stand-in for `sbatch`, since no cluster is reachable),
and the job path run for real by submitit's LocalExecutor, preemption included."""
from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

import pytest

from xfer_nb import executors as E
from xfer_nb import sweep as S, notebook_runner as R, outcomes as O, study as St
from xfer_nb.runs import DONE, FAILED, HTML, METRICS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "tests" / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import toyplan  # noqa: E402

R.fast_jupyter_imports()

SLURM = {"partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "timeout_min": 720,
         "account": "nlp", "array_parallelism": 16, "setup": ["module load cuda/12.4"],
         "additional_parameters": {"mail-type": "END"},
         "stages": {"prepare": {"gpus_per_node": 0, "mem_gb": 16, "timeout_min": 30}}}


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """`srun`, `sbatch` and `squeue` stand-ins on PATH: sbatch keeps each script it is
    given and answers like Slurm; squeue prints the lines of `squeue.txt`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f"#!{sys.executable}\nimport pathlib, shutil, sys\n"
        f"d = pathlib.Path({str(bin_dir)!r})\n"
        "n = int((d / 'count').read_text()) + 1 if (d / 'count').exists() else 101\n"
        "(d / 'count').write_text(str(n))\n"
        "shutil.copy(sys.argv[1], d / f'sbatch-{n}.sh')\n"
        "print(f'Submitted batch job {n}')\n")
    (bin_dir / "squeue").write_text(
        f"#!{sys.executable}\nimport pathlib, sys\n"
        f"p = pathlib.Path({str(bin_dir)!r}) / 'squeue.txt'\n"
        "(pathlib.Path(p.parent, 'squeue-args.txt')).write_text(' '.join(sys.argv[1:]))\n"
        "print(p.read_text() if p.exists() else '', end='')\n")
    for name in ("srun", "sbatch", "squeue"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    return bin_dir


def scripts(bin_dir: Path) -> dict[str, str]:
    return {p.stem.split("-")[1]: p.read_text() for p in sorted(bin_dir.glob("sbatch-*.sh"))}


def test_slurm_settings_map_to_sbatch_flags(fake_slurm, tmp_path):
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


def test_slurm_submits_dependent_arrays_and_does_not_resubmit_queued_runs(fake_slurm, tmp_path):
    plan = toyplan.chain_plan()
    plan.params = {"sweep": {"executor": "slurm", "slurm": SLURM}}
    outputs = tmp_path / "out"
    summary = S.sweep(plan, outputs, executor="slurm", notebooks_dir=NOTEBOOKS)
    assert summary.ok and [o.status for o in summary.outcomes] == [O.SUBMITTED] * 5
    job = {o.run_id.rsplit("-", 1)[0]: o.job_id for o in summary.outcomes}
    sent = scripts(fake_slurm)
    assert len(sent) == 4  # prepare, intermediate, the array of 2 targets after it, the baseline
    assert job["p"] == "101" and job["i"] == "102"
    assert job["t-value"] == "103_0" and job["t-text"] == "103_1" and job["baseline"] == "104"
    assert "--dependency" not in sent["101"] and "--gpus-per-node" not in sent["101"]
    assert "#SBATCH --dependency=afterok:101\n" in sent["102"] and "#SBATCH --gpus-per-node=1\n" in sent["102"]
    assert "#SBATCH --array=0-1%2\n" in sent["103"] and "#SBATCH --dependency=afterok:102\n" in sent["103"]
    assert "--dependency" not in sent["104"] and "--array" not in sent["104"]
    assert all("#SBATCH --partition=gpu\n" in s and "submitit.core._submit" in s for s in sent.values())
    record = json.loads((outputs / "slurm" / "chain" / "submitted.json").read_text())
    assert record == {o.run_id: o.job_id for o in summary.outcomes}
    # the job callables were pickled for the cluster: each is a RunJob for its run
    import cloudpickle  # noqa: F401 (submitit's pickler)
    pkl = next((outputs / "slurm" / "chain" / "102").glob("*_submitted.pkl"))
    delayed = pickle.loads(pkl.read_bytes())
    assert isinstance(delayed.function, E.RunJob) and delayed.function.spec == plan.stages["intermediate"][0]

    # still queued (squeue lists 101 and the target array): not submitted again; the
    # runs that are no longer queued are, after the queued upstream job
    (fake_slurm / "squeue.txt").write_text("101\n103_[0-1%2]\n")
    summary = S.sweep(plan, outputs, executor="slurm", notebooks_dir=NOTEBOOKS, quiet=True)
    job2 = {o.run_id.rsplit("-", 1)[0]: o.job_id for o in summary.outcomes}
    assert "--jobs=101,102,103,104" in (fake_slurm / "squeue-args.txt").read_text()
    assert job2["p"] == "101" and job2["t-value"] == "103_0" and job2["t-text"] == "103_1"
    assert job2["i"] == "105" and job2["baseline"] == "106"
    assert "#SBATCH --dependency=afterok:101\n" in scripts(fake_slurm)["105"]

    # study: the analysis notebook as one job after every run's job (afterany)
    (fake_slurm / "squeue.txt").write_text("101\n103\n105\n106\n")
    params_file = tmp_path / "chain.yaml"
    params_file.write_text("name: chain\n")
    summary, report = St.study(params_file, outputs, plan=plan, executor="slurm", notebooks_dir=NOTEBOOKS)
    analysis = scripts(fake_slurm)["107"]
    assert report is None and len(scripts(fake_slurm)) == 7
    assert "#SBATCH --dependency=afterany:101:103_0:103_1:105:106\n" in analysis
    assert "#SBATCH --job-name=xfer-analysis\n" in analysis and "--gpus-per-node" not in analysis


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
    plan.params = {"sweep": {"slurm": {"timeout_min": 0.5, "signal_delay_s": 19}}}  # signal after 11 s
    summary = S.sweep(plan, tmp_path, executor="submitit-local", notebooks_dir=NOTEBOOKS, quiet=True)
    (o,) = summary.outcomes
    assert o.status == O.DONE_NOW, o
    run_dir = Path(o.run_dir)
    assert len((run_dir / "executions.log").read_text().splitlines()) >= 2  # started, preempted, started again
    assert (run_dir / "checkpoint.txt").is_file() and "resumed from" in (run_dir / HTML).read_text()
    log = next((tmp_path / "slurm" / "preempt" / o.job_id).glob("*_log.out")).read_text()
    assert re.search(r"Caught signal SIGUSR2", log) and "Requeued job" in log and "Calling checkpoint method" in log
