"""Runs as cluster jobs through submitit: Slurm job arrays, with stage dependencies and
requeue after preemption; the same job path on this machine through submitit's
LocalExecutor (cluster="local", used by the tests).

The params file's `sweep.slurm` section sets the jobs' resources, for every stage and
per stage (the stage's keys win):

    sweep:
      executor: slurm
      slurm:
        partition: gpu            # sbatch --partition
        gpus_per_node: 1          # --gpus-per-node (0: none)
        cpus_per_task: 8          # --cpus-per-task; also the kernel's thread count
        mem_gb: 64                # --mem
        timeout_min: 720          # --time; a job is requeued (max_num_timeout times) when it runs out
        account: null             # --account
        qos: null                 # --qos
        constraint: null          # --constraint (e.g. a100)
        array_parallelism: 64     # at most this many tasks of one array at once
        setup: []                 # shell lines before the job (e.g. "module load cuda")
        additional_parameters: {} # any other sbatch option, e.g. {mail-type: END}
        max_num_timeout: 3        # requeues after timeouts (preemptions always requeue)
        stages:
          prepare: {timeout_min: 60}   # prepare and analysis get no GPU unless a stage entry asks

Submission: per stage, one job array per group of runs that wait on the same upstream
jobs (`executor.batch()`); the group's array carries `--dependency=afterok:<upstream
jobs>` and `--kill-on-invalid-dep=yes`. Runs whose upstream is already done form one
array with no dependency. A run's job id is kept in `<outputs>/slurm/<plan>/submitted.json`;
a later `xfer-nb sweep --executor slurm` does not resubmit a run whose job is still in
`squeue`. Each job runs `notebook_runner.run_spec` (one papermill execution); when Slurm preempts
or times it out, submitit calls `RunJob.checkpoint()`, which requeues the same job: the
run folder has no DONE.json, so the requeued job runs the notebook again and the notebook
resumes from the checkpoints in its run folder. A job requeued from outside (`scontrol
requeue <jobid>`) is ended by Slurm (SIGTERM, which submitit ignores, then SIGKILL) and
rerun the same way; the jobs that wait on it (afterok) wait for the rerun.

Each job runs `sys.executable` (the venv the `xfer-nb` command runs from; `sweep.slurm.python`
overrides it) with the submitting shell's environment (sbatch's default, --export=ALL), so it
finds that venv's `xfer-nb` kernel. tests/test_slurm.py runs the smoke study through a real
one-node Slurm (tests/slurm_cluster.py) and compares it with the local executor.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from xfer_nb import io
from xfer_nb.runs import RunSpec, is_done, slug
from xfer_nb.notebook_runner import KERNEL_NAME, cpu_count, fast_jupyter_imports, reuse_outcomes, run_spec
from xfer_nb.outcomes import FAILED_, SKIPPED, SUBMITTED, Outcome
from xfer_nb.runs import STAGE_ORDER
from xfer_nb.analysis_run import run_analysis
from xfer_nb.grid import load_plan, sweep_settings

SLURM_KEYS = ("partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "account", "qos",
              "constraint", "array_parallelism", "setup", "additional_parameters", "max_num_timeout", "stages",
              "signal_delay_s", "python")
SLURM_DEFAULTS = {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 32, "timeout_min": 240}
# Data selection and the analysis need no GPU, whatever the section's gpus_per_node says
# (a `stages.<stage>` entry still overrides this).
SLURM_STAGE_DEFAULTS = {"prepare": {"gpus_per_node": 0}, "analysis": {"gpus_per_node": 0}}


class RunFailed(RuntimeError):
    """Raised by a Slurm job whose run did not finish, so sacct shows it FAILED and the
    jobs that depend on it (afterok) are cancelled."""


def slurm_settings(params: dict[str, Any] | None, stage: str) -> dict[str, Any]:
    """The `sweep.slurm` settings for one stage: SLURM_DEFAULTS < the section <
    SLURM_STAGE_DEFAULTS (no GPU for prepare/analysis) < section.stages.<stage>."""
    section = ((params or {}).get("sweep") or {}).get("slurm") or {}
    if not isinstance(section, dict):
        raise ValueError(f"sweep.slurm: must be a mapping, got {section!r}")
    unknown = sorted(set(section) - set(SLURM_KEYS))
    if unknown:
        raise ValueError(f"sweep.slurm: unknown key(s) {unknown}; allowed: {list(SLURM_KEYS)}")
    stages = section.get("stages") or {}
    bad = sorted(set(stages) - {*STAGE_ORDER, "analysis"})
    if bad:
        raise ValueError(f"sweep.slurm.stages: unknown stage(s) {bad}; stages: {[*STAGE_ORDER, 'analysis']}")
    for name, over in stages.items():
        wrong = sorted(set(over or {}) - set(SLURM_KEYS) - {"stages"}) if isinstance(over, dict) else ["(not a mapping)"]
        if wrong or "stages" in (over or {}):
            raise ValueError(f"sweep.slurm.stages.{name}: unknown key(s) {wrong or ['stages']}")
    out = {**SLURM_DEFAULTS, **{k: v for k, v in section.items() if k != "stages"},
           **SLURM_STAGE_DEFAULTS.get(stage, {}), **(stages.get(stage) or {})}
    for key in ("gpus_per_node", "cpus_per_task", "array_parallelism", "max_num_timeout", "signal_delay_s"):
        if key in out and out[key] is not None and (not isinstance(out[key], int) or isinstance(out[key], bool)
                                                    or out[key] < 0):
            raise ValueError(f"sweep.slurm: {key}={out[key]!r} must be a non-negative integer")
    for key in ("mem_gb", "timeout_min"):
        if not isinstance(out.get(key), (int, float)) or isinstance(out[key], bool) or out[key] <= 0:
            raise ValueError(f"sweep.slurm: {key}={out.get(key)!r} must be a positive number")
    return out


def executor_parameters(settings: dict[str, Any], *, name: str, dependency: list[str] | None = None) -> dict[str, Any]:
    """Map a stage's slurm settings to `submitit.AutoExecutor.update_parameters` keywords."""
    params: dict[str, Any] = {"name": name, "timeout_min": math.ceil(settings["timeout_min"]),
                              "mem_gb": settings["mem_gb"], "cpus_per_task": int(settings["cpus_per_task"]),
                              "nodes": 1, "tasks_per_node": 1}
    if settings.get("gpus_per_node"):
        params["gpus_per_node"] = int(settings["gpus_per_node"])
    for key in ("partition", "account", "qos", "constraint", "array_parallelism", "setup", "signal_delay_s"):
        if settings.get(key) not in (None, [], ""):
            params[f"slurm_{key}"] = settings[key]
    extra = dict(settings.get("additional_parameters") or {})
    if dependency:
        extra["dependency"] = "afterok:" + ":".join(dependency)
        extra["kill-on-invalid-dep"] = "yes"
    if extra:
        params["slurm_additional_parameters"] = extra
    return params


class RunJob:
    """One run as a submitit job. Checkpointable: on preemption/timeout submitit calls
    `checkpoint()` and requeues the returned DelayedSubmission of this same job."""

    def __init__(self, spec: RunSpec, outputs: str, *, kernel_name: str = KERNEL_NAME,
                 notebooks_dir: str | None = None, force: bool = False, raise_on_failure: bool = True):
        self.spec, self.outputs = spec, str(outputs)
        self.kernel_name, self.notebooks_dir = kernel_name, notebooks_dir
        self.force, self.raise_on_failure = force, raise_on_failure

    def threads(self) -> int:
        return int(os.environ.get("SLURM_CPUS_PER_TASK") or cpu_count())

    def __call__(self) -> dict[str, Any]:
        fast_jupyter_imports()
        outcome = run_spec(self.spec, self.outputs, force=self.force, kernel_name=self.kernel_name,
                           notebooks_dir=self.notebooks_dir, threads=self.threads())
        print(json.dumps(outcome.as_dict()), flush=True)
        if self.raise_on_failure and not outcome.ok:
            raise RunFailed(f"{outcome.stage}/{outcome.run_id} {outcome.status}: {outcome.error}")
        return outcome.as_dict()

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.helpers import DelayedSubmission

        # The run folder has no DONE.json: the requeued job runs the notebook again and
        # the notebook resumes from its own checkpoints. Never force on a requeue.
        again = RunJob(self.spec, self.outputs, kernel_name=self.kernel_name, notebooks_dir=self.notebooks_dir,
                       force=False, raise_on_failure=self.raise_on_failure)
        return DelayedSubmission(again)

    def __repr__(self) -> str:
        return f"RunJob({self.spec.stage}/{self.spec.run_id})"


class AnalysisJob:
    """The study's analysis notebook as a job after all the runs' jobs (afterany)."""

    def __init__(self, params_file: str, outputs: str, kernel_name: str = KERNEL_NAME, notebooks_dir: str | None = None):
        self.params_file, self.outputs = str(params_file), str(outputs)
        self.kernel_name, self.notebooks_dir = kernel_name, notebooks_dir

    def __call__(self) -> dict[str, Any]:
        fast_jupyter_imports()
        plan = load_plan(self.params_file)
        outcome, report = run_analysis(plan, self.params_file, self.outputs, kernel_name=self.kernel_name,
                                       notebooks_dir=self.notebooks_dir)
        print(f"report: {report}" if report else f"no report: {outcome.status} ({outcome.error})", flush=True)
        return {**outcome.as_dict(), "report": str(report) if report else None}

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(self)


def jobs_folder(outputs: Path, plan_name: str) -> Path:
    return Path(outputs) / "slurm" / (slug(plan_name) or "sweep")


def _make_executor(folder: Path, cluster: str, settings: dict[str, Any], parameters: dict[str, Any]):
    import submitit

    max_num_timeout = int(settings.get("max_num_timeout", 3))
    if cluster == "slurm":
        kwargs: dict[str, Any] = {"slurm_max_num_timeout": max_num_timeout}
        if settings.get("python"):
            kwargs["slurm_python"] = settings["python"]
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", **kwargs)
        executor.update_parameters(**parameters)
        return executor
    # This machine: submitit's LocalExecutor runs each job as a local process, with the
    # same pickled job, signal handling and requeue-on-timeout as on Slurm.
    executor = submitit.LocalExecutor(folder=folder / "%j", max_num_timeout=max_num_timeout)
    local = {"timeout_min": settings["timeout_min"]}
    if settings.get("signal_delay_s") is not None:
        local["signal_delay_s"] = settings["signal_delay_s"]
    executor.update_parameters(**local)
    return executor


def _active_jobs(job_ids: list[str]) -> set[str]:
    """Array/job ids among `job_ids` that squeue still lists (pending or running)."""
    if not job_ids:
        return set()
    bases = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["squeue", "--noheader", "--format=%i", "--jobs=" + ",".join(bases)],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return set()
    listed = {line.strip().split("_")[0] for line in out.stdout.splitlines() if line.strip()}
    return {j for j in job_ids if j.split("_")[0] in listed}


def submit_runs(plan: Any, specs: list[RunSpec], outputs: Path, *, cluster: str = "slurm", workers: int = 1,
                force: bool = False, kernel_name: str = KERNEL_NAME, notebooks_dir: str | os.PathLike | None = None
                ) -> list[Outcome]:
    """Submit the runs that are not done. cluster="slurm": all stages at once, dependent
    arrays, return at once (status "submitted"). cluster="local": stage by stage on this
    machine, `workers` jobs at a time, waiting for each stage (status done/failed/...)."""
    outputs = Path(outputs)
    params = getattr(plan, "params", None) or {}
    sweep_settings(plan)
    folder = jobs_folder(outputs, getattr(plan, "name", "sweep"))
    folder.mkdir(parents=True, exist_ok=True)
    nb_dir = str(Path(notebooks_dir).resolve()) if notebooks_dir else None
    outcomes, todo = reuse_outcomes(specs, outputs, force)
    in_sweep = {s.run_id for s in todo}
    record_path = folder / "submitted.json"
    submitted: dict[str, str] = json.loads(record_path.read_text()) if record_path.is_file() else {}
    active = _active_jobs([submitted[s.run_id] for s in todo if s.run_id in submitted]) if cluster == "slurm" else set()
    job_of: dict[str, str] = {}   # run id -> job id this run (or its queued earlier job) has

    for stage in STAGE_ORDER:
        stage_specs = [s for s in todo if s.stage == stage]
        if not stage_specs:
            continue
        settings = slurm_settings(params, stage)
        groups: dict[tuple[str, ...], list[RunSpec]] = {}
        for spec in stage_specs:
            if cluster == "slurm" and submitted.get(spec.run_id) in active:
                job_of[spec.run_id] = submitted[spec.run_id]
                outcomes[spec.run_id] = Outcome(spec.stage, spec.run_id, SUBMITTED, str(spec.dir(outputs)),
                                                job_id=submitted[spec.run_id], error=None)
                continue
            deps, why = [], None
            for up_stage, rid in spec.upstream.items():
                if rid in job_of:
                    deps.append(job_of[rid])
                elif rid in outcomes and not outcomes[rid].ok:
                    why = f"upstream failed: {up_stage} run {rid} is {outcomes[rid].status}"
                elif not is_done(outputs / "runs" / up_stage / rid) and rid not in in_sweep:
                    why = f"upstream {up_stage} run {rid} is not done (and not part of this sweep)"
                elif not is_done(outputs / "runs" / up_stage / rid) and cluster != "slurm":
                    why = f"upstream {up_stage} run {rid} did not finish"
            if why:
                outcomes[spec.run_id] = Outcome(spec.stage, spec.run_id, SKIPPED, str(spec.dir(outputs)), error=why)
                continue
            groups.setdefault(tuple(sorted(deps)), []).append(spec)
        for deps, group in groups.items():
            params_ = executor_parameters(settings, name=f"xfer-{stage}", dependency=list(deps))
            chunks = [group] if cluster == "slurm" else [group[i:i + workers] for i in range(0, len(group), workers)]
            for chunk in chunks:
                executor = _make_executor(folder, cluster, settings, params_)
                jobs_ = []
                with executor.batch():
                    for spec in chunk:
                        job = RunJob(spec, str(outputs), kernel_name=kernel_name, notebooks_dir=nb_dir, force=force,
                                     raise_on_failure=cluster == "slurm")
                        jobs_.append(executor.submit(job))
                for spec, job in zip(chunk, jobs_):
                    job_of[spec.run_id] = str(job.job_id)
                    submitted[spec.run_id] = str(job.job_id)
                    if cluster == "slurm":
                        outcomes[spec.run_id] = Outcome(spec.stage, spec.run_id, SUBMITTED, str(spec.dir(outputs)),
                                                        job_id=str(job.job_id))
                if cluster == "slurm":
                    print(f"[slurm] {stage}: submitted {len(chunk)} runs as job(s) "
                          f"{', '.join(sorted({str(j.job_id).split('_')[0] for j in jobs_}))}"
                          + (f" after {':'.join(deps)}" if deps else ""), flush=True)
                    continue
                for spec, job in zip(chunk, jobs_):
                    outcomes[spec.run_id] = _local_result(spec, job, outputs)
                    job_of.pop(spec.run_id, None)
        io.write_json(record_path, submitted)
    return [outcomes[s.run_id] for s in specs]


def _local_result(spec: RunSpec, job: Any, outputs: Path) -> Outcome:
    try:
        result = job.result()
    except Exception as err:  # the job process itself failed
        return Outcome(spec.stage, spec.run_id, FAILED_, str(spec.dir(outputs)), job_id=str(job.job_id),
                       error=f"job {job.job_id} failed: {str(err).strip().splitlines()[-1][:300]}")
    fields = {k: v for k, v in result.items() if k in Outcome.__dataclass_fields__}
    return Outcome(**{**fields, "job_id": str(job.job_id)})


def submit_analysis(plan: Any, params_file: str | os.PathLike, outputs: Path, summary: Any, *,
                    kernel_name: str = KERNEL_NAME, notebooks_dir: str | os.PathLike | None = None) -> str:
    """Submit the analysis notebook as one Slurm job after every job of this sweep (afterany)."""
    settings = slurm_settings(getattr(plan, "params", None), "analysis")
    deps = sorted({o.job_id for o in summary.outcomes if o.job_id})
    params = executor_parameters(settings, name="xfer-analysis")
    if deps:
        params.setdefault("slurm_additional_parameters", {})["dependency"] = "afterany:" + ":".join(deps)
    executor = _make_executor(jobs_folder(Path(outputs), plan.name), "slurm", settings, params)
    job = executor.submit(AnalysisJob(str(Path(params_file).resolve()), str(outputs), kernel_name,
                                      str(Path(notebooks_dir).resolve()) if notebooks_dir else None))
    return str(job.job_id)
