"""The analysis notebook (04) over a plan's finished runs, rendered as the study's report.

Kept apart from `study` so that the Slurm executor's analysis job can run it without
importing the sweep that submits that job.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from xfer_nb.notebook_runner import KERNEL_NAME, cpu_count, render_html, run_spec
from xfer_nb.outcomes import Outcome
from xfer_nb.paths import outputs_dir
from xfer_nb.runs import NOTEBOOK, RunSpec, is_done


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
