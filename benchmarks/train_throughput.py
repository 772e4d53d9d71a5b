"""Training throughput of the project's own path against Hugging Face's Trainer, on this CPU.

Real XNLI English pairs (``xtreme/xnli/dev-en.tsv`` of the data folder) and the embedded
multilingual-e5-small encoder with its full 250,037-row vocabulary, as shipped
(``resolve_model("embedded:multilingual-e5-small")``), one process, one thread by default:

  (a)  HF Trainer as in ``run_xnli.py``: ``padding="max_length"`` to 128, random batches,
       the Trainer's defaults (fused AdamW on the full vocabulary, fp32);
  (a') the Trainer at its best: ``train_sampling_strategy="group_by_length"``, dynamic padding
       (``DataCollatorWithPadding``), the same precision as (b);
  (b)  ``xfer_nb.train.train``: length grouping, dynamic padding, ``prune_vocabulary``
       (exact), fused AdamW, the chosen precision.

Each trains the same number of examples from the same initial weights; the script prints
examples/s of each and the ratios b/a and b/a'.

Hardware use. The matmul rate is a 2048x2048 ``torch.matmul`` in (b)'s precision on (b)'s
thread count (best of several). (b)'s useful FLOP/s is

    6 x N x real_tokens / second,   N = the parameters every token passes through as matmul
                                        weights: all encoder parameters except the embedding
                                        tables (word, position, token type), plus the head;

the usual 2N forward + 4N backward FLOPs per token (Kaplan et al. 2020), counting only real
tokens (attention-mask 1s), never padding. It leaves out the attention score products
(12·layers·seq·hidden per token, ~2% here at ~50 tokens), embedding look-ups and the optimizer,
so it is a slight under-count of the arithmetic actually needed.

Recipe check: (a') and (b) also train ``--quality-steps`` steps on disjoint XNLI English
dev pairs (premise groups kept whole) with the same hyper-parameters and seeds; their final
training loss and accuracy on held-out English dev pairs are reported side by side.

Writes ``outputs/benchmarks/train_throughput.json`` and prints a table.
"""
from __future__ import annotations

import argparse
import csv
import gc
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ("entailment", "neutral", "contradiction")   # xfer_nb.tasks' XNLI label order
BATCH = 32


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=512, help="training examples timed per configuration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="precision of (a') and (b); auto: bf16 where this CPU has native bf16, else fp32")
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--quality-steps", type=int, default=60, help="steps of the recipe check (0: skip it)")
    p.add_argument("--quality-seeds", type=int, nargs="+", default=[1])
    p.add_argument("--dev-examples", type=int, default=480, help="held-out English dev pairs for the recipe check")
    p.add_argument("--skip", nargs="*", default=[], choices=["a", "a'", "b"], help="throughput runs to leave out")
    p.add_argument("--output", default=None, help="JSON path (default outputs/benchmarks/train_throughput.json)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data

def read_xnli_en(data_dir: Path) -> list[dict]:
    rows = []
    with open(data_dir / "xtreme" / "xnli" / "dev-en.tsv", encoding="utf-8", newline="") as f:
        for premise, hypothesis, label in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append({"sentence1": premise, "sentence2": hypothesis, "label": LABELS.index(label)})
    return rows


def as_dataset(rows):
    import datasets
    return datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in ("sentence1", "sentence2", "label")})


def tokenize_max_length(rows, tok, max_len=128):
    """run_xnli.py's preprocessing with pad_to_max_length=True."""
    import datasets
    enc = tok([r["sentence1"] for r in rows], [r["sentence2"] for r in rows], padding="max_length",
              max_length=max_len, truncation=True)
    return datasets.Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                       "labels": [r["label"] for r in rows]})


def featurized(rows, tok):
    from xfer_nb.featurize import featurize
    from xfer_nb.tasks.schema import PAIR
    return featurize(as_dataset(rows), PAIR, tok, max_seq_length=128, cache_dir=False)


# --------------------------------------------------------------------------- model

class Setup:
    def __init__(self, path: str):
        from transformers import AutoTokenizer
        self.path = path
        self.tok = AutoTokenizer.from_pretrained(path)
        assert self.tok.is_fast

    def model(self, seed: int):
        from xfer_nb.models.heads import TaskModel, load_encoder
        from xfer_nb.tasks.schema import PAIR
        return TaskModel(load_encoder(self.path), PAIR, len(LABELS), seed=seed)


def param_counts(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters()
              if any(k in n for k in ("word_embeddings", "position_embeddings", "token_type_embeddings")))
    word = sum(p.numel() for n, p in model.named_parameters() if "word_embeddings" in n)
    return {"total": total, "embedding_tables": emb, "word_embeddings": word, "non_embedding": total - emb}


def warm_up(setup: Setup, rows, threads: int, autocast_bf16: bool):
    """One forward/backward so one-time kernel set-up is outside every timed run."""
    import torch
    from xfer_nb.featurize import collate
    torch.set_num_threads(threads)
    model = setup.model(0)
    ds = featurized(rows[:BATCH], setup.tok)
    batch = collate([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in ds], setup.tok.pad_token_id)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
        loss = model(**batch)["loss"]
    loss.backward()
    del model
    gc.collect()


# --------------------------------------------------------------------------- the three paths

def run_trainer(setup: Setup, train_ds, *, steps, lr, seed, threads, bf16, grouped, logging_steps):
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, default_data_collator
    torch.set_num_threads(threads)
    model = setup.model(seed)
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=BATCH, learning_rate=lr, max_steps=steps,
            warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0, seed=seed, logging_steps=logging_steps,
            save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
            bf16=bf16, train_sampling_strategy="group_by_length" if grouped else "random")
        collator = DataCollatorWithPadding(setup.tok) if grouped else default_data_collator
        trainer = Trainer(model=model, args=targs, train_dataset=train_ds, data_collator=collator)
        t0, c0 = time.perf_counter(), time.process_time()
        out = trainer.train()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        optim = type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer)
    return model, {"wall_seconds": wall, "cpu_seconds": cpu, "examples": steps * BATCH,
                   "examples_per_second": steps * BATCH / wall, "examples_per_cpu_second": steps * BATCH / cpu,
                   "trainer_reported_samples_per_second": out.metrics.get("train_samples_per_second"),
                   "final_logged_loss": losses[-1] if losses else None, "optimizer": optim.__name__,
                   "optim_setting": str(targs.optim)}


def run_own(setup: Setup, train_ds, *, steps, lr, seed, threads, precision, logging_steps):
    from xfer_nb.featurize import collate
    from xfer_nb.train import TrainingArgs, train
    model = setup.model(seed)
    args = TrainingArgs(learning_rate=lr, per_device_train_batch_size=BATCH, max_steps=steps, warmup_ratio=0.1,
                        weight_decay=0.01, max_grad_norm=1.0, seed=seed, precision=precision, group_by_length=True,
                        prune_vocabulary=True, num_threads=threads, logging_steps=logging_steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        res = train(model, {"xnli": train_ds}, args, tmp, collate_fn=collate, pad_token_id=setup.tok.pad_token_id,
                    resume=False, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return model, {"wall_seconds": wall, "cpu_seconds": cpu, "examples": res.examples_seen,
                   "examples_per_second": res.examples_seen / wall, "examples_per_cpu_second": res.examples_seen / cpu,
                   "loop_examples_per_second": res.examples_per_second, "tokens_seen": res.tokens_seen,
                   "padded_tokens_seen": res.padded_tokens_seen, "tokens_per_second": res.tokens_seen / wall,
                   "vocab_rows_trained": res.vocab_rows_trained,
                   "final_logged_loss": res.log_history[-1]["loss"] if res.log_history else None}


def dev_accuracy(model, ds, pad_token_id, threads, bf16) -> float:
    """Length-sorted batches of 64, inference mode, argmax."""
    import numpy as np
    import torch
    from xfer_nb.featurize import collate
    torch.set_num_threads(threads)
    model.eval()
    order = np.argsort(np.asarray(ds["length"]), kind="stable")
    correct = 0
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(order), 64):
            rows = ds[order[i:i + 64].tolist()]
            feats = [{"input_ids": a, "attention_mask": m} for a, m in zip(rows["input_ids"], rows["attention_mask"])]
            logits = model(**collate(feats, pad_token_id))["logits"]
            correct += int((logits.argmax(-1) == torch.tensor(rows["labels"])).sum())
    return correct / len(ds)


def hf_padding_factor(lengths, seed: int) -> float:
    """Padded / real tokens of one epoch of HF's length-grouped batches (its own algorithm and
    seed handling re-run here; the Trainer's actual draw may differ, not its statistics)."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices
    idx = get_length_grouped_indices(lengths, BATCH, generator=torch.Generator().manual_seed(seed))
    padded = sum(len(idx[i:i + BATCH]) * max(lengths[j] for j in idx[i:i + BATCH]) for i in range(0, len(idx), BATCH))
    return padded / sum(lengths)


def matmul_rate(threads: int, bf16: bool, n: int = 2048, reps: int = 5) -> float:
    import torch
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


# --------------------------------------------------------------------------- main

def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import datasets
    datasets.disable_progress_bars()
    from xfer_nb import io
    from xfer_nb.models.embedded import resolve_model
    from xfer_nb.paths import data_dir, outputs_dir
    from xfer_nb.devices import bf16_supported, resolve_precision

    torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision)
    bf16 = precision == "bf16"
    rows = read_xnli_en(data_dir())
    if args.examples % BATCH:
        raise SystemExit(f"--examples must be a multiple of the batch size {BATCH}")
    steps = args.examples // BATCH
    dev_n = args.dev_examples - args.dev_examples % 3
    train_pool, dev_rows = rows[:len(rows) - dev_n], rows[len(rows) - dev_n:]
    if args.examples > len(train_pool):
        raise SystemExit(f"--examples={args.examples} exceeds the {len(train_pool)} training pairs")

    out = Path(args.output) if args.output else outputs_dir() / "benchmarks" / "train_throughput.json"
    setup = Setup(resolve_model("embedded:multilingual-e5-small"))
    load0 = os.getloadavg()
    info = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "bf16_native": bf16_supported(),
                        "torch": torch.__version__, "transformers": transformers.__version__,
                        "python": platform.python_version(), "threads": args.threads,
                        "loadavg_start": load0},
            "settings": {"examples": args.examples, "batch_size": BATCH, "steps": steps, "precision_b": precision,
                         "learning_rate": args.learning_rate, "max_seq_length": 128,
                         "quality_steps": args.quality_steps, "quality_seeds": args.quality_seeds,
                         "dev_examples": len(dev_rows)}}
    probe = setup.model(0)
    counts = param_counts(probe)
    del probe
    info["params"] = counts
    print(f"model {setup.path}: {counts['total'] / 1e6:.1f}M parameters, {counts['non_embedding'] / 1e6:.2f}M "
          f"outside the embedding tables; precision (a')/(b): {precision}; threads {args.threads}", flush=True)

    rate = matmul_rate(args.threads, bf16)
    info["matmul_flops_per_second"] = rate
    print(f"matmul 2048x2048 {precision}, {args.threads} thread(s): {rate / 1e9:.1f} GFLOP/s", flush=True)

    timed = train_pool[:args.examples]
    feats = featurized(timed, setup.tok)
    lengths = list(feats["length"])
    real_tokens = int(sum(lengths))
    warm_up(setup, timed, args.threads, bf16)
    runs = {}
    if "a" not in args.skip:
        print("(a)  Trainer, padding=max_length 128 ...", flush=True)
        model, runs["a"] = run_trainer(setup, tokenize_max_length(timed, setup.tok), steps=steps,
                                       lr=args.learning_rate, seed=0, threads=args.threads, bf16=False,
                                       grouped=False, logging_steps=steps)
        runs["a"]["padding_factor"] = 128 * len(timed) / real_tokens
        _report(runs["a"])
        del model
        gc.collect()
    if "a'" not in args.skip:
        print("(a') Trainer, group_by_length + dynamic padding ...", flush=True)
        model, runs["a'"] = run_trainer(setup, feats, steps=steps, lr=args.learning_rate, seed=0,
                                        threads=args.threads, bf16=bf16, grouped=True, logging_steps=steps)
        runs["a'"]["padding_factor"] = hf_padding_factor(lengths, seed=0)
        _report(runs["a'"])
        del model
        gc.collect()
    if "b" not in args.skip:
        print("(b)  xfer_nb.train ...", flush=True)
        model, runs["b"] = run_own(setup, feats, steps=steps, lr=args.learning_rate, seed=0, threads=args.threads,
                                   precision=precision, logging_steps=steps)
        runs["b"]["padding_factor"] = runs["b"]["padded_tokens_seen"] / runs["b"]["tokens_seen"]
        _report(runs["b"])
        del model
        gc.collect()
    info["runs"] = runs
    info["ratios"] = {}
    info["recipe_check"] = []
    io.write_json(out, info)   # partial results survive a killed run
    n_touched = counts["non_embedding"]
    for r in runs.values():
        r["tokens_per_second"] = real_tokens / r["wall_seconds"]
        r["useful_flops_per_second"] = 6 * n_touched * r["tokens_per_second"]
        r["fraction_of_matmul_rate"] = r["useful_flops_per_second"] / rate
        r["useful_flops_per_cpu_second"] = 6 * n_touched * real_tokens / r["cpu_seconds"]
        r["fraction_of_matmul_rate_cpu_time"] = r["useful_flops_per_cpu_second"] / rate
    info["runs"] = runs
    info["real_tokens_per_example"] = real_tokens / len(timed)
    ratios = {}
    for x, y in (("b", "a"), ("b", "a'"), ("a'", "a")):
        if x in runs and y in runs:
            ratios[f"{x}/{y}"] = runs[x]["examples_per_second"] / runs[y]["examples_per_second"]
            ratios[f"{x}/{y} (cpu time)"] = runs[x]["examples_per_cpu_second"] / runs[y]["examples_per_cpu_second"]
    info["ratios"] = ratios

    quality = []
    if args.quality_steps > 0:
        q_rows = train_pool[:args.quality_steps * BATCH]
        q_feats = featurized(q_rows, setup.tok)
        dev = featurized(dev_rows, setup.tok)
        for seed in args.quality_seeds:
            for name in ("a'", "b"):
                print(f"recipe check: {name} seed {seed}, {args.quality_steps} steps ...", flush=True)
                if name == "a'":
                    model, r = run_trainer(setup, q_feats, steps=args.quality_steps, lr=args.learning_rate,
                                           seed=seed, threads=args.threads, bf16=bf16, grouped=True,
                                           logging_steps=10)
                else:
                    model, r = run_own(setup, q_feats, steps=args.quality_steps, lr=args.learning_rate, seed=seed,
                                       threads=args.threads, precision=precision, logging_steps=10)
                acc = dev_accuracy(model, dev, setup.tok.pad_token_id, args.threads, bf16)
                quality.append({"config": name, "seed": seed, "steps": args.quality_steps,
                                "final_train_loss": r["final_logged_loss"], "dev_accuracy": acc,
                                "dev_examples": len(dev), "examples_per_second": r["examples_per_second"],
                                "examples_per_cpu_second": r["examples_per_cpu_second"]})
                print(f"  -> final train loss {r['final_logged_loss']}, dev accuracy {acc:.3f}", flush=True)
                info["recipe_check"] = quality
                io.write_json(out, info)
                del model
                gc.collect()
    info["recipe_check"] = quality
    info["goals"] = {"b/a >= 4": ratios.get("b/a", 0) >= 4, "b/a' >= 1.5": ratios.get("b/a'", 0) >= 1.5,
                     ">= 50% of matmul rate": runs.get("b", {}).get("fraction_of_matmul_rate", 0) >= 0.5}
    info["machine"]["loadavg_end"] = os.getloadavg()

    io.write_json(out, info)
    print_table(info)
    print(f"\nwritten: {out}")
    return info


def print_table(info):
    print(f"\n{'config':<46}{'ex/s':>8}{'ex/cpu-s':>10}{'pad x':>7}{'real tok/s':>12}{'useful GFLOP/s':>16}"
          f"{'of matmul':>11}{'(cpu time)':>11}")
    names = {"a": "(a)  Trainer, pad to 128 (run_xnli)", "a'": "(a') Trainer, group_by_length + dyn. pad",
             "b": "(b)  xfer_nb.train (grouped, pruned vocab)"}
    for k, r in info["runs"].items():
        print(f"{names[k]:<46}{r['examples_per_second']:>8.2f}{r['examples_per_cpu_second']:>10.2f}"
              f"{r['padding_factor']:>7.2f}{r['tokens_per_second']:>12.0f}{r['useful_flops_per_second'] / 1e9:>16.1f}"
              f"{r['fraction_of_matmul_rate']:>11.0%}{r['fraction_of_matmul_rate_cpu_time']:>11.0%}")
    print(f"matmul rate: {info['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s")
    for k, v in info["ratios"].items():
        print(f"{k}: {v:.2f}x")
    if info["recipe_check"]:
        print(f"\n{'recipe check':<16}{'seed':>5}{'train loss':>12}{'dev acc':>10}")
        for q in info["recipe_check"]:
            loss = "n/a" if q["final_train_loss"] is None else f"{q['final_train_loss']:.4f}"
            print(f"{q['config']:<16}{q['seed']:>5}{loss:>12}{q['dev_accuracy']:>10.3f}")


def _report(r: dict) -> None:
    print(f"  -> {r['examples_per_second']:.2f} ex/s wall, {r['examples_per_cpu_second']:.2f} ex/s of CPU time, "
          f"padding x{r['padding_factor']:.2f}", flush=True)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main(sys.argv[1:])
