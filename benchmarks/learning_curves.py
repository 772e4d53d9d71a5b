"""Learning curves of the offline intermediate-task pools on the embedded e5-small.

Why: an intermediate model that never learns its task tests drift, not transfer. Before a
pool enters the study we measure how many examples it needs: one pass over a seeded
permutation of the pool (the nested stream the size axis uses), warm-up then a constant
learning rate (the stable phase of a warmup-stable-decay run), scoring a fixed held-out
subset of the same pool at geometric sizes (256, 512, 1k, ...). Each pool's rows are
appended to the output CSV as soon as they exist, so a killed run keeps what it measured.

    python benchmarks/learning_curves.py --pools nli_xnli udpos panx --out docs/learning_curves.csv

Run with OMP_NUM_THREADS=1 (one thread per process is fastest per core here).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path

# pool name -> (task, split or None for the task's intermediate split, languages, max examples,
#               learning rate, batch size, max_seq_length)
POOLS = {
    "mnli": ("mnli", None, ["en"], 4096, 5e-5, 32, 128),          # MultiNLI first 15k (xnli-extension)
    "nli_xnli": ("xnli", None, ["en"], 1024, 5e-5, 32, 128),       # the XNLI dev half (1,245 en pairs)
    "anli": ("anli", None, ["en"], 1024, 5e-5, 32, 128),
    "squad": ("squad", None, ["en"], 1024, 5e-5, 16, 256),
    "udpos": ("udpos", "train", ["en"], 2048, 3e-4, 16, 128),
    "panx": ("panx", "train", ["en"], 2048, 3e-4, 16, 128),
    "tydiqa": ("tydiqa", "train", ["en"], 1024, 5e-5, 16, 256),
    "siqa": ("siqa", None, ["en"], 2048, 5e-5, 16, 128),
    "cosmosqa": ("cosmosqa", None, ["en"], 1024, 5e-5, 16, 192),
}
FIELDS = ["pool", "task", "seed", "examples", "score", "metric", "chance", "validation_examples",
          "learning_rate", "batch_size", "seconds", "train_examples_per_second"]


def chance_level(task: str) -> float:
    """Score of a constant guess, in points: 1/classes for classification (and choices for
    multiple choice); 0 for span F1 and QA."""
    from xfer_nb import tasks
    spec = tasks.TASKS[task]
    if spec.family in (tasks.PAIR, tasks.MULTIPLE_CHOICE):
        return 100.0 / len(spec.label_names)
    return 0.0


def curve(pool: str, seed: int, validation: int, max_examples: int | None, out: Path, threads: int) -> None:
    from xfer_nb import data, evaluate, featurize, pipeline, tasks, train
    from xfer_nb.models import heads
    from xfer_nb.train_args import TrainingArgs
    task, split, langs, default_max, lr, batch, seq = POOLS[pool]
    n_max = max_examples or default_max
    pool_size = data.intermediate_pool_size(task, langs, split=split)
    if n_max + validation > pool_size:
        n_max = pool_size - validation
    # the held-out rows come from the end of the same seeded permutation, so no trained row is scored
    ds = data.sample_intermediate(task, langs, n_max + validation, seed, split=split)
    train_ds, held_out = ds.select(range(n_max)), ds.select(range(n_max, n_max + validation))
    model_path = pipeline.base_model_path("embedded:multilingual-e5-small")
    tokenizer = pipeline.load_tokenizer(model_path)
    spec = tasks.TASKS[task]
    feats = featurize.featurize(train_ds, spec.family, tokenizer, seq)
    scorer = pipeline.validation_scorer(task, task, held_out, tokenizer, seq, batch_size=32)
    model = heads.build_task_model(model_path, spec.family, pipeline.num_labels(spec), seed=seed, pooling="mean")
    sizes = [s for s in (2 ** k for k in range(7, 16)) if s <= n_max]
    eval_every = math.gcd(*[s // batch for s in sizes if s >= batch]) or 1
    wanted_steps = {s // batch: s for s in sizes if s >= batch}
    rows: list[dict] = []
    started = time.time()
    last = {"score": float("nan")}

    def score_at_sizes(m) -> float:
        step = len(rows_seen) * eval_every + eval_every
        rows_seen.append(step)
        if step in wanted_steps:
            began = time.time()
            last["score"] = scorer(m)
            rows.append({"pool": pool, "task": task, "seed": seed, "examples": wanted_steps[step],
                         "score": round(last["score"], 2), "metric": evaluate.PRIMARY_METRIC[task],
                         "chance": round(chance_level(task), 2), "validation_examples": validation,
                         "learning_rate": lr, "batch_size": batch, "seconds": round(time.time() - started, 1)})
            print(f"{pool} seed {seed}: {wanted_steps[step]:>6} examples  {last['score']:.2f}  "
                  f"({time.time() - began:.0f} s to score)", flush=True)
            _append(out, rows[-1])
        return last["score"]

    rows_seen: list[int] = []
    steps = max(wanted_steps)
    args = TrainingArgs(learning_rate=lr, per_device_train_batch_size=batch, max_steps=steps, warmup_steps=min(50, steps // 4),
                        lr_scheduler_type="constant_with_warmup", seed=seed, precision="auto",
                        prune_vocabulary=True, num_threads=threads, eval_steps=eval_every, logging_steps=50,
                        group_by_length=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = train.train(model, {task: feats}, args, tmp, collate_fn=featurize.collate,
                             pad_token_id=tokenizer.pad_token_id, evaluate_fn=score_at_sizes, progress=False)
    print(f"{pool} seed {seed}: {result.examples_per_second:.1f} train ex/s ({result.precision}), "
          f"{time.time() - started:.0f} s in all", flush=True)


def _append(out: Path, row: dict) -> None:
    new = not out.exists()
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def plot(csv_path: Path, png: Path) -> None:
    """One panel per pool: held-out score against training examples (log scale), chance and the
    family's learning threshold drawn as lines, one line per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from xfer_nb import learning
    df = pd.read_csv(csv_path)
    pools = list(dict.fromkeys(df["pool"]))
    cols = min(4, len(pools))
    rows = math.ceil(len(pools) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, pool in zip(axes.flat, pools):
        part = df[df["pool"] == pool]
        task = part["task"].iloc[0]
        for seed, g in part.groupby("seed"):
            ax.plot(g["examples"], g["score"], marker="o", label=f"seed {seed}")
        floor = learning.chance(task)
        ax.axhline(floor, color="grey", ls=":", lw=1, label="chance")
        ax.axhline(floor + learning.margin(task), color="tab:red", ls="--", lw=1, label="learning threshold")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{pool} ({task})", fontsize=9)
        ax.set_xlabel("training examples (one pass)", fontsize=8)
        ax.set_ylabel(f"held-out {part['metric'].iloc[0]}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(pools):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("Learning curves of the offline intermediate pools, multilingual-e5-small", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pools", nargs="+", default=list(POOLS), choices=list(POOLS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--validation", type=int, default=300, help="held-out examples scored at each size")
    ap.add_argument("--max-examples", type=int, default=None, help="override every pool's largest size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("docs/learning_curves.csv"))
    ap.add_argument("--plot", type=Path, default=None, help="only draw this PNG from --out (no training)")
    a = ap.parse_args(argv)
    if a.plot:
        plot(a.out, a.plot)
        return 0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for pool in a.pools:
        for seed in a.seeds:
            try:
                curve(pool, seed, a.validation, a.max_examples, a.out, a.threads)
            except Exception as e:  # one pool's failure must not lose the others' curves
                print(f"{pool} seed {seed}: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
