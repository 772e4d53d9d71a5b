"""Typed, validated configurations of the three run stages.

Each stage is one dataclass whose fields carry `help` metadata (as in Hugging Face's
`run_xnli.py`). The same field names are the notebooks' parameters, the keys of the
params YAML and the keys of a run's `config.json`: a field is declared once, here (the
training fields once, in `xfer_nb.train_args.TrainingArgs`), and never copied by hand.

`from_dict` rejects unknown keys and wrong types with a message that names the key, the
value and what is allowed, before anything runs.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from xfer_nb.train_args import TrainingArgs, stream_conflicts  # torch-free: plan/sweep start fast

EMBEDDED_MODEL = "embedded:multilingual-e5-small"
NO_INTERMEDIATE = "none"
FULL = -1  # intermediate_size: every example of the pool
SIZE_SCHEDULES = ("separate", "stream")


def _help(text: str, **kw) -> dict:
    return {"metadata": {"help": text}, **kw}


class ConfigError(ValueError):
    """A parameter has an unknown name, a wrong type or a value outside what is allowed."""


@dataclass
class DataSource:
    data_source: str = field(default="local", **_help("'local' (a folder in XTREME's download layout) or 'hub' (Hugging Face datasets)."))
    data_dir: str | None = field(default=None, **_help("Local data folder; default $XFER_NB_DATA or ../shared/data."))

    def __post_init__(self):
        if self.data_source not in ("local", "hub"):
            raise ConfigError(f"data_source={self.data_source!r} is not allowed; use 'local' or 'hub'.")


@dataclass
class PrepareConfig(DataSource):
    """Stage 1: draw the intermediate-task training subset (nested per seed)."""

    intermediate_task: str = field(default="xnli", **_help("Intermediate task, or several joined by '+' for multi-task (e.g. 'xnli+pawsx')."))
    intermediate_size: int = field(default=1000, **_help("Intermediate training examples per task, spread evenly over the languages; -1: the full pool."))
    language_set: str = field(default="en", **_help("Name of the intermediate language set (a key of the params file's language_sets)."))
    intermediate_languages: list[str] = field(default_factory=lambda: ["en"], **_help("Languages of the intermediate data (ISO 639-1 codes)."))
    seed: int = field(default=0, **_help("Seed of the subset draw; the size-N subset is inside the size-M subset (N < M) for one seed."))
    held_out_examples: int = field(default=500, **_help("Pool rows held out to validate the intermediate model: the end of the seeded draw order, never in a subset of any size (0: the intermediate run is not validated)."))

    def __post_init__(self):
        super().__post_init__()
        if self.held_out_examples < 0:
            raise ConfigError(f"held_out_examples={self.held_out_examples} is not allowed; use 0 (no validation) "
                              "or an integer >= 1.")
        if self.intermediate_size <= 0 and self.intermediate_size != FULL:
            raise ConfigError(f"intermediate_size={self.intermediate_size} must be > 0, or -1 for the full pool "
                              f"(size 0 means the no-intermediate baseline, which has no prepare run).")
        if not self.intermediate_languages:
            raise ConfigError("intermediate_languages=[] is empty; give at least one language.")
        _check_seed(self)

    @property
    def tasks(self) -> list[str]:
        return self.intermediate_task.split("+")


@dataclass
class ModelFields:
    model_name_or_path: str = field(default=EMBEDDED_MODEL, **_help(f"Base encoder: a hub name (e.g. 'xlm-roberta-large'), a local folder, or '{EMBEDDED_MODEL}' (offline)."))
    max_seq_length: int = field(default=128, **_help("Maximum tokens per input after tokenisation (QA: window length)."))
    classifier_pooling: str = field(default="first", **_help("What sentence-pair and multiple-choice heads read: 'first' (the <s> vector, as RobertaClassificationHead) or 'mean' (the mean over tokens: e5's own pooling)."))
    word_label_token: str = field(default="first", **_help("Which sub-token carries a word's tag (UD-POS, PAN-X): 'first' (XTREME's protocol) or 'first_content' (skip a bare SentencePiece '▁' piece, which XLM-R's tokenizer puts before most pre-split Chinese and Japanese words)."))

    def __post_init__(self):
        if self.max_seq_length < 8:
            raise ConfigError(f"max_seq_length={self.max_seq_length} is too small; use at least 8.")
        if self.classifier_pooling not in ("first", "mean"):
            raise ConfigError(f"classifier_pooling={self.classifier_pooling!r} is not allowed; use 'first' or 'mean'.")
        if self.word_label_token not in ("first", "first_content"):
            raise ConfigError(f"word_label_token={self.word_label_token!r} is not allowed; use 'first' or "
                              "'first_content'.")


@dataclass
class LearningFields:
    learning_threshold: float | None = field(default=None, **_help("Points above chance that the held-out validation score must reach for the run to count as having learned its task (xfer_nb.learning); None: the family default (pair classification and multiple choice 15, tagging F1 50, QA F1 30); -100 counts every run as learned (plumbing tests). Runs below it are reported and kept out of the primary answer."))

    def __post_init__(self):
        if self.learning_threshold is not None and not -100.0 <= self.learning_threshold <= 100.0:
            raise ConfigError(f"learning_threshold={self.learning_threshold} is not allowed; use None (the family "
                              "default) or points above chance from -100 to 100.")


@dataclass
class IntermediateConfig(TrainingArgs, ModelFields, LearningFields):
    """Stage 2: train the base encoder on the prepared intermediate data; save the encoder."""

    max_train_examples_per_task: int = field(default=-1, **_help("Cap on examples per intermediate task (-1: all prepared ones)."))
    size_schedule: str = field(default="separate", **_help("'separate': each intermediate size is trained on its own; 'stream': the sizes are branches of one pass over the nested stream (xfer_nb.stream): a shared constant-rate trunk, and at (1 - decay_ratio) of each size's steps a branch that decays on the rest of that size's subset (Hagele et al. 2024). Needs lr_scheduler_type 'wsd', one epoch and a fixed warmup_steps."))
    stream_sizes: list[int] = field(default_factory=list, **_help("With size_schedule 'stream': every size that branches off the same stream, this run's included; the grid fills it from the intermediate_size axis. Empty: this run's size alone."))

    def __post_init__(self):
        _check_all(self, TrainingArgs, ModelFields, LearningFields)
        if self.size_schedule not in SIZE_SCHEDULES:
            raise ConfigError(f"size_schedule={self.size_schedule!r} is not allowed; use one of {list(SIZE_SCHEDULES)}")
        if any(size <= 0 for size in self.stream_sizes):
            raise ConfigError(f"stream_sizes={self.stream_sizes} is not allowed; give sizes >= 1 (examples per task)")
        if self.size_schedule == "stream":
            wrong = stream_conflicts(self)
            if self.max_train_examples_per_task != -1:
                wrong.append(f"max_train_examples_per_task={self.max_train_examples_per_task} (needs -1)")
            if wrong:
                raise ConfigError("size_schedule='stream' (one pass over the nested stream with a decay branch per "
                                  "size) cannot run with " + "; ".join(wrong))


@dataclass
class TargetConfig(TrainingArgs, ModelFields, LearningFields, DataSource):
    """Stage 3: train on the target task's English data, then evaluate zero-shot in every language."""

    target_task: str = field(default="pawsx", **_help("XTREME target task: xnli, pawsx, udpos, panx, xquad, mlqa, tydiqa, tatoeba, bucc2018."))
    max_train_examples: int = field(default=-1, **_help("Cap on English training examples (-1: all)."))
    eval_languages: list[str] = field(default_factory=list, **_help("Evaluation languages; empty: every language the task has."))
    max_eval_examples: int = field(default=-1, **_help("Cap on evaluation examples per language (-1: all)."))
    eval_batch_size: int = field(default=64, **_help("Batch size for evaluation (length-sorted)."))
    retrieval_layer: int = field(default=-1, **_help("Hidden layer (index into hidden_states) for retrieval embeddings: -1: the base model's default (e5 models: the last layer, their trained sentence embedding; other models: the paper's layer just above the middle); -2: the paper's layer for any model; >= 0: that layer."))
    retrieval_pooling: str = field(default="mean", **_help("Pooling for retrieval embeddings: 'mean' or 'cls'."))

    def __post_init__(self):
        _check_all(self, TrainingArgs, ModelFields, LearningFields, DataSource)
        if self.retrieval_layer < -2:
            raise ConfigError(f"retrieval_layer={self.retrieval_layer} is not allowed; use -1 (the model's default), "
                              "-2 (the paper's middle layer) or a layer index >= 0.")
        if self.retrieval_pooling not in ("mean", "cls"):
            raise ConfigError(f"retrieval_pooling={self.retrieval_pooling!r} is not allowed; use 'mean' or 'cls'.")


def _check_all(cfg, *bases: type) -> None:
    """Run each base's own checks (dataclass inheritance calls only the first), and the
    checks every stage shares."""
    for base in bases:
        check = base.__dict__.get("__post_init__")
        if check is not None:
            check(cfg)
    _check_seed(cfg)


def _check_seed(cfg) -> None:
    seed = getattr(cfg, "seed", 0)
    if not 0 <= seed < 2**32:  # numpy and torch seeds; -1 fails only inside the run otherwise
        raise ConfigError(f"seed={seed} is not allowed; use a whole number from 0 to {2**32 - 1}")


STAGES: dict[str, type] = {
    "prepare": PrepareConfig,
    "intermediate": IntermediateConfig,
    "target": TargetConfig,
}


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    """Check (and gently coerce int→float) a value against a type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            ok, coerced = _type_ok(value, option)
            if ok:
                return True, coerced
        return False, value
    if hint is type(None):
        return value is None, value
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, (list, tuple)):
            return False, value
        out = []
        for v in value:
            ok, c = _type_ok(v, item)
            if not ok:
                return False, value
            out.append(c)
        return True, out
    if hint is Any:
        return True, value
    if hint is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        return False, value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def from_dict(cls: type, values: dict[str, Any], *, where: str = "") -> Any:
    """Build a stage config, failing on unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = field_names(cls)
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{prefix}unknown parameter(s) {unknown} for {cls.__name__}; allowed: {names}")
    clean = {}
    for key, value in values.items():
        ok, coerced = _type_ok(value, hints[key])
        if not ok:
            raise ConfigError(f"{prefix}parameter {key}={value!r} has type {type(value).__name__}; "
                              f"{cls.__name__}.{key} expects {_type_name(hints[key])}")
        clean[key] = coerced
    try:
        return cls(**clean)
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{prefix}{err}") from None


def from_namespace(cls: type, namespace: dict[str, Any]) -> Any:
    """Build a stage config from a notebook's globals (its parameters cell)."""
    return from_dict(cls, {k: namespace[k] for k in field_names(cls) if k in namespace})


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
