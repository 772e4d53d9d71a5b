"""Run the grid on this machine: a pool of worker processes, each running one
notebook (`xfer_nb.notebook_runner.run_spec`) at a time.

`sweep` runs a whole plan, stage by stage as dependencies allow: a run starts once its
upstream run is done, a failed run makes its downstream runs "skipped: upstream failed"
while everything else goes on, and finished runs are never started again (a rerun of a
finished sweep starts no kernel). `workers > 1` runs that many notebooks side by side,
each kernel with `cores // workers` threads (OMP_NUM_THREADS / MKL_NUM_THREADS).
`--executor slurm` hands the same runs to Slurm through submitit (`xfer_nb.executors`).
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

from xfer_nb.notebook_runner import (KERNEL_NAME, THREAD_ENV, fast_jupyter_imports, reuse_outcomes,
                                     run_spec, threads_per_worker)
from xfer_nb.outcomes import BAD_STATUSES, FAILED_, SKIPPED, Outcome, Summary
from xfer_nb.paths import outputs_dir
from xfer_nb.runs import STAGE_ORDER, RunSpec, is_done

EXECUTORS = ("local", "slurm", "submitit-local")


def _specs(plan: Any, only: str | None) -> list[RunSpec]:
    specs = list(plan.all_specs())
    if only is not None:
        if only not in STAGE_ORDER:
            raise ValueError(f"--only {only!r} is not a stage; stages: {list(STAGE_ORDER)}")
        specs = [s for s in specs if s.stage == only]
    return specs



class _Progress:
    """Runs done / failed / skipped / to do: a tqdm bar on a terminal, else one line per run.
    A run skipped for its upstream is not counted as failed: `--only target` skips every
    target whose intermediate run is not done yet, and none of them failed."""

    def __init__(self, total: int, cached: int, stream=None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.total, self.cached = total, cached
        self.done = 0
        self.bad: dict[str, int] = {}  # status -> count, for each status that is not ok
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None
        if enabled is not False and tty and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=self.stream, unit="run", desc="sweep", dynamic_ncols=True)
        self._print(f"[sweep] {total} runs to do, {cached} already done")

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def started(self, spec: RunSpec) -> None:
        if self.bar is None:
            self._print(f"[sweep] start   {spec.stage}/{spec.run_id}")

    def finished(self, o: Outcome) -> None:
        if o.ok:
            self.done += 1
        else:
            self.bad[o.status] = self.bad.get(o.status, 0) + 1
        left = self.total - self.done - sum(self.bad.values())
        note = f" ({o.error})" if o.error else ""
        counts = {"done": self.done, **{s: self.bad[s] for s in BAD_STATUSES if s in self.bad}, "to do": left}
        self._print(f"[sweep] {o.status:<9} {o.stage}/{o.run_id} {o.seconds:.1f}s{note}"
                    f"  [{', '.join(f'{n} {what}' for what, n in counts.items())}]")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({what.replace(' ', ''): n for what, n in counts.items()})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _init_worker(threads: int, parent: int) -> None:
    """Pool worker: die with the sweep (a killed sweep leaves no notebook running), set
    the kernels' thread count, and import papermill/nbconvert while the pool starts."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        if os.getppid() != parent:
            os._exit(1)
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    fast_jupyter_imports()
    import nbconvert  # noqa: F401
    import papermill  # noqa: F401


def _run_in_worker(spec: RunSpec, outputs: str, kwargs: dict) -> Outcome:
    return run_spec(spec, outputs, **kwargs)


class _CleanSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not re-import the caller's __main__ (a script, a
    notebook's kernel, `python -` on stdin): the worker needs only xfer_nb."""

    @staticmethod
    def _Popen(process_obj):
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            sys.modules["__main__"] = main


class _CleanSpawnContext(multiprocessing.context.SpawnContext):
    Process = _CleanSpawnProcess


class _Pool:
    """N worker processes; a pool broken by a killed worker is replaced for the runs after."""

    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.pool = self._new()

    def _new(self):
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=_CleanSpawnContext(),
                                   initializer=_init_worker, initargs=(self.threads, os.getpid()))

    def submit(self, *args):
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self.pool.submit(_run_in_worker, *args)
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new()
            return self.pool.submit(_run_in_worker, *args)

    def shutdown(self, **kw):
        self.pool.shutdown(**kw)


class _InlineFuture:
    def __init__(self, fn, *args):
        from concurrent.futures import Future
        self.future: Future = Future()
        try:
            self.future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - passed on as the future's exception
            if not isinstance(err, Exception):
                raise
            self.future.set_exception(err)


def sweep(plan: Any, outputs: str | os.PathLike | None = None, *, workers: int = 1, executor: str = "local",
          force: bool = False, only: str | None = None, kernel_name: str = KERNEL_NAME,
          notebooks_dir: str | os.PathLike | None = None, threads: int | None = None,
          progress: bool | None = None, stream=None, quiet: bool = False) -> Summary:
    """Run every run of a plan that is not done yet; return (and print) the summary.

    `plan`: a `grid.Plan` (anything with `.name`, `.params` and `.all_specs()` in stage
    order). `workers`: notebooks run side by side (`local`), each kernel with
    `threads` (default cores // workers) threads. `executor`: "local", "slurm" (submit
    job arrays through submitit and return; see `xfer_nb.executors`) or "submitit-local"
    (the Slurm job path run on this machine by submitit's LocalExecutor). `only`: one
    stage; its upstream runs must be done already. `force`: rerun finished runs too."""
    t0 = time.monotonic()
    outputs = outputs_dir(outputs)
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not one of {list(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    specs = _specs(plan, only)
    summary = Summary(name=getattr(plan, "name", "sweep"), outputs=str(outputs), executor=executor)
    run_kwargs = dict(force=force, kernel_name=kernel_name, notebooks_dir=notebooks_dir)
    if executor != "local":
        from xfer_nb import executors
        summary.outcomes = executors.submit_runs(plan, specs, outputs, cluster="slurm" if executor == "slurm" else "local",
                                                 workers=workers, **run_kwargs)
    else:
        summary.outcomes = _sweep_local(specs, outputs, workers, threads or threads_per_worker(workers), run_kwargs,
                                        progress, stream)
    summary.seconds = round(time.monotonic() - t0, 3)
    from xfer_nb import index_page
    index_page.update(plan, outputs, summary.outcomes)   # never raises
    if not quiet:
        print(summary.table(), flush=True)
    return summary


def _sweep_local(specs: list[RunSpec], outputs: Path, workers: int, threads: int, run_kwargs: dict,
                 progress: bool | None, stream) -> list[Outcome]:
    from concurrent.futures import FIRST_COMPLETED, wait

    outcomes, todo = reuse_outcomes(specs, outputs, run_kwargs["force"])
    if not todo:
        return [outcomes[s.run_id] for s in specs]
    in_sweep = {s.run_id for s in todo}
    bar = _Progress(len(todo), len(outcomes), stream, progress)
    pending = list(todo)
    running: dict[Any, RunSpec] = {}
    pool = _Pool(min(workers, len(todo)), threads) if workers > 1 and len(todo) > 1 else None

    upstream_done: dict[str, bool] = {}  # finished upstream runs outside this sweep, checked once each

    def upstream_state(spec: RunSpec) -> tuple[str, str | None]:
        for stage, rid in spec.upstream.items():
            if rid in outcomes:
                o = outcomes[rid]
                if not o.ok:
                    return "skip", f"upstream failed: {stage} run {rid} is {o.status}"
            elif rid in in_sweep:
                return "wait", None
            elif not upstream_done.setdefault(rid, is_done(outputs / "runs" / stage / rid)):
                return "skip", f"upstream {stage} run {rid} is not done (and not part of this sweep)"
        return "ready", None

    def record(o: Outcome) -> None:
        outcomes[o.run_id] = o
        bar.finished(o)

    try:
        while pending or running:
            moved = True
            while moved:
                moved = False
                for spec in list(pending):
                    state, why = upstream_state(spec)
                    if state == "skip":
                        pending.remove(spec)
                        record(Outcome(spec.stage, spec.run_id, SKIPPED, str(spec.dir(outputs)), error=why))
                        moved = True
                    elif state == "ready" and len(running) < workers:
                        pending.remove(spec)
                        bar.started(spec)
                        args = (spec, str(outputs), {**run_kwargs, "threads": threads})
                        fut = _InlineFuture(_run_in_worker, *args).future if pool is None else pool.submit(*args)
                        running[fut] = spec
                        if pool is None:
                            break  # inline: record it before starting the next one
            if not running:
                for spec in pending:  # cannot happen with a consistent plan; never loop forever
                    record(Outcome(spec.stage, spec.run_id, SKIPPED, str(spec.dir(outputs)),
                                   error="its upstream run never became ready"))
                pending.clear()
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                spec = running.pop(fut)
                try:
                    o = fut.result()
                except Exception as err:
                    from concurrent.futures.process import BrokenProcessPool

                    if isinstance(err, BrokenProcessPool):  # a worker was killed (OOM, signal): the pool breaks
                        why = "a worker process died while this run was in flight (e.g. killed for memory); rerun to retry"
                    else:  # e.g. the outputs disk is full
                        why = "the sweep failed around this run's notebook"
                    o = Outcome(spec.stage, spec.run_id, FAILED_, str(spec.dir(outputs)),
                                error=f"{why}: {type(err).__name__}: {err}")
                record(o)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [outcomes[s.run_id] for s in specs]
