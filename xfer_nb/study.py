"""A study = `sweep` of a params file's plan + the analysis notebook over the whole plan,
rendered as the report."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from xfer_nb.notebook_runner import KERNEL_NAME, cpu_count, render_html, run_spec
from xfer_nb.outcomes import Outcome, Summary
from xfer_nb.paths import output_path, outputs_dir
from xfer_nb.runs import NOTEBOOK, RunSpec, is_done, slug
from xfer_nb.sweep import sweep, sweep_settings

def analysis_spec(plan: Any, outputs: str | os.PathLike | None = None) -> RunSpec:
    """The analysis run over a plan: its id hashes the plan and the set of finished runs,
    so a report over a partial grid is redone once more runs finish."""
    outputs = outputs_dir(outputs)
    done = sorted(s.run_id for s in plan.all_specs() if is_done(s.dir(outputs)))
    return RunSpec("analysis", {"name": plan.name, "params": plan.params, "runs_done": done}, {}, plan.name)


def run_analysis(plan: Any, params_file: str | os.PathLike, outputs: str | os.PathLike | None = None, *,
                 kernel_name: str = KERNEL_NAME, notebooks_dir: str | os.PathLike | None = None,
                 threads: int | None = None, force: bool = False) -> tuple[Outcome, Path | None]:
    """Run 04_analysis once over the plan into outputs/runs/analysis/<name>-<hash>/ and copy
    its HTML to outputs/reports/<name>.html. Returns the outcome and the report path."""
    outputs = outputs_dir(outputs)
    spec = analysis_spec(plan, outputs)
    parameters = {"outputs_dir": str(outputs), "params_file": str(Path(params_file).resolve())}
    outcome = run_spec(spec, outputs, force=force, kernel_name=kernel_name, notebooks_dir=notebooks_dir,
                       threads=threads or cpu_count(), parameters=parameters)
    executed = Path(outcome.run_dir) / NOTEBOOK
    if not outcome.ok or not executed.is_file():
        return outcome, None
    from xfer_nb.analysis import report_path  # <name>-partial.html when partial and a complete report exists
    report = report_path(outputs, plan.name)
    render_html(executed, report, hide_code=True)
    return outcome, report


def _slug(name: str) -> str:
    return slug(name) or "study"


def load_plan(params_file: str | os.PathLike, for_running: bool = True, outputs: str | os.PathLike | None = None):
    """The validated plan of a params file; `outputs`: where the data-hash cache lives."""
    from xfer_nb import grid

    return grid.expand(grid.load_params(params_file), for_running=for_running, outputs=outputs)


def study(params_file: str | os.PathLike, outputs: str | os.PathLike | None = None, *, workers: int | None = None,
          executor: str | None = None, force: bool = False, kernel_name: str = KERNEL_NAME,
          notebooks_dir: str | os.PathLike | None = None, plan: Any = None) -> tuple[Summary, Path | None]:
    """`sweep` the params file's plan, then the analysis notebook over it; print where the
    report is. With the slurm executor the analysis is a job after all the runs' jobs."""
    plan = plan if plan is not None else load_plan(params_file)
    settings = sweep_settings(plan)
    workers = workers or int(settings.get("workers", 1))
    executor = executor or settings.get("executor", "local")
    t0 = time.monotonic()
    summary = sweep(plan, outputs, workers=workers, executor=executor, force=force, kernel_name=kernel_name,
                    notebooks_dir=notebooks_dir, quiet=True)
    outputs = outputs_dir(outputs)
    if executor == "slurm":
        from xfer_nb import executors  # only sweep and study hand runs to executors
        job = executors.submit_analysis(plan, params_file, outputs, summary, kernel_name=kernel_name,
                                        notebooks_dir=notebooks_dir)
        report = output_path(outputs, "reports", f"{_slug(plan.name)}.html")
        print(summary.table(), flush=True)
        print(f"analysis job {job} will write the report to {report}", flush=True)
        return summary, None
    outcome, report = run_analysis(plan, params_file, outputs, kernel_name=kernel_name, notebooks_dir=notebooks_dir)
    from xfer_nb import index_page
    print(f"index of runs: {index_page.update(plan, outputs, summary.outcomes)}", flush=True)
    summary.outcomes.append(outcome)
    summary.seconds = round(time.monotonic() - t0, 3)
    print(summary.table(), flush=True)
    if report is not None:
        print(f"report: {report}", flush=True)
    else:
        print(f"no report: analysis {outcome.status} ({outcome.error}); see {outcome.run_dir}", flush=True)
    return summary, report
