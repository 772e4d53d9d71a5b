"""The three stages of a run, one function each; the notebooks call these.

prepare       draw the intermediate subset and save it in the run folder;
intermediate  train the base encoder on it (one task, or several with a shared
              encoder) and save the encoder, without its heads;
target        train a fresh head (and the encoder) on the target task's English data,
              starting from the intermediate encoder or the base model, then evaluate
              zero-shot in every language with XTREME's metrics.

Every stage writes `metrics.jsonl` in its run folder; the sweep writes `config.json`
before and `DONE.json` after. Called by hand with run_dir="" a stage works in
`outputs/scratch/<stage>/`.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from xfer_nb import config as C
from xfer_nb import io, runs, tasks
from xfer_nb.paths import outputs_dir
from xfer_nb.tasks import schema

ENCODER = "encoder"
TRAIN_LOG = "train_log.jsonl"
EVAL_SEED = 0  # evaluation subsets are the same for every run, so scores pair across runs


def quiet_libraries() -> None:
    """Keep library progress bars and load reports out of saved notebooks and logs."""
    import transformers
    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


quiet_libraries()


@dataclass
class Prepared:
    sets: dict[str, datasets.Dataset]
    summary: pd.DataFrame
    run_dir: Path


@dataclass
class Trained:
    summary: dict
    log: pd.DataFrame
    run_dir: Path


@dataclass
class Evaluated:
    summary: dict
    scores: pd.DataFrame
    log: pd.DataFrame
    run_dir: Path


def resolve_run_dir(run_dir: str, stage: str) -> Path:
    path = Path(run_dir) if run_dir else outputs_dir() / "scratch" / stage
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def training_args(cfg) -> "TrainingArgs":
    from xfer_nb.train import TrainingArgs
    return TrainingArgs(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(TrainingArgs)})


def num_labels(spec: tasks.TaskSpec) -> int:
    return {schema.QA: 2, schema.MULTIPLE_CHOICE: 1}.get(spec.family, len(spec.label_names))


# ---------------------------------------------------------------- stage 1: prepare

def prepare(cfg: C.PrepareConfig, run_dir: str = "") -> Prepared:
    from xfer_nb import data
    out = resolve_run_dir(run_dir, "prepare")
    sets, rows, metrics = {}, [], []
    for task in cfg.tasks:
        size = cfg.intermediate_size
        if size == C.FULL:
            size = data.intermediate_pool_size(task, cfg.intermediate_languages, source=cfg.data_source,
                                               data_dir=cfg.data_dir)
        ds = data.sample_intermediate(task, cfg.intermediate_languages, size, cfg.seed,
                                      source=cfg.data_source, data_dir=cfg.data_dir)
        with io.atomic_path(out / "data" / task) as tmp:
            ds.save_to_disk(str(tmp))
        sets[task] = ds
        frame = ds.to_pandas()
        frame["words"] = [_words(r, tasks.TASKS[task].family) for r in ds]
        for lang, group in frame.groupby("language", sort=True):
            rows.append({"task": task, "language": lang, "examples": len(group),
                         "mean_words": round(float(group["words"].mean()), 1)})
            metrics.append({"run_id": out.name, "stage": "prepare", "task": task, "language": lang,
                            "split": "train", "metric": "examples", "value": len(group), "n_examples": len(group)})
    runs.write_metrics(out, metrics)
    return Prepared(sets, pd.DataFrame(rows), out)


def _words(row: dict, family: str) -> int:
    if family == schema.TAGGING:
        return len(row["tokens"])
    text = {schema.PAIR: lambda r: r["sentence1"] + " " + r["sentence2"],
            schema.QA: lambda r: r["question"] + " " + r["context"],
            schema.MULTIPLE_CHOICE: lambda r: r["context"] + " " + r["question"] + " " + " ".join(r["choices"]),
            schema.RETRIEVAL: lambda r: r["sentence"]}[family](row)
    return len(text.split())


def load_prepared(prepare_dir: str | Path) -> dict[str, datasets.Dataset]:
    data_dir = Path(prepare_dir) / "data"
    if not data_dir.is_dir():
        raise FileNotFoundError(f"upstream_dir={str(prepare_dir)!r} holds no prepared data (no data/ folder); "
                                "run 01_prepare_data first.")
    return {p.name: datasets.load_from_disk(str(p)) for p in sorted(data_dir.iterdir()) if p.is_dir()}


# ---------------------------------------------------------------- models

def base_model_path(model_name_or_path: str) -> str:
    from xfer_nb.models.embedded import resolve_model
    return str(resolve_model(model_name_or_path))


def load_tokenizer(path: str):
    from xfer_nb.models.hub import load_tokenizer as load
    return load(path)


def _require_finished(upstream_dir: str, stage: str) -> Path:
    path = Path(upstream_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"upstream_dir={upstream_dir!r} does not exist; run the {stage} stage first.")
    if not runs.is_done(path) and not (path / ENCODER).is_dir() and stage == "intermediate":
        raise RuntimeError(f"upstream_dir={upstream_dir!r} is an unfinished {stage} run (no DONE.json and no "
                           f"saved encoder); finish it before training on it.")
    return path


# ---------------------------------------------------------------- stage 2: intermediate

def intermediate(cfg: C.IntermediateConfig, run_dir: str = "", upstream_dir: str = "") -> Trained:
    from xfer_nb import featurize, train
    from xfer_nb.models import heads
    out = resolve_run_dir(run_dir, "intermediate")
    prep_dir = _require_finished(upstream_dir or str(outputs_dir() / "scratch" / "prepare"), "prepare")
    sets = load_prepared(prep_dir)
    model_path = base_model_path(cfg.model_name_or_path)
    tokenizer = load_tokenizer(model_path)
    feats, head_specs = {}, {}
    for task, ds in sets.items():
        spec = tasks.TASKS[task]
        if cfg.max_train_examples_per_task > 0 and len(ds) > cfg.max_train_examples_per_task:
            ds = ds.select(range(cfg.max_train_examples_per_task))  # prepared sets are already shuffled
        feats[task] = featurize.featurize(ds, spec.family, tokenizer, cfg.max_seq_length)
        head_specs[task] = (spec.family, num_labels(spec))
    encoder = heads.load_encoder(model_path)
    if len(head_specs) == 1:
        ((task, (family, n)),) = head_specs.items()
        model = heads.TaskModel(encoder, family, n, seed=cfg.seed)
    else:
        model = heads.MultiTaskModel(encoder, head_specs, seed=cfg.seed)
    result = train.train(model, feats, training_args(cfg), out, collate_fn=featurize.collate,
                         pad_token_id=tokenizer.pad_token_id)
    heads.save_encoder(model, out / ENCODER, tokenizer)
    io.write_jsonl(out / TRAIN_LOG, result.log_history)
    summary = _train_summary(result, {t: len(f) for t, f in feats.items()})
    runs.write_metrics(out, [{"run_id": out.name, "stage": "intermediate", "task": "+".join(sets), "language": "all",
                              "split": "train", "metric": k, "value": v, "n_examples": result.examples_seen}
                             for k, v in summary.items() if k in ("final_loss", "examples_per_second")])
    _drop_checkpoints(out)
    return Trained(summary, pd.DataFrame(result.log_history), out)


def _train_summary(result, sizes: dict) -> dict:
    log = result.log_history
    return {"train_examples": sizes, "steps": result.global_step, "examples_seen": result.examples_seen,
            "train_seconds": round(result.train_seconds, 1),
            "examples_per_second": round(result.examples_per_second, 1),
            "final_loss": round(float(log[-1]["loss"]), 4) if log else None,
            "resumed_from_step": result.resumed_from_step}


def _drop_checkpoints(run_dir: Path) -> None:
    """Checkpoints only serve a resume; a finished stage keeps its result, not them."""
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


# ---------------------------------------------------------------- stage 3: target

def seen_languages(upstream_dir: str) -> list[str]:
    """Languages of the intermediate data behind an intermediate run (empty for the baseline)."""
    if not upstream_dir:
        return []
    cfg = json.loads((Path(upstream_dir) / runs.CONFIG).read_text())
    prep = Path(cfg["upstream_dirs"]["prepare"])
    return list(json.loads((prep / runs.CONFIG).read_text())["config"]["intermediate_languages"])


def eval_languages(cfg: C.TargetConfig) -> list[str]:
    spec = tasks.TASKS[cfg.target_task]
    available = tasks.available(cfg.target_task, cfg.data_source, cfg.data_dir).get(spec.eval_split[cfg.data_source], [])
    return list(cfg.eval_languages) or sorted(available)


def _cap(ds: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    if n > 0 and len(ds) > n:
        return ds.shuffle(seed=seed).select(range(n))
    return ds


def target(cfg: C.TargetConfig, run_dir: str = "", upstream_dir: str = "") -> Evaluated:
    from xfer_nb import evaluate
    out = resolve_run_dir(run_dir, "target")
    spec = tasks.TASKS[cfg.target_task]
    if upstream_dir:
        encoder_path = str(_require_finished(upstream_dir, "intermediate") / ENCODER)
    else:
        encoder_path = base_model_path(cfg.model_name_or_path)
    seen = set(seen_languages(upstream_dir))
    tokenizer = load_tokenizer(encoder_path)
    langs = eval_languages(cfg)
    started = time.time()
    if spec.family == schema.RETRIEVAL:
        score_rows, log, train_summary = _evaluate_retrieval(cfg, spec, encoder_path, tokenizer, langs), [], {}
    else:
        model, log, train_summary = _train_target(cfg, spec, encoder_path, tokenizer, out)
        score_rows = _evaluate_supervised(cfg, spec, model, tokenizer, langs)
    rows = []
    for lang, split, n, scores in score_rows:
        rows += evaluate.metric_rows(out.name, "target", cfg.target_task, lang, split, scores, n, lang in seen)
    runs.write_metrics(out, rows)
    io.write_jsonl(out / TRAIN_LOG, log)
    _drop_checkpoints(out)
    table = pd.DataFrame(rows)
    summary = {"target_task": cfg.target_task, "languages": len(langs), **train_summary,
               "seconds": round(time.time() - started, 1)}
    return Evaluated(summary, table, pd.DataFrame(log), out)


def _train_target(cfg, spec, encoder_path, tokenizer, out):
    from xfer_nb import featurize, train
    from xfer_nb.models import heads
    training = tasks.target_training(cfg.target_task, cfg.data_source)
    if training is None:
        raise ValueError(f"target_task={cfg.target_task!r} has no English training data for data_source="
                         f"{cfg.data_source!r}; it cannot be a trained target task")
    train_task, lang, split = training
    train_ds = _cap(tasks.load(train_task, lang, split, source=cfg.data_source, data_dir=cfg.data_dir),
                    cfg.max_train_examples, cfg.seed)
    feats = featurize.featurize(train_ds, spec.family, tokenizer, cfg.max_seq_length)
    model = heads.build_task_model(encoder_path, spec.family, num_labels(spec), seed=cfg.seed)
    result = train.train(model, {cfg.target_task: feats}, training_args(cfg), out, collate_fn=featurize.collate,
                         pad_token_id=tokenizer.pad_token_id)
    return model, result.log_history, _train_summary(result, {cfg.target_task: len(feats)})


def _evaluate_supervised(cfg, spec, model, tokenizer, langs):
    from xfer_nb import evaluate, featurize, predict
    split = spec.eval_split[cfg.data_source]
    model.eval()
    results = []
    for lang in langs:
        ds = _cap(tasks.load(cfg.target_task, lang, split, source=cfg.data_source, data_dir=cfg.data_dir,
                             require_labels=True), cfg.max_eval_examples, EVAL_SEED)
        feats = featurize.featurize(ds, spec.family, tokenizer, cfg.max_seq_length, for_training=False)
        preds = predict.predict(model, feats, spec.family, batch_size=cfg.eval_batch_size)
        predictions, references = _align(spec, ds, preds)
        results.append((lang, split, len(ds), evaluate.compute(cfg.target_task, lang, predictions, references)))
    return results


def _align(spec, ds, preds):
    """Predictions and references in the shapes evaluate.compute takes."""
    if spec.family == schema.TAGGING:
        names = spec.label_names
        return ([[names[t] for t in seq] for seq in preds], [[names[t] for t in tags] for tags in ds["tags"]])
    if spec.family == schema.QA:
        return ([preds[i] for i in ds["id"]], [a["text"] for a in ds["answers"]])
    return list(preds), list(ds["label"])


def _evaluate_retrieval(cfg, spec, encoder_path, tokenizer, langs):
    from xfer_nb import evaluate
    from xfer_nb.models import heads
    from xfer_nb.models.hub import sentence_embeddings
    encoder = heads.load_encoder(encoder_path).eval()
    split = spec.eval_split[cfg.data_source]
    layer = None if cfg.retrieval_layer < 0 else cfg.retrieval_layer
    results = []
    for lang in langs:
        ds = tasks.load(cfg.target_task, lang, split, source=cfg.data_source, data_dir=cfg.data_dir)
        src = ds.filter(lambda r: r["side"] == "source")
        tgt = ds.filter(lambda r: r["side"] == "target")
        embed = lambda d: sentence_embeddings(encoder, tokenizer, d["sentence"], layer=layer,
                                              pooling=cfg.retrieval_pooling, batch_size=cfg.eval_batch_size,
                                              max_length=cfg.max_seq_length)
        if cfg.target_task == "tatoeba":
            # XTREME's direction: English sentences query the other language's sentences.
            src = _cap(src, cfg.max_eval_examples, EVAL_SEED)
            index = {t: i for i, t in enumerate(tgt["id"])}
            english = tgt.select([index[g] for g in src["gold"]])
            scores = {"accuracy": evaluate.tatoeba_accuracy(embed(english), embed(src), list(range(len(src))))}
        else:
            gold = [(s, g) for s, g in zip(src["id"], src["gold"]) if g]
            scores = evaluate.bucc_mine_and_score(embed(src), embed(tgt), src["id"], tgt["id"], gold,
                                                  src_texts=src["sentence"], tgt_texts=tgt["sentence"])
        results.append((lang, split, len(src), scores))
    return results
