"""The three stages of a run, one function each; the notebooks call these.

prepare       draw the intermediate subset and save it in the run folder;
intermediate  train the base encoder on it (one task, or several with a shared
              encoder) and save the encoder, without its heads;
target        train a fresh head (and the encoder) on the target task's English data,
              starting from the intermediate encoder or the base model, then evaluate
              zero-shot in every language with XTREME's metrics.

Validation (every training run) and early stopping (`eval_steps > 0`,
`early_stopping_patience`): a training stage scores the weights it keeps on held-out data
of its own task with the task's primary metric (`evaluate.PRIMARY_METRIC`: accuracy, or F1
for tagging and QA), through `predict.predict` and `evaluate.compute` as the zero-shot
evaluation does, and `xfer_nb.learning` turns that score into a verdict: the run *learned*
when it is at least chance + `learning_threshold`. The verdict goes into the summary (and so
into DONE.json and the rendered notebook) and into metrics.jsonl (split "validation":
validation_score, chance, learning_threshold, learned). With `eval_steps > 0` the same data
is also scored every `eval_steps` steps.

* target: the target task's labelled English `dev` split when it is not the training
  data (local: xnli, udpos, panx, mlqa; hub: xnli, pawsx, udpos, panx, mlqa, tydiqa), a
  seeded subset of `validation_examples` rows (seed EVAL_SEED, the same for every run).
  Where that dev split is also the evaluation split (local xnli and mlqa, hub tydiqa),
  the English score of the run is on data used for validation. Where the only English
  data is the training split (local pawsx and tydiqa; xquad), the last
  `validation_examples` rows of a seed-`seed` permutation of the English training data are
  held out and the run trains on the other rows (in their original order;
  `max_train_examples` then caps those).
* intermediate: the prepare run's `held_out_examples` rows, the END of each language's
  seeded draw order (`data.sample_validation`); the nested subsets are prefixes of the same
  orders, so no subset of any size contains them. With several tasks the score is the
  unweighted mean over tasks of each task's primary metric, each read through its own head.
  Languages are pooled; a metric with language-specific normalisation (MLQA) is computed
  per language and averaged weighted by examples.

The summaries report `best_step`, `best_validation_score`, `stopped_early` and where
the validation data came from; `train_log.jsonl` holds the loss and the validation
entries, the returned `log` frame only the loss rows.

Several GPUs: `python -m xfer_nb.launch` runs `intermediate` or `target` under
torchrun (see that module); after training only rank 0 saves and evaluates, the other
ranks return None.

Every stage writes `metrics.jsonl` in its run folder; the sweep writes `config.json`
before and `DONE.json` after. Called by hand with run_dir="" a stage works in
`outputs/scratch/<stage>/`.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from xfer_nb import config as C
from xfer_nb import io, learning, runs, tasks
from xfer_nb.paths import outputs_dir
from xfer_nb.tasks import schema

ENCODER = "encoder"
VALIDATION = "validation"  # a prepare run's held-out tail of the pool, per task
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
    from xfer_nb.train_args import TrainingArgs
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
                                               data_dir=cfg.data_dir, seed=cfg.seed, held_out=cfg.held_out_examples)
        ds = data.sample_intermediate(task, cfg.intermediate_languages, size, cfg.seed,
                                      source=cfg.data_source, data_dir=cfg.data_dir, held_out=cfg.held_out_examples)
        with io.atomic_path(out / "data" / task) as tmp:
            ds.save_to_disk(str(tmp))
        if cfg.held_out_examples:
            val = data.sample_validation(task, cfg.intermediate_languages, cfg.held_out_examples, cfg.seed,
                                         source=cfg.data_source, data_dir=cfg.data_dir)
            with io.atomic_path(out / VALIDATION / task) as tmp:
                val.save_to_disk(str(tmp))
            metrics.append({"run_id": out.name, "stage": "prepare", "task": task, "language": "all",
                            "split": "validation", "metric": "examples", "value": len(val), "n_examples": len(val)})
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


def load_prepared(prepare_dir: str | Path, part: str = "data") -> dict[str, datasets.Dataset]:
    """A prepare run's training subsets (part="data") or held-out validation rows (part="validation",
    empty when the run held none out), per task."""
    data_dir = Path(prepare_dir) / part
    if part == VALIDATION and not data_dir.is_dir():
        return {}
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

def intermediate(cfg: C.IntermediateConfig, run_dir: str = "", upstream_dir: str = "") -> Trained | None:
    from xfer_nb import distributed, featurize, train
    from xfer_nb.models import heads
    out = resolve_run_dir(run_dir, "intermediate")
    prep_dir = _require_finished(upstream_dir or str(outputs_dir() / "scratch" / "prepare"), "prepare")
    sets = load_prepared(prep_dir)
    held_out = load_prepared(prep_dir, VALIDATION)
    model_path = base_model_path(cfg.model_name_or_path)
    tokenizer = load_tokenizer(model_path)
    feats, head_specs = {}, {}
    for task, ds in sets.items():
        spec = tasks.TASKS[task]
        # prepared sets are grouped by language: a seeded shuffle keeps every language in the cap
        ds = _cap(ds, cfg.max_train_examples_per_task, cfg.seed)
        feats[task] = featurize.featurize(ds, spec.family, tokenizer, cfg.max_seq_length,
                                          word_token=cfg.word_label_token)
        head_specs[task] = (spec.family, num_labels(spec))
    encoder = heads.load_encoder(model_path)
    if len(head_specs) == 1:
        ((task, (family, n)),) = head_specs.items()
        model = heads.TaskModel(encoder, family, n, seed=cfg.seed, pooling=cfg.classifier_pooling)
    else:
        model = heads.MultiTaskModel(encoder, head_specs, seed=cfg.seed, pooling=cfg.classifier_pooling)
    evaluate_fn = None
    if held_out:
        scorers = [validation_scorer(task, task, held_out[task], tokenizer, cfg.max_seq_length,
                                     head=task if len(head_specs) > 1 else None, word_token=cfg.word_label_token)
                   for task in held_out]
        evaluate_fn = lambda m: sum(score(m) for score in scorers) / len(scorers)  # noqa: E731
    stream = _size_stream(cfg, sets, feats, out, model_path) if cfg.size_schedule == "stream" else None
    result = train.train(model, feats, training_args(cfg), out, collate_fn=featurize.collate,
                         pad_token_id=tokenizer.pad_token_id, evaluate_fn=evaluate_fn, stream=stream)
    if not distributed.is_main_process():   # torchrun: rank 0 saves
        return None
    heads.save_encoder(model, out / ENCODER, tokenizer)
    io.write_jsonl(out / TRAIN_LOG, result.log_history)
    summary = _train_summary(result, {t: len(f) for t, f in feats.items()})
    rows = [{"run_id": out.name, "stage": "intermediate", "task": "+".join(sets), "language": "all",
             "split": "train", "metric": k, "value": v, "n_examples": result.examples_seen}
            for k, v in summary.items() if k in ("final_loss", "examples_per_second", "own_train_seconds")]
    if held_out:
        # one scoring pass of the kept weights, per language: the verdict pools it (as
        # evaluate_fn would), and a mixed set's rows keep each language's score
        model.eval()
        parts = {task: scorer.per_language(model) for task, scorer in zip(held_out, scorers)}
        verdict = _validate(model, lambda _: sum(map(_pooled, parts.values())) / len(parts), result, cfg,
                            list(held_out))
        summary.update(verdict)
        summary["validation"] = (f"per task, {', '.join(f'{len(v)} {t}' for t, v in held_out.items())} rows held out "
                                 f"of the pool (the end of the seed-{cfg.seed} draw order, in no subset of any size); "
                                 "mean of the tasks' primary metrics")
        rows += learning.metric_rows(out.name, "intermediate", "+".join(sets), verdict,
                                     sum(len(v) for v in held_out.values()))
        by_language = _validation_by_language(parts, out.name)
        if by_language:
            rows += by_language
            summary["validation_by_language"] = {f"{r['task']} {r['language']}": r["value"] for r in by_language}
    else:
        summary["validation"] = "none: the prepare run held out no rows (held_out_examples=0); not validated"
    runs.write_metrics(out, rows)
    _drop_checkpoints(out)
    return Trained(summary, loss_frame(result.log_history), out)


def _size_stream(cfg: C.IntermediateConfig, sets: dict, feats: dict, out: Path, model_path: str):
    """This run as one size branch of the nested stream (xfer_nb.stream). Its trunk states live
    in `<outputs>/streams/`, beside the runs, so every size of a sweep finds them."""
    from xfer_nb import stream
    ((task, ds),) = sets.items()
    if len(feats[task]) != len(ds):
        raise ValueError(f"size_schedule='stream' needs one training feature per example; task={task!r} made "
                         f"{len(feats[task])} features of {len(ds)} examples (QA windows); use 'separate'.")
    runs_root = out.parent.parent
    root = runs_root.parent if runs_root.name == "runs" and out.parent.name == "intermediate" else outputs_dir()
    return stream.Stream(sizes=list(cfg.stream_sizes) or [len(ds)], store=root / "streams",
                         order=stream.interleave_languages(ds["language"]),
                         setup={"task": task, "model": model_path, "pooling": cfg.classifier_pooling,
                                "max_seq_length": cfg.max_seq_length})


def _validate(model, evaluate_fn, result, cfg, task_names: list[str]) -> dict:
    """The learning verdict of the weights the run keeps: the validation score train() already
    computed for them (after the last step, or the best step when early stopping restored it),
    else one scoring pass now."""
    if result.best_step is not None:
        kept = result.best_step if cfg.early_stopping_patience > 0 else result.global_step
        score = next(e["validation_score"] for e in reversed(result.log_history)
                     if "validation_score" in e and e["step"] == kept)
    else:
        model.eval()
        score = evaluate_fn(model)
    return learning.verdict(task_names, score, cfg.learning_threshold)


def _validation_by_language(parts: dict[str, dict[str, tuple[float, int]]], run_id: str) -> list[dict]:
    """metrics.jsonl rows (split "validation", one per task and language) of the kept weights'
    score in each language of a mixed set's held-out rows; [] for one language. The verdict
    stays the pooled score (its rows say language "all")."""
    return [{"run_id": run_id, "stage": "intermediate", "task": task, "language": lang, "split": "validation",
             "metric": "validation_score", "value": round(float(value), 4), "n_examples": n}
            for task, by_lang in parts.items() if len(by_lang) > 1 for lang, (value, n) in by_lang.items()]


def _train_summary(result, sizes: dict) -> dict:
    log = [e for e in result.log_history if "loss" in e]
    summary = {"train_examples": sizes, "steps": result.global_step, "examples_seen": result.examples_seen,
               "train_seconds": round(result.train_seconds, 1),
               "examples_per_second": round(result.examples_per_second, 1), "precision": result.precision,
               "final_loss": round(float(log[-1]["loss"]), 4) if log else None,
               "resumed_from_step": result.resumed_from_step,
               "own_train_seconds": round(result.train_seconds - result.resumed_seconds, 1)}
    if result.stream is not None:
        summary["stream"] = result.stream
    if result.best_step is not None:
        summary.update(best_step=result.best_step, best_validation_score=round(float(result.best_score), 4),
                       stopped_early=result.stopped_early, eval_seconds=round(result.eval_seconds, 1))
    if result.world_size > 1:
        summary["world_size"] = result.world_size
    return summary


def loss_frame(log: list[dict]) -> pd.DataFrame:
    """The loss rows of a training log (validation rows left out), as the notebooks plot them."""
    return pd.DataFrame([e for e in log if "loss" in e])


# ---------------------------------------------------------------- validation (eval_steps > 0)

def hold_out(ds: datasets.Dataset, n: int, seed: int, what: str) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(rest, held_out): the last `n` rows of a seed-`seed` permutation of `ds` are held out;
    both parts keep the rows' original order."""
    import numpy as np
    if n >= len(ds):
        raise ValueError(f"validation_examples={n} leaves no training data: {what} has {len(ds)} examples; "
                         f"use validation_examples < {len(ds)}, or eval_steps=0.")
    perm = np.random.default_rng(seed).permutation(len(ds))
    return ds.select(np.sort(perm[:-n])), ds.select(np.sort(perm[-n:]))


def validation_split(cfg: C.TargetConfig, training: tuple[str, str, str]) -> tuple[str, str, str] | None:
    """(task, "en", "dev") when the target task has labelled English dev data that is not its
    training data; None when the validation examples must be held out of the training data."""
    task = cfg.target_task
    splits = tasks.available(task, cfg.data_source, cfg.data_dir)
    if ("en" in splits.get("dev", []) and (task, "en", "dev") != tuple(training)
            and tasks.has_labels(task, "dev", cfg.data_source)):
        return task, "en", "dev"
    return None


def validation_scorer(metric_task: str, data_task: str, ds: datasets.Dataset, tokenizer, max_seq_length: int, *,
                      head: str | None = None, batch_size: int = 64, word_token: str = "first"):
    """model -> the primary metric of `metric_task` (evaluate.PRIMARY_METRIC) on `ds`, rows of
    `data_task`'s family, predicted through the head `head` (a MultiTaskModel's) or the only one."""
    from xfer_nb import evaluate, featurize, predict
    spec, family = tasks.TASKS[metric_task], tasks.TASKS[data_task].family
    metric = evaluate.PRIMARY_METRIC[metric_task]
    groups = {}
    for lang in sorted(set(ds["language"])):
        part = ds.filter(lambda r: r["language"] == lang) if len(set(ds["language"])) > 1 else ds
        groups[lang] = (part, featurize.featurize(part, family, tokenizer, max_seq_length, for_training=False,
                                                  word_token=word_token))

    def per_language(model) -> dict[str, tuple[float, int]]:
        """{language: (score, rows)}: a mixed set's verdict can then say which language held it back."""
        out = {}
        for lang, (part, feats) in groups.items():
            preds = predict.predict(model, feats, family, batch_size=batch_size, task=head)
            predictions, references = _align(spec, part, preds)
            out[lang] = (evaluate.compute(metric_task, lang, predictions, references)[metric], len(part))
        return out

    def score(model) -> float:
        return _pooled(per_language(model))
    score.per_language = per_language
    return score


def _pooled(by_language: dict[str, tuple[float, int]]) -> float:
    """The score over all held-out rows: each language's score weighted by its rows."""
    return sum(value * n for value, n in by_language.values()) / sum(n for _, n in by_language.values())


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


def target(cfg: C.TargetConfig, run_dir: str = "", upstream_dir: str = "") -> Evaluated | None:
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
        from xfer_nb import distributed
        if not distributed.is_main_process():   # torchrun: nothing to train; rank 0 evaluates
            return None
        (score_rows, layer), log = _evaluate_retrieval(cfg, spec, encoder_path, tokenizer, langs), []
        train_summary = {"retrieval_layer": layer, "retrieval_pooling": cfg.retrieval_pooling}
    else:
        model, log, train_summary = _train_target(cfg, spec, encoder_path, tokenizer, out)
        if model is None:   # torchrun: rank 0 evaluates and writes the results
            return None
        score_rows = _evaluate_supervised(cfg, spec, model, tokenizer, langs)
    rows = []
    if "learned" in train_summary:
        rows += learning.metric_rows(out.name, "target", cfg.target_task, train_summary,
                                     train_summary["validation_examples"])
    for lang, split, n, scores in score_rows:
        rows += evaluate.metric_rows(out.name, "target", cfg.target_task, lang, split, scores, n, lang in seen)
    runs.write_metrics(out, rows)
    io.write_jsonl(out / TRAIN_LOG, log)
    _drop_checkpoints(out)
    table = pd.DataFrame(rows)
    summary = {"target_task": cfg.target_task, "languages": len(langs), **train_summary,
               "seconds": round(time.time() - started, 1)}
    return Evaluated(summary, table, loss_frame(log), out)


def _train_target(cfg, spec, encoder_path, tokenizer, out):
    from xfer_nb import featurize, train
    from xfer_nb.models import heads
    training = tasks.target_training(cfg.target_task, cfg.data_source)
    if training is None:
        raise ValueError(f"target_task={cfg.target_task!r} has no English training data for data_source="
                         f"{cfg.data_source!r}; it cannot be a trained target task")
    from xfer_nb import distributed
    train_task, lang, split = training
    train_ds = tasks.load(train_task, lang, split, source=cfg.data_source, data_dir=cfg.data_dir)
    evaluate_fn, where = None, None
    if cfg.validation_examples > 0:   # every trained target run is validated (eval_steps: also during training)
        dev = validation_split(cfg, training)
        if dev is None:
            train_ds, val_ds = hold_out(train_ds, cfg.validation_examples, cfg.seed,
                                        f"the English training data ({train_task} {lang} {split})")
            where = (f"held out: the last {len(val_ds)} rows of a seed-{cfg.seed} permutation of {train_task} "
                     f"{lang} {split} (not trained on)")
        else:
            val_ds = _cap(tasks.load(*dev, source=cfg.data_source, data_dir=cfg.data_dir, require_labels=True),
                          cfg.validation_examples, EVAL_SEED)
            where = f"{len(val_ds)} rows of {dev[0]} {dev[1]} {dev[2]}"
        evaluate_fn = validation_scorer(cfg.target_task, train_task, val_ds, tokenizer, cfg.max_seq_length,
                                        batch_size=cfg.eval_batch_size, word_token=cfg.word_label_token)
    train_ds = _cap(train_ds, cfg.max_train_examples, cfg.seed)
    feats = featurize.featurize(train_ds, spec.family, tokenizer, cfg.max_seq_length, word_token=cfg.word_label_token)
    model = heads.build_task_model(encoder_path, spec.family, num_labels(spec), seed=cfg.seed,
                                   pooling=cfg.classifier_pooling)
    result = train.train(model, {cfg.target_task: feats}, training_args(cfg), out, collate_fn=featurize.collate,
                         pad_token_id=tokenizer.pad_token_id, evaluate_fn=evaluate_fn)
    summary = _train_summary(result, {cfg.target_task: len(feats)})
    if not distributed.is_main_process():
        return None, result.log_history, summary
    if evaluate_fn is not None:
        summary.update(_validate(model, evaluate_fn, result, cfg, [cfg.target_task]))
        summary["validation"] = where
        summary["validation_examples"] = len(val_ds)
    return model, result.log_history, summary


def _evaluate_supervised(cfg, spec, model, tokenizer, langs):
    from xfer_nb import evaluate, featurize, predict
    split = spec.eval_split[cfg.data_source]
    model.eval()
    results = []
    for lang in langs:
        ds = tasks.load(cfg.target_task, lang, split, source=cfg.data_source, data_dir=cfg.data_dir,
                        require_labels=True)
        ds = _cap(tasks.partition(cfg.target_task, split, cfg.data_source, ds, "eval"), cfg.max_eval_examples,
                  EVAL_SEED)
        feats = featurize.featurize(ds, spec.family, tokenizer, cfg.max_seq_length, for_training=False,
                                    word_token=cfg.word_label_token)
        preds = predict.predict(model, feats, spec.family, batch_size=cfg.eval_batch_size, precision=cfg.precision)
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


# Base models whose trained sentence embedding is the mean of their LAST layer (contrastive
# sentence encoders); every other model retrieves from the paper's layer (XTREME/jiant).
LAST_LAYER_MODELS = ("embedded:multilingual-e5-small", "intfloat/multilingual-e5-small",
                     "intfloat/multilingual-e5-base", "intfloat/multilingual-e5-large")


def retrieval_layer(model_name_or_path: str, setting: int, num_hidden_layers: int) -> int:
    """The hidden_states index retrieval reads: `setting` >= 0 as given; -2 the paper's layer
    (just above the middle: 14 of 24 for XLM-R Large); -1 the base model's default, which is the
    last layer for e5 models (their embedding was trained there: top-1 Tatoeba en-sw 0.98 from
    the last layer against 0.61 from layer 8 on 200 XNLI premises) and the paper's layer else."""
    from xfer_nb.models.hub import default_retrieval_layer
    if setting >= 0:
        return setting
    if setting == -1 and model_name_or_path in LAST_LAYER_MODELS:
        return num_hidden_layers
    return default_retrieval_layer(num_hidden_layers)


def _evaluate_retrieval(cfg, spec, encoder_path, tokenizer, langs):
    from xfer_nb import evaluate
    from xfer_nb.models import heads
    from xfer_nb.models.hub import sentence_embeddings
    from xfer_nb.devices import resolve_device
    encoder = heads.load_encoder(encoder_path).eval().to(resolve_device(cfg.device))  # embeddings run there
    split = spec.eval_split[cfg.data_source]
    layer = retrieval_layer(cfg.model_name_or_path, cfg.retrieval_layer, int(encoder.config.num_hidden_layers))
    results = []
    for lang in langs:
        ds = tasks.load(cfg.target_task, lang, split, source=cfg.data_source, data_dir=cfg.data_dir)
        src = ds.filter(lambda r: r["side"] == "source")
        tgt = ds.filter(lambda r: r["side"] == "target")
        embed = lambda d: sentence_embeddings(encoder, tokenizer, d["sentence"], layer=layer,
                                              pooling=cfg.retrieval_pooling, batch_size=cfg.eval_batch_size,
                                              max_length=cfg.max_seq_length, precision=cfg.precision)
        if cfg.target_task == "tatoeba":
            # XTREME's direction: English sentences query the other language's sentences.
            # max_eval_examples caps the queries only: the candidates are always the whole pool
            # (up to 1,000 per language), as in XTREME; a smaller pool inflates every score.
            index = {t: i for i, t in enumerate(tgt["id"])}
            english = tgt.select([index[g] for g in src["gold"]])
            queries = _cap(english.add_column("position", list(range(len(english)))), cfg.max_eval_examples,
                           EVAL_SEED)
            scores = {"accuracy": evaluate.tatoeba_accuracy(embed(queries), embed(src), queries["position"],
                                                            language=lang)}
            n = len(queries)
        else:
            gold = [(s, g) for s, g in zip(src["id"], src["gold"]) if g]
            scores = evaluate.bucc_mine_and_score(embed(src), embed(tgt), src["id"], tgt["id"], gold,
                                                  src_texts=src["sentence"], tgt_texts=tgt["sentence"])
            n = len(src)
        results.append((lang, split, n, scores))
    return results, f"hidden_states[{layer}] of {encoder.config.num_hidden_layers}"
