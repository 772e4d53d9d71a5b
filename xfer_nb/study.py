"""A study = `sweep` of a params file's plan + the analysis notebook over the whole plan,
rendered as the report (`analysis_run`)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from xfer_nb.analysis_run import run_analysis
from xfer_nb.grid import load_plan, sweep_settings
from xfer_nb.notebook_runner import KERNEL_NAME
from xfer_nb.outcomes import Summary
from xfer_nb.paths import output_path, outputs_dir
from xfer_nb.runs import slug
from xfer_nb.sweep import sweep


def _slug(name: str) -> str:
    return slug(name) or "study"


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
