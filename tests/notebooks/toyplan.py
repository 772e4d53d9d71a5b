"""Toy plans for the sweep tests, over the toy stage notebooks in this folder.

A plan here has what `xfer_nb.sweep` uses of `grid.Plan` (name, params, stages,
all_specs) and RunSpecs whose configs are the toy notebooks' parameters (value, text,
fail, sleep_s). Also a command line, so tests can run a sweep in a subprocess:

    python tests/notebooks/toyplan.py PLAN OUTPUTS [--workers N] [--sleep S]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xfer_nb.runs import RunSpec

NOTEBOOKS = Path(__file__).resolve().parent
STAGES = ("prepare", "intermediate", "target")
NASTY = 'x"; import os; os.system("touch PWNED") #\n\'\'\' \\ é ${HOME} {run_dir}'


@dataclass
class ToyPlan:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, list[RunSpec]] = field(default_factory=lambda: {s: [] for s in STAGES})

    def all_specs(self) -> list[RunSpec]:
        return [s for stage in STAGES for s in self.stages[stage]]

    def add(self, stage: str, label: str, upstream: RunSpec | None = None, **config: Any) -> RunSpec:
        cfg = {"value": 1, "text": "", "fail": False, "sleep_s": 0.0, **config}
        spec = RunSpec(stage, cfg, {upstream.stage: upstream.run_id} if upstream else {}, label)
        self.stages[stage].append(spec)
        return spec


def chain_plan(sleep_s: float = 0.0, name: str = "chain") -> ToyPlan:
    """prepare → intermediate → two targets, plus a baseline target (5 runs, all succeed)."""
    plan = ToyPlan(name)
    p = plan.add("prepare", "p", value=1, sleep_s=sleep_s)
    i = plan.add("intermediate", "i", p, value=10, sleep_s=sleep_s)
    plan.add("target", "t-value", i, value=100, sleep_s=sleep_s)
    plan.add("target", "t-text", i, value=200, text=NASTY, sleep_s=sleep_s)
    plan.add("target", "baseline", None, value=1000, sleep_s=sleep_s)
    return plan


def failing_plan() -> ToyPlan:
    """One intermediate run and one target run fail: their downstream is skipped, the rest runs."""
    plan = ToyPlan("failing")
    p = plan.add("prepare", "p", value=2)
    good = plan.add("intermediate", "good", p, value=20)
    bad = plan.add("intermediate", "bad", p, value=30, fail=True)
    plan.add("target", "ok", good, value=300)
    plan.add("target", "broken", good, value=400, fail=True)
    plan.add("target", "after-bad", bad, value=500)
    return plan


def flat_plan(n: int = 4, sleep_s: float = 0.0, name: str = "flat") -> ToyPlan:
    """n independent target runs."""
    plan = ToyPlan(name)
    for k in range(n):
        plan.add("target", f"flat{k}", None, value=k, sleep_s=sleep_s)
    return plan


PLANS = {"chain": chain_plan, "failing": failing_plan, "flat": flat_plan}


def main(argv: list[str] | None = None) -> int:
    from xfer_nb.notebook_runner import fast_jupyter_imports
    from xfer_nb.sweep import sweep

    fast_jupyter_imports()  # as the xfer-nb command does

    ap = argparse.ArgumentParser()
    ap.add_argument("plan", choices=sorted(PLANS))
    ap.add_argument("outputs")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sleep", type=float, default=0.0)
    args = ap.parse_args(argv)
    plan = PLANS[args.plan]() if args.plan == "failing" else PLANS[args.plan](sleep_s=args.sleep)
    summary = sweep(plan, args.outputs, workers=args.workers, notebooks_dir=NOTEBOOKS)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
