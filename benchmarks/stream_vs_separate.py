"""Single pass versus separate runs: the size axis's cost and what it trains.

Reads finished runs under an outputs folder (`make study`, then `xfer-nb study
params/study-large.yaml` and `xfer-nb study params/stream-check.yaml`) and prints, as
Markdown:

1. per size and schedule: seeds, the intermediate validation score (mean and SD over
   seeds) and the wall time of one run;
2. per seed: what the whole stream sweep cost (the wall time of every size's branch run)
   against one separate run at the largest size, and the ratio (the goal is at most 1.5);
3. per size with separate runs, per seed: the validation score and the Tatoeba accuracy
   (mean over its languages) after the stream branch and after the separate run, and their
   paired difference.

Wall times are whole notebook runs (start-up, training, validation, saving), measured as the
sweep ran them (2 workers on 2 cores): the cost a user pays, not a controlled benchmark.

    python benchmarks/stream_vs_separate.py [--outputs outputs] [--task mnli]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean, stdev

from xfer_nb import io


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def intermediate_runs(root: Path, task: str) -> list[dict]:
    rows = []
    for run in sorted((root / "runs" / "intermediate").glob("*/DONE.json")):
        folder = run.parent
        cfg = _read(folder / "config.json")
        prep = _read(root / "runs" / "prepare" / cfg["upstream"]["prepare"] / "config.json")["config"]
        if prep["intermediate_task"] != task or prep["intermediate_languages"] != ["en"]:
            continue
        done = _read(run)
        rows.append({"run_id": folder.name, "schedule": cfg["config"].get("size_schedule", "separate"),
                     "size": prep["intermediate_size"], "seed": prep["seed"], "seconds": done["seconds"],
                     "validation": done.get("validation_score"), "learned": done.get("learned")})
    return rows


def tatoeba_means(root: Path) -> dict[str, float]:
    """intermediate run id -> mean Tatoeba accuracy over its languages (one target run each)."""
    out = {}
    for run in sorted((root / "runs" / "target").glob("tatoeba*/DONE.json")):
        cfg = _read(run.parent / "config.json")
        upstream = cfg.get("upstream", {}).get("intermediate")
        rows = io.read_jsonl(run.parent / "metrics.jsonl")
        scores = [r["value"] for r in rows if r.get("split") != "validation" and r["metric"] == "accuracy"]
        if upstream and scores:
            out[upstream] = mean(scores)
    return out


def _ms(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{mean(values):.1f} ± {stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def report(root: Path, task: str) -> str:
    runs = intermediate_runs(root, task)
    if not runs:
        return f"no finished {task} English intermediate runs under {root}"
    lines = ["| schedule | size | seeds | validation score (mean ± SD over seeds) | learned | wall s per run (mean) |",
             "|---|---:|---:|---|---:|---:|"]
    for schedule in ("stream", "separate"):
        for size in sorted({r["size"] for r in runs if r["schedule"] == schedule}):
            group = [r for r in runs if r["schedule"] == schedule and r["size"] == size]
            lines.append(f"| {schedule} | {size:,} | {len(group)} | {_ms([r['validation'] for r in group])} | "
                         f"{sum(bool(r['learned']) for r in group)}/{len(group)} | {mean(r['seconds'] for r in group):.0f} |")
    largest = max(r["size"] for r in runs)
    lines += ["", f"| seed | stream sweep, all sizes (wall s) | separate run at {largest:,} (wall s) | ratio |",
              "|---:|---:|---:|---:|"]
    ratios = []
    for seed in sorted({r["seed"] for r in runs}):
        stream = [r for r in runs if r["seed"] == seed and r["schedule"] == "stream"]
        alone = [r for r in runs if r["seed"] == seed and r["schedule"] == "separate" and r["size"] == largest]
        if stream and alone and largest in {r["size"] for r in stream}:
            total = sum(r["seconds"] for r in stream)
            ratios.append(total / alone[0]["seconds"])
            lines.append(f"| {seed} | {total:.0f} ({len(stream)} sizes) | {alone[0]['seconds']:.0f} | {ratios[-1]:.2f} |")
    if ratios:
        lines.append(f"| mean | | | {mean(ratios):.2f} |")
    tatoeba = tatoeba_means(root)
    for size in sorted({r["size"] for r in runs if r["schedule"] == "separate"}):
        pairs = []
        for seed in sorted({r["seed"] for r in runs}):
            s = [r for r in runs if r["seed"] == seed and r["schedule"] == "stream" and r["size"] == size]
            a = [r for r in runs if r["seed"] == seed and r["schedule"] == "separate" and r["size"] == size]
            if s and a and s[0]["run_id"] in tatoeba and a[0]["run_id"] in tatoeba:
                pairs.append((seed, tatoeba[s[0]["run_id"]], tatoeba[a[0]["run_id"]], s[0]["validation"],
                              a[0]["validation"]))
        if not pairs:
            continue
        lines += ["", f"| size | seed | validation: stream | separate | Tatoeba accuracy: stream | separate | "
                  "stream − separate |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for seed, ts, ta, vs, va in pairs:
            lines.append(f"| {size:,} | {seed} | {vs:.1f} | {va:.1f} | {ts:.1f} | {ta:.1f} | {ts - ta:+.1f} |")
        diffs = [p[1] - p[2] for p in pairs]
        vdiffs = [p[3] - p[4] for p in pairs]
        lines.append(f"| {size:,} | mean | | | | | {mean(diffs):+.1f} (validation {mean(vdiffs):+.1f}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", type=Path, default=Path("outputs"))
    ap.add_argument("--task", default="mnli")
    args = ap.parse_args()
    print(report(args.outputs, args.task))


if __name__ == "__main__":
    main()
