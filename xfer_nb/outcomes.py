"""What happened to each run of a sweep: one `Outcome` per run and the sweep's
`Summary` table. The lowest layer of the runner: it imports only the run-folder layout."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xfer_nb.runs import HTML, STAGE_ORDER

# Outcome statuses.
DONE_NOW = "done"            # executed by this sweep
CACHED = "cached"            # already done before: not started again
FAILED_ = "failed"           # the notebook raised, or its kernel could not start (twice)
SKIPPED = "skipped"          # its upstream run failed or is not done
CONFLICT = "conflict"        # folder locked by another sweep, or its config does not match its id
SUBMITTED = "submitted"      # handed to Slurm; see the job id
OK_STATUSES = (DONE_NOW, CACHED, SUBMITTED)
BAD_STATUSES = (FAILED_, SKIPPED, CONFLICT)



@dataclass
class Outcome:
    """What happened to one run in one sweep."""

    stage: str
    run_id: str
    status: str
    run_dir: str
    seconds: float = 0.0
    error: str | None = None
    last_cell: str | None = None     # the cell that raised, as "cell N (In [k]): source"
    cell_index: int | None = None
    attempts: int = 0                # kernel starts used
    job_id: str | None = None        # Slurm / submitit job
    redone: str | None = None        # why a finished run was run again (its folder failed the DONE.json check)

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Summary:
    """All outcomes of one sweep, with a printable table."""

    name: str
    outputs: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    executor: str = "local"

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def by_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    def counts(self) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for o in self.outcomes:
            out.setdefault(o.stage, Counter())[o.status] += 1
        return out

    def table(self) -> str:
        cols = [DONE_NOW, CACHED, SUBMITTED, FAILED_, SKIPPED, CONFLICT]
        cols = [c for c in cols if c not in (SUBMITTED,) or self.by_status(SUBMITTED)]
        counts = self.counts()
        stages = [s for s in (*STAGE_ORDER, "analysis") if s in counts] + sorted(set(counts) - set(STAGE_ORDER) - {"analysis"})
        head = f"{'stage':<14}{'runs':>6}" + "".join(f"{c:>11}" for c in cols)
        lines = [f"sweep {self.name!r}: {len(self.outcomes)} runs in {self.seconds:.1f} s "
                 f"({'all ok' if self.ok else f'{len(self.failed)} not ok'}); outputs {self.outputs}", head,
                 "-" * len(head)]
        total: Counter = Counter()
        for stage in stages:
            c = counts[stage]
            total.update(c)
            lines.append(f"{stage:<14}{sum(c.values()):>6}" + "".join(f"{c[k]:>11}" for k in cols))
        lines.append(f"{'total':<14}{sum(total.values()):>6}" + "".join(f"{total[k]:>11}" for k in cols))
        for o in self.outcomes:
            if o.redone:
                lines.append(f"\nREDONE {o.redone}")
        for o in self.failed:
            lines.append(f"\n{o.status.upper()} {o.stage}/{o.run_id}: {o.error}")
            if o.last_cell:
                lines.append(f"  in {o.last_cell.splitlines()[0][:200]}")
            if o.status == FAILED_ and (Path(o.run_dir) / HTML).is_file():
                lines.append(f"  rendered notebook: {Path(o.run_dir) / HTML}")
        return "\n".join(lines)


SweepSummary = Summary
