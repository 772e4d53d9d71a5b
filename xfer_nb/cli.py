"""The `xfer-nb` command. Each subcommand is a thin wrapper over one package function;
imports are lazy so `xfer-nb --help` and `xfer-nb data` start fast."""
from __future__ import annotations

import argparse
import sys


def _workers(text: str) -> int:
    """--workers: a whole number >= 1 (0 would be silently ignored otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers {text!r} is not a whole number; use 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--workers {value} is not allowed; use 1 or more (1 runs one notebook at a time)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xfer-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="list every task's splits, languages and sizes, or show examples")
    p.add_argument("task", nargs="?")
    p.add_argument("language", nargs="?")
    p.add_argument("split", nargs="?")
    p.add_argument("-n", "--num-examples", type=int, default=3)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--source", default="local", choices=["local", "hub"])

    def run_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("params", help="params YAML file (e.g. params/study.yaml)")
        p.add_argument("--workers", type=_workers, default=None,
                       help="notebooks run side by side (default: the params file's sweep.workers, else 1)")
        p.add_argument("--executor", choices=["local", "slurm"], default=None,
                       help="local processes, or Slurm job arrays via submitit (default: sweep.executor, else local)")
        p.add_argument("--force", action="store_true", help="rerun finished runs too")
        p.add_argument("--outputs", default=None, help="outputs folder (default: $XFER_NB_OUTPUTS or ./outputs)")
        p.add_argument("--notebooks", default=None, help="folder of the stage notebooks (default: notebooks/)")

    p = sub.add_parser("sweep", help="run every run of a params file's grid that is not done yet")
    run_args(p)
    p.add_argument("--only", default=None, choices=["prepare", "intermediate", "target"],
                   help="run one stage only (its upstream runs must be done)")

    p = sub.add_parser("study", help="sweep, then the analysis notebook over the grid; print where the report is")
    run_args(p)

    p = sub.add_parser("plan", help="what a params file's grid holds, what is done, and what the rest costs")
    p.add_argument("params")
    p.add_argument("--outputs", default=None)

    p = sub.add_parser("report", help="rebuild the index of runs and the study report from finished runs (no training)")
    p.add_argument("params")
    p.add_argument("--outputs", default=None)
    p.add_argument("--notebooks", default=None, help="folder of the analysis notebook (default: notebooks/)")

    p = sub.add_parser("lab", help="JupyterLab on the notebooks, on 127.0.0.1 with a token")
    p.add_argument("--port", type=int, default=8888)

    args = parser.parse_args(argv)
    try:
        if args.command == "data":
            from xfer_nb import data
            return data.cli_data(args)
        if args.command in ("sweep", "study", "plan"):
            return _run_command(args)
        if args.command == "report":
            return _report(args)
        if args.command == "lab":
            from xfer_nb import lab
            return lab.lab(args.port)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"xfer-nb {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xfer-nb {args.command}: interrupted; run the same command again to resume "
              "(finished runs are kept)", file=sys.stderr)
        return 130
    return 0


def _run_command(args: argparse.Namespace) -> int:
    from xfer_nb import estimates, grid, study, sweep
    from xfer_nb.notebook_runner import fast_jupyter_imports

    fast_jupyter_imports()
    from xfer_nb.paths import outputs_dir

    plan = grid.load_plan(args.params, for_running=args.command != "plan", outputs=outputs_dir(args.outputs))
    for note in plan.notes:  # a value given twice: which one won (xfer_nb.grid's rule)
        print(f"xfer-nb {args.command}: note: {note}", file=sys.stderr)
    if args.command == "plan":
        print(estimates.describe_plan(plan, args.outputs))
        return 0
    settings = grid.sweep_settings(plan)
    workers = args.workers if args.workers is not None else settings.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"sweep.workers={workers!r} in {args.params} is not allowed; use a whole number >= 1")
    executor = args.executor or settings.get("executor", "local")
    if args.command == "study":
        summary, _ = study.study(args.params, args.outputs, workers=workers, executor=executor, force=args.force,
                                 notebooks_dir=args.notebooks, plan=plan)
    else:
        summary = sweep.sweep(plan, args.outputs, workers=workers, executor=executor, force=args.force,
                              only=args.only, notebooks_dir=args.notebooks)
    return 0 if summary.ok else 1


def _report(args: argparse.Namespace) -> int:
    """Re-run only the analysis notebook over the finished runs, then rewrite the index."""
    import time

    from xfer_nb import analysis_run, grid, index_page, notebook_runner
    from xfer_nb.paths import outputs_dir
    from xfer_nb.runs import is_done

    started = time.monotonic()
    notebook_runner.fast_jupyter_imports()
    plan = grid.load_plan(args.params, for_running=False, outputs=args.outputs)
    if not any(is_done(s.dir(args.outputs)) for s in plan.stages["target"]):
        raise FileNotFoundError(f"no finished target run of {args.params} under {outputs_dir(args.outputs)}; "
                                f"run `xfer-nb study {args.params}` first")
    outcome, report = analysis_run.run_analysis(plan, args.params, args.outputs, notebooks_dir=args.notebooks, force=True)
    index = index_page.write_index(plan, args.outputs)
    print(f"index of runs: {index}")
    print(f"report: {report}" if report else f"no report: analysis {outcome.status} ({outcome.error}); see {outcome.run_dir}")
    print(f"rebuilt in {time.monotonic() - started:.1f} s")
    return 0 if report else 1


if __name__ == "__main__":
    sys.exit(main())
