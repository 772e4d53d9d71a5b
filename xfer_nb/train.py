"""The project's own training loop: single- and multi-task fine-tuning of an encoder.

One function, :func:`train`, does what Hugging Face's ``Trainer`` does for
``run_xnli.py``-style fine-tuning (AdamW, linear warm-up then linear decay, gradient
clipping and accumulation, checkpoints, resumption), plus what the study needs and the
Trainer lacks:

* **Multi-task sampling.** ``train_sets`` maps task names to featurised datasets. Each
  micro-batch draws a task: ``proportional`` to its (capped) size, ``uniform``, or
  ``temperature``-scaled, ``p ∝ min(n, cap) ** (1 / T)`` (jiant's and T5's "examples-
  proportional mixing with an artificial limit K"). The model's forward then gets
  ``task=<name>``.
* **Length grouping** per task, as the Trainer's ``group_by_length``: shuffle, cut into
  megabatches of 50 batches, sort each megabatch by length, cut into batches (here the
  order of the batches is shuffled as well, and small sets are not cut into at least 4
  megabatches as HF does), pad each batch only to its longest row.
* **Exact resumption.** A checkpoint holds the model, optimizer, scheduler, each
  sampler's epoch, position and generator state, every RNG state and the log history.
  A run killed at any point and resumed gives the same losses and the same weights, bit
  for bit, as one that was never interrupted (on one CPU thread, same machine).
* **Vocabulary pruning** (``prune_vocabulary``), an exact speed-up for large
  vocabularies (XLM-R's 250,002 pieces). Only the embedding rows of token ids that occur
  in the training data get a gradient; all other rows get a gradient of exactly zero
  for the whole run. With AdamW, a row whose gradient has always been zero has zero
  first and second moments, so its Adam update is exactly ``0 / (0 + eps) = 0``; the only
  change to it is the decoupled weight decay ``w ← w · (1 − lr_t · wd)`` at each step.
  Training therefore runs on the used rows only (the word-embedding matrix, its
  gradient and its optimizer state shrink from 250k rows to the few thousand the data
  uses), and when the run ends the full matrix is restored: the used rows from
  training, every other row its original value times ``∏_t (1 − lr_t · wd)`` (the exact
  closed form of the decay it would have received). Losses are identical to full-
  vocabulary training and weights equal up to float rounding of that product (tested).
  The pad id keeps its index (ids ``0..pad_token_id`` are always kept, the kept ids are
  sorted), because RoBERTa-style models derive position ids from ``input_ids != pad``.
  Not allowed when the word embeddings are tied to an output layer.
* **freeze_word_embeddings** is a *recipe change*, not an exact speed-up: the word-
  embedding matrix is not trained at all (nor decayed). With it, prune_vocabulary has
  nothing to do and is ignored.
* **Precision.** ``fp32``; ``bf16`` = ``torch.autocast`` to bfloat16 around the
  forward pass, weights and optimizer in fp32; ``fp16`` = autocast to float16 with a
  gradient scaler, on CUDA only; ``auto`` = bf16 where the device has it natively, else
  fp32 (bf16 gave 2.6x the examples/s of fp32 for e5-small on a 2-core Zen 4 CPU). The
  rules, and the refusal of emulated bf16, live in :mod:`xfer_nb.devices`; the precision
  used is recorded in ``TrainResult.precision``.

* **Device.** ``args.device``: ``"auto"`` = CUDA when ``torch.cuda.is_available()``,
  else CPU; ``"cuda"`` without CUDA raises a ValueError before anything changes.
  :func:`train` moves the model (and every batch) there, and leaves it there.
* **Validation and early stopping.** With ``evaluate_fn(model) -> float`` (higher is
  better) and ``eval_steps > 0``, the model is scored every ``eval_steps`` optimizer
  steps and after the last step (in eval mode, then back to train mode; the RNG states
  are saved before and put back after, so scoring never changes the training itself).
  Each score is a ``{step, validation_score, epoch}`` entry of ``log_history``.
  With ``early_stopping_patience = p > 0`` training stops after ``p`` scores in a row
  without a strict improvement, and the best-scoring weights are put back at the end
  (held in memory; a checkpoint stores them as ``best_model.pt`` together with the best
  score, best step and count of scores without improvement, so a resumed run stops at
  the same step and ends with the same weights as an uninterrupted one). The learning-
  rate schedule is the one of the full run (stopping only cuts it short).
* **Several processes (torchrun / DDP).** Under ``torchrun`` with ``WORLD_SIZE > 1``
  :func:`train` starts ``torch.distributed`` (``nccl`` on CUDA, ``gloo`` on CPU), wraps
  the model in ``DistributedDataParallel`` and gives rank ``r`` the draws ``r, r + W,
  ...`` of the one seeded batch sequence: a step sees ``batch x W x accumulation``
  examples, the same arithmetic as one process with accumulation ``W x accumulation``.
  Rank 0 writes checkpoints (with every rank's RNG state) and prints; counts and losses
  are summed over the ranks; all ranks end with identical weights. See
  :mod:`xfer_nb.launch` for launching one stage this way. Dropout draws differ by
  rank (rank ``r`` seeds torch with ``seed + r``).

Steps: one *step* is one optimizer update of ``gradient_accumulation_steps``
micro-batches. An *epoch* is ``ceil(n / batch)`` micro-batches for one task, and
``Σ_task ceil(min(n_task, cap) / batch)`` for several; the samplers themselves run
through their own data epoch after epoch. ``max_steps > 0`` overrides the epochs.

Progress: a tqdm bar on stderr when stderr is a terminal, otherwise one printed line
every ``logging_steps`` steps (saved notebooks carry no progress-bar noise);
``progress=False`` prints nothing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import random
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from xfer_nb import distributed, io
from xfer_nb import stream as size_stream
from xfer_nb.batching import length_grouped
from xfer_nb.devices import autocast_or_none, resolve_device, resolve_precision
from xfer_nb.train_args import SAMPLING, TrainingArgs, stream_conflicts

MEGABATCH_MULT = 50  # batches per length-sorted megabatch, as in HF's LengthGroupedSampler
# Fields that change neither the numbers nor the order of anything trained: a checkpoint
# written under other values of these may be resumed.
_RESUME_NEUTRAL = ("logging_steps", "checkpoint_every_steps", "save_total_limit", "num_threads")
# Columns of a featurised dataset (xfer_nb.featurize) that go to collate_fn; the rest
# (length, example_id, word_ids, ...) stay behind.
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels", "start_positions", "end_positions")


@dataclass
class TrainResult:
    global_step: int
    examples_seen: int
    train_seconds: float
    examples_per_second: float
    tokens_per_second: float  # real (attention-mask) tokens, not padding
    log_history: list[dict] = field(default_factory=list)  # {step, loss, learning_rate, epoch} and {step, validation_score, epoch}
    task_counts: dict[str, int] = field(default_factory=dict)  # micro-batches drawn per task
    tokens_seen: int = 0
    padded_tokens_seen: int = 0  # batch x padded length, summed
    resumed_from_step: int = 0
    vocab_rows_trained: int | None = None  # with prune_vocabulary: rows kept
    best_step: int | None = None  # step of the best validation score (None: no validation)
    best_score: float | None = None
    stopped_early: bool = False  # early stopping ended the run before its last step
    eval_seconds: float = 0.0  # spent in evaluate_fn (not in train_seconds)
    world_size: int = 1  # processes that trained (torchrun)
    device: str = "cpu"
    precision: str = "fp32"  # as trained: args.precision, with "auto" resolved
    resumed_seconds: float = 0.0  # train_seconds already spent by the checkpoint or trunk state resumed from
    stream: dict | None = None  # size stream (xfer_nb.stream): branch step, trunk step resumed from, sizes

    @property
    def validation_history(self) -> list[dict]:
        """The ``{step, validation_score, epoch}`` entries of log_history."""
        return [e for e in self.log_history if "validation_score" in e]

    @property
    def loss_history(self) -> list[dict]:
        """The ``{step, loss, learning_rate, epoch}`` entries of log_history."""
        return [e for e in self.log_history if "loss" in e]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- sampling

def task_probabilities(sizes: Mapping[str, int], scheme: str, temperature: float = 2.0,
                       cap: int | None = None) -> dict[str, float]:
    """Probability of drawing each task for a micro-batch.

    proportional: ∝ min(n, cap); temperature: ∝ min(n, cap) ** (1 / T); uniform: 1 / K."""
    if scheme not in SAMPLING:
        raise ValueError(f"multitask_sampling={scheme!r} is not allowed; allowed: {list(SAMPLING)}.")
    capped = {t: float(min(n, cap) if cap else n) for t, n in sizes.items()}
    if scheme == "uniform":
        weights = {t: 1.0 for t in capped}
    elif scheme == "proportional":
        weights = capped
    else:
        weights = {t: n ** (1.0 / temperature) for t, n in capped.items()}
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


class BatchSampler:
    """An endless stream of batches (lists of row indices) over one dataset, epoch after epoch.

    With ``group_by_length``: HF-style megabatches (shuffle, cut into megabatches of 50
    batches, sort each by length, longest first, cut into batches), then the order of
    the batches is shuffled. Unlike HF's ``get_length_grouped_indices``, a megabatch is
    always 50 batches: HF shrinks it for small sets so that there are at least 4
    megabatches (measured on 512 XNLI English pairs, batch 32: padded/real tokens 1.19
    with HF's rule, 1.05 here; on 2,000 pairs 1.06 and 1.03). For a set of at most 50
    batches the randomness is then in the tie order and the shuffled batch order. The state is (epoch, position, the generator's state at the
    start of the epoch), so a restored sampler continues exactly where it was."""

    def __init__(self, lengths: list[int] | np.ndarray, batch_size: int, seed: int, group_by_length: bool = True):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if len(self.lengths) == 0:
            raise ValueError("a training set is empty")
        self.batch_size = batch_size
        self.group_by_length = group_by_length
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self._start_state = self.generator.get_state()
        self._batches = self._make_batches()

    def __len__(self) -> int:  # batches per epoch
        return math.ceil(len(self.lengths) / self.batch_size)

    def _make_batches(self) -> list[np.ndarray]:
        n, bs = len(self.lengths), self.batch_size
        perm = torch.randperm(n, generator=self.generator).numpy()
        if not self.group_by_length:
            return [perm[i:i + bs] for i in range(0, n, bs)]
        batches = length_grouped(perm, self.lengths, bs, MEGABATCH_MULT)
        order = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[k] for k in order]

    def next(self) -> np.ndarray:
        if self.position >= len(self._batches):
            self.epoch += 1
            self.position = 0
            self._start_state = self.generator.get_state()
            self._batches = self._make_batches()
        batch = self._batches[self.position]
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "generator": self._start_state.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._start_state = state["generator"].clone()
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._batches = self._make_batches()


class MultiTaskSampler:
    """Draws a task per micro-batch, then that task's next batch."""

    def __init__(self, lengths: Mapping[str, Any], batch_size: int, seed: int, group_by_length: bool = True,
                 scheme: str = "proportional", temperature: float = 2.0, cap: int | None = None):
        self.tasks = list(lengths)
        self.samplers = {t: BatchSampler(lengths[t], batch_size, _task_seed(seed, t), group_by_length) for t in self.tasks}
        probs = task_probabilities({t: len(lengths[t]) for t in self.tasks}, scheme, temperature, cap)
        self.probabilities = torch.tensor([probs[t] for t in self.tasks], dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(_task_seed(seed, "\0task-draws"))
        capped = {t: (min(len(lengths[t]), cap) if cap else len(lengths[t])) for t in self.tasks}
        self.batches_per_epoch = sum(math.ceil(n / batch_size) for n in capped.values())

    def draw_task(self) -> str:
        if len(self.tasks) == 1:
            return self.tasks[0]
        k = torch.multinomial(self.probabilities, 1, generator=self.generator).item()
        return self.tasks[k]

    def next(self) -> tuple[str, np.ndarray]:
        task = self.draw_task()
        return task, self.samplers[task].next()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "samplers": {t: s.state_dict() for t, s in self.samplers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        for t, s in self.samplers.items():
            s.load_state_dict(state["samplers"][t])


def _task_seed(seed: int, task: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(task.encode())) % (2**63 - 1)


# --------------------------------------------------------------------------- model parts

def word_embeddings(model: nn.Module) -> nn.Embedding:
    """The model's input word-embedding module (HF models, or wrappers with .encoder)."""
    for candidate in (model, getattr(model, "encoder", None), getattr(model, "model", None)):
        getter = getattr(candidate, "get_input_embeddings", None)
        if getter is not None:
            try:
                emb = getter()
            except (NotImplementedError, AttributeError):
                emb = None
            if isinstance(emb, nn.Embedding):
                return emb
    found = [m for name, m in model.named_modules() if name.endswith("word_embeddings") and isinstance(m, nn.Embedding)]
    if len(found) == 1:
        return found[0]
    raise ValueError("cannot find the model's word embeddings (no get_input_embeddings() and not exactly one "
                     "'*word_embeddings' nn.Embedding); freeze_word_embeddings / prune_vocabulary need them.")


def _no_decay_names(model: nn.Module) -> set[str]:
    """Biases and normalisation weights (HF's convention): no weight decay."""
    names = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(module).__name__.lower()
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if is_norm or p_name == "bias" or p_name.endswith("_bias"):
                names.add(full)
    return names


def _make_optimizer(model: nn.Module, args: TrainingArgs) -> torch.optim.Optimizer:
    no_decay = _no_decay_names(model)
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if name in no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    try:
        return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, ValueError, TypeError):  # fused not supported for this device/dtype
        return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-8, foreach=True)


def lr_factor(kind: str, step: int, warmup_steps: int, total_steps: int, decay_ratio: float = 0.2) -> float:
    """The learning-rate multiplier at `step` (0-based) of a run of `total_steps`.

    linear: warm-up from 0, then linear decay to 0 (HF get_linear_schedule_with_warmup);
    constant_with_warmup: warm-up, then 1; wsd: warm-up, 1, then linear decay to 0 over the
    last ceil(decay_ratio * total_steps) steps. The stable phase of wsd does not depend on the
    run's length, so runs of any length share it: that is what size branches build on."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if kind == "constant_with_warmup":
        return 1.0
    if kind == "wsd":
        decay = max(1, math.ceil(decay_ratio * total_steps))
        start = max(warmup_steps, total_steps - decay)
        return 1.0 if step < start else max(0.0, (total_steps - step) / max(1, total_steps - start))
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, kind: str = "linear",
                    decay_ratio: float = 0.2):
    """A LambdaLR over :func:`lr_factor` (default: HF's linear warm-up and decay)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(kind, step, warmup_steps, total_steps, decay_ratio))


class _PrunedVocabulary:
    """Swaps the word-embedding matrix for its used rows; puts the full matrix back at the end."""

    def __init__(self, embedding: nn.Embedding, model: nn.Module, used_ids: np.ndarray, pad_token_id: int | None):
        weight = embedding.weight
        shared = [n for n, p in model.named_parameters(remove_duplicate=False) if p is weight]
        if len(shared) > 1:
            raise ValueError(f"prune_vocabulary=True needs untied word embeddings; the matrix is shared by {shared}.")
        vocab = weight.shape[0]
        keep = set(int(i) for i in used_ids)
        keep.update(range(0, (pad_token_id if pad_token_id is not None else -1) + 1))
        if embedding.padding_idx is not None:
            keep.update(range(0, embedding.padding_idx + 1))
        ids = torch.tensor(sorted(i for i in keep if 0 <= i < vocab), dtype=torch.long)
        if len(ids) and int(max(keep)) >= vocab:
            raise ValueError(f"token id {max(keep)} is outside the vocabulary of {vocab} rows")
        self.embedding = embedding
        self.full_weight = weight  # the original Parameter, kept (untouched) until restore()
        self.ids = ids
        self.old_to_new = torch.full((vocab,), -1, dtype=torch.long)
        self.old_to_new[ids] = torch.arange(len(ids))
        self.old_to_new = self.old_to_new.to(weight.device)
        if embedding.padding_idx is not None:
            assert int(self.old_to_new[embedding.padding_idx]) == embedding.padding_idx
        self.log_decay = 0.0  # Σ_t log(1 - lr_t * wd): decay the unused rows would have had
        embedding.weight = nn.Parameter(weight.detach()[ids].clone(), requires_grad=weight.requires_grad)
        embedding.num_embeddings = len(ids)

    def remap(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.old_to_new[input_ids.to(self.old_to_new.device)].to(input_ids.device)

    @contextlib.contextmanager
    def full_matrix(self, log_decay: float):
        """For scoring mid-run: the full matrix exactly as restore() would build it after
        ``log_decay``, in a copy (no gradient); the trained rows are put back afterwards."""
        trained = self.embedding.weight
        with torch.no_grad():
            full = self.full_weight.detach().clone()
            if log_decay != 0.0:
                full.mul_(math.exp(log_decay))
            full[self.ids.to(full.device)] = trained.detach().to(full.device, full.dtype)
        self.embedding.weight = nn.Parameter(full, requires_grad=False)
        self.embedding.num_embeddings = full.shape[0]
        try:
            yield
        finally:
            self.embedding.weight = trained
            self.embedding.num_embeddings = trained.shape[0]

    def restore(self) -> None:
        full = self.full_weight
        with torch.no_grad():
            if self.log_decay != 0.0:
                full.mul_(math.exp(self.log_decay))
            full[self.ids.to(full.device)] = self.embedding.weight.detach().to(full.device, full.dtype)
        self.embedding.weight = full
        self.embedding.num_embeddings = full.shape[0]


def _used_token_ids(train_sets: Mapping[str, Any]) -> np.ndarray:
    from xfer_nb.featurize import used_token_ids
    return np.array(sorted(used_token_ids(*train_sets.values())), dtype=np.int64)


def _lengths(ds) -> list[int]:
    if "length" in ds.column_names:
        return list(ds["length"])
    return [len(r) for r in ds["input_ids"]]


# --------------------------------------------------------------------------- checkpoints

def _checkpoint_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit() and (p / "trainer_state.json").exists():
            found.append((int(p.name[5:]), p))
    return sorted(found)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _run_signature(args: TrainingArgs, train_sets: Mapping[str, Any], vocab_rows: int | None,
                   world: int = 1) -> dict:
    fields = {k: v for k, v in dataclasses.asdict(args).items() if k not in _RESUME_NEUTRAL}
    fields = {k: fields[k] for k in (f.name for f in dataclasses.fields(TrainingArgs)) if k in fields}
    signature = {"args": fields, "tasks": {t: len(ds) for t, ds in train_sets.items()}, "vocab_rows": vocab_rows}
    if world > 1:   # absent for one process, so single-process checkpoints keep their signature
        signature["world_size"] = world
    return signature


# --------------------------------------------------------------------------- training

def train(model: nn.Module, train_sets: Mapping[str, Any], args: TrainingArgs, output_dir: str | os.PathLike, *,
          collate_fn: Callable[[list[dict], int], dict], pad_token_id: int, resume: bool = True,
          progress: bool | None = None, evaluate_fn: Callable[[nn.Module], float] | None = None,
          stream: size_stream.Stream | None = None) -> TrainResult:
    """Train ``model`` in place on ``train_sets`` ({task: featurised Dataset}) and return a TrainResult.

    ``collate_fn(rows, pad_token_id)`` pads a list of row dicts into a batch of tensors.
    With several tasks (or a forward that takes ``task``) the model is called as
    ``model(task=name, **batch)``; it must return a mapping (or ModelOutput) with ``loss``.
    Checkpoints go to ``output_dir/checkpoints/step-N`` every ``checkpoint_every_steps``
    steps (and at the end), keeping the newest ``save_total_limit``; with ``resume=True``
    the newest one is continued from (``resume=False`` deletes them first).

    ``evaluate_fn(model) -> float`` (higher is better) scores the model every
    ``args.eval_steps`` steps and after the last one; with ``args.early_stopping_patience``
    it drives early stopping (see the module docstring). Under torchrun it runs on rank 0
    only, on the unwrapped model, and its score is broadcast. The model ends on
    ``args.device``.

    ``stream`` (one task, one process): train this size's branch of a nested size stream
    (:mod:`xfer_nb.stream`): one pass in stream order, a constant rate up to the branch point,
    then a linear decay; trunk states are read from and written to ``stream.store``."""
    if not train_sets:
        raise ValueError("train_sets is empty; give at least one {task: dataset}.")
    if not isinstance(args, TrainingArgs):
        raise TypeError(f"args must be a TrainingArgs, got {type(args).__name__}")
    if args.early_stopping_patience > 0 and evaluate_fn is None:
        raise ValueError(f"early_stopping_patience={args.early_stopping_patience} needs an evaluate_fn(model) -> "
                         "score; pass one, or set early_stopping_patience=0.")
    output_dir = Path(output_dir)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    autocast = autocast_or_none(precision, device)
    ddp = distributed.init(device.type)
    world, rank = (distributed.world_size(), distributed.rank()) if ddp else (1, 0)
    torch.set_num_threads(args.num_threads)
    model.to(device)

    random.seed(args.seed)
    np.random.seed(args.seed % 2**32)
    torch.manual_seed(args.seed + rank)   # rank 0 (and a single process) seeds as before

    emb = None
    if args.freeze_word_embeddings or args.prune_vocabulary:
        emb = word_embeddings(model)
    frozen_before = None
    if args.freeze_word_embeddings:
        frozen_before = emb.weight.requires_grad
        emb.weight.requires_grad_(False)
    if stream is not None:
        _check_stream(stream, train_sets, args, world)
        stream.setup = {**stream.setup, "weights": size_stream.weights_digest(model)}
    pruned = None
    if args.prune_vocabulary and not args.freeze_word_embeddings:
        pruned = _PrunedVocabulary(emb, model, _used_token_ids(train_sets), pad_token_id)

    run = _Run(args=args, output_dir=output_dir, collate_fn=collate_fn, pad_token_id=pad_token_id, resume=resume,
               progress=progress, device=device, autocast=autocast, pruned=pruned, evaluate_fn=evaluate_fn,
               world=world, rank=rank, precision=precision, stream=stream)
    try:
        return _train_loop(model, train_sets, run)
    finally:
        if pruned is not None:
            pruned.restore()
        if frozen_before is not None:
            emb.weight.requires_grad_(frozen_before)


@dataclass
class _Run:
    args: TrainingArgs
    output_dir: Path
    collate_fn: Callable
    pad_token_id: int
    resume: bool
    progress: bool | None
    device: torch.device
    autocast: Any
    pruned: Any
    evaluate_fn: Callable | None
    world: int
    rank: int
    precision: str  # args.precision with "auto" resolved
    stream: Any = None


def _check_stream(stream, train_sets: Mapping[str, Any], args: TrainingArgs, world: int) -> None:
    problems = stream_conflicts(args)
    if len(train_sets) != 1:
        problems.append(f"one task (got {sorted(train_sets)})")
    if world > 1:
        problems.append(f"one process (got a torchrun world of {world})")
    if problems:
        raise ValueError("size_schedule='stream' cannot run with " + "; ".join(problems))
    ((task, ds),) = train_sets.items()
    stream.check(len(ds))


class _StreamTaskSampler:
    """A StreamSampler in the shape of MultiTaskSampler: (task, dataset rows) per batch."""

    def __init__(self, task: str, sampler, order: np.ndarray):
        self.task, self.sampler, self.order = task, sampler, order
        self.batches_per_epoch = len(sampler)

    def next(self) -> tuple[str, np.ndarray]:
        return self.task, self.order[self.sampler.next()]

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _train_loop(model: nn.Module, train_sets: Mapping[str, Any], run: _Run) -> TrainResult:
    args, output_dir, device, pruned = run.args, run.output_dir, run.device, run.pruned
    world, main = run.world, run.rank == 0
    tasks = list(train_sets)
    bs = args.per_device_train_batch_size
    accum = args.gradient_accumulation_steps
    trunk = None
    optimizer = _make_optimizer(model, args)
    if run.stream is not None:
        sampler, total_steps, scheduler, trunk = _stream_plan(train_sets, args, run.stream, optimizer)
        batches_per_epoch = sampler.batches_per_epoch
    else:
        sampler = MultiTaskSampler({t: _lengths(train_sets[t]) for t in tasks}, bs, args.seed, args.group_by_length,
                                   args.multitask_sampling, args.multitask_temperature, args.multitask_cap)
        batches_per_epoch = sampler.batches_per_epoch
        if args.max_steps > 0:
            total_steps = args.max_steps
        else:
            total_steps = max(1, math.ceil(args.num_train_epochs * batches_per_epoch / (accum * world)))
        warmup_steps = args.warmup_steps or math.ceil(args.warmup_ratio * total_steps)
        scheduler = linear_schedule(optimizer, warmup_steps, total_steps, args.lr_scheduler_type, args.decay_ratio)
    scaler = torch.amp.GradScaler("cuda") if run.precision == "fp16" else None
    decay_lrs_group = None
    if pruned is not None:
        decay_lrs_group = next(i for i, g in enumerate(optimizer.param_groups)
                               if any(p is pruned.embedding.weight for p in g["params"]))
    pass_task = len(tasks) > 1 or "task" in inspect.signature(model.forward).parameters
    columns = {t: [c for c in MODEL_COLUMNS if c in train_sets[t].column_names] for t in tasks}
    data = {t: train_sets[t].select_columns(columns[t]) for t in tasks}
    params = [p for p in model.parameters() if p.requires_grad]
    signature = _run_signature(args, train_sets, None if pruned is None else len(pruned.ids), world)
    evaluating = run.evaluate_fn is not None and args.eval_steps > 0
    patience = args.early_stopping_patience

    state = {"global_step": 0, "examples_seen": 0, "tokens_seen": 0, "padded_tokens_seen": 0, "train_seconds": 0.0,
             "micro_batches": 0, "log_history": [], "task_counts": {t: 0 for t in tasks}, "log_decay": 0.0,
             "pending_loss": 0.0, "pending_steps": 0, "eval_seconds": 0.0,
             "best_score": None, "best_step": None, "best_log_decay": 0.0, "bad_evals": 0, "stopped_early": False}
    best_weights: dict[str, torch.Tensor] | None = None   # CPU copy of the best model (early stopping)
    resumed_from = 0
    if main:
        if (output_dir / "checkpoints").is_dir():   # leftovers of a write cut short by a kill
            for p in (output_dir / "checkpoints").glob(".step-*.tmp"):
                shutil.rmtree(p, ignore_errors=True)
        if not run.resume and (output_dir / "checkpoints").exists():
            shutil.rmtree(output_dir / "checkpoints")
    distributed.barrier()
    ckpts = _checkpoint_dirs(output_dir) if run.resume else []
    path = None
    if ckpts:
        step, path = ckpts[-1]
        saved = json.loads((path / "trainer_state.json").read_text())
        if saved["signature"] != signature:
            raise ValueError(f"the checkpoint {path} was written by a different training setup "
                             f"({saved['signature']} != {signature}); delete {output_dir / 'checkpoints'} "
                             "or call train(..., resume=False).")
    elif trunk is not None:
        trunk.lock()   # released once this run has passed its branch point: one run extends a trunk at a time
        path = trunk.latest()
        if path is not None:
            saved = json.loads((path / "trainer_state.json").read_text())
            trunk.resumed_from = int(saved["state"]["global_step"])
    if path is not None:
        weights = torch.load(path / "model.pt", map_location=device, weights_only=True)
        moments = torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
        extra = torch.load(path / "state.pt", weights_only=True)  # plain data only: a crafted checkpoint runs no code
        if pruned is not None and extra.get("pruned_ids") is not None:   # a trunk state of another size's rows
            weights, moments = _reprune(weights, moments, extra["pruned_ids"], saved["state"]["log_decay"],
                                        pruned, model, optimizer)
        model.load_state_dict(weights)
        optimizer.load_state_dict(moments)
        scheduler.load_state_dict(extra["scheduler"])
        sampler.load_state_dict(extra["sampler"])
        if scaler is not None and extra.get("scaler"):
            scaler.load_state_dict(extra["scaler"])
        rng = extra.get("rng_per_rank")
        _set_rng_state(rng[run.rank] if rng and len(rng) == world else extra["rng"])
        state.update(saved["state"])
        if patience > 0 and state["best_step"] is not None:
            best_path = path / "best_model.pt"
            best_weights = (torch.load(best_path, map_location="cpu", weights_only=True) if best_path.exists()
                            else _cpu_copy(model))
        resumed_from = state["global_step"]
    resumed_seconds = state["train_seconds"]
    if trunk is not None and state["global_step"] >= trunk.branch_step:
        trunk.unlock()

    def write_checkpoint(tmp: Path, rngs: list | None = None) -> None:
        tmp.mkdir()
        torch.save(model.state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(), "rng": _rng_state(),
                    "rng_per_rank": rngs, "scaler": scaler.state_dict() if scaler is not None else None,
                    "pruned_ids": pruned.ids if pruned is not None and trunk is not None else None},
                   tmp / "state.pt")
        if best_weights is not None and state["best_step"] != state["global_step"]:
            torch.save(best_weights, tmp / "best_model.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"signature": signature, "state": state}, indent=1))

    def save_trunk(step: int) -> None:
        target = trunk.path_at(step) if step in trunk.steps else None
        if target is not None and not target.exists():
            with io.atomic_path(target) as tmp:
                write_checkpoint(tmp)
        if step >= trunk.branch_step:
            trunk.unlock()

    def save_checkpoint():
        rngs = distributed.gather_objects(_rng_state()) if world > 1 else None   # every rank takes part
        step = state["global_step"]
        target = output_dir / "checkpoints" / f"step-{step}"
        if not main or target.exists():
            return
        if pruned is not None:
            pruned.log_decay = state["log_decay"]
        with io.atomic_path(target) as tmp:
            write_checkpoint(tmp, rngs)
        for _, old in _checkpoint_dirs(output_dir)[:-args.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)

    def validate(step: int) -> None:
        nonlocal best_weights
        began = time.perf_counter()
        score = None
        if main:
            rng = _rng_state()   # scoring must not move any RNG the training uses
            model.eval()
            try:   # a pruned vocabulary is scored with its full matrix (validation text may use any id)
                with (pruned.full_matrix(state["log_decay"]) if pruned is not None else contextlib.nullcontext()):
                    score = float(run.evaluate_fn(model))
            finally:
                model.train()
                _set_rng_state(rng)
        score = distributed.broadcast_object(score) if world > 1 else score
        state["eval_seconds"] += time.perf_counter() - began
        state["log_history"].append({"step": step, "validation_score": score,
                                     "epoch": state["micro_batches"] / batches_per_epoch})
        if state["best_score"] is None or score > state["best_score"]:   # NaN never improves
            state["best_score"], state["best_step"], state["bad_evals"] = score, step, 0
            state["best_log_decay"] = state["log_decay"]
            if patience > 0:
                best_weights = _cpu_copy(model)
        else:
            state["bad_evals"] += 1
            if patience > 0 and state["bad_evals"] >= patience and step < total_steps:
                state["stopped_early"] = True
        if main and run.progress is not False and bar is None:
            print(f"step {step}/{total_steps}  validation {score:.4f}  best {state['best_score']:.4f} "
                  f"(step {state['best_step']})" + ("  early stop" if state["stopped_early"] else ""), flush=True)

    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        # tasks whose heads a rank does not use in a step leave parameters without gradient
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=len(tasks) > 1)
    else:
        wrapped = model
    bar = _progress_bar(run.progress, total_steps, state["global_step"]) if main else None
    was_training = model.training
    model.train()
    start = time.perf_counter()
    seconds_before, eval_before = state["train_seconds"], state["eval_seconds"]
    try:
        while state["global_step"] < total_steps and not state["stopped_early"]:
            step_loss = 0.0
            counts = [0, 0]   # tokens, padded tokens of this rank's micro-batches
            for micro in range(accum):
                drawn = [sampler.next() for _ in range(world)]   # every rank draws the same sequence
                for task, idx in drawn:
                    state["examples_seen"] += len(idx)
                    state["task_counts"][task] += 1
                state["micro_batches"] += world
                task, idx = drawn[run.rank]
                rows = data[task][idx.tolist()]
                cols = columns[task]
                features = [{c: rows[c][i] for c in cols} for i in range(len(idx))]
                batch = run.collate_fn(features, run.pad_token_id)
                batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
                if "attention_mask" in batch:
                    counts[0] += int(batch["attention_mask"].sum())
                if "input_ids" in batch:
                    counts[1] += int(batch["input_ids"].numel())
                    if pruned is not None:
                        batch["input_ids"] = pruned.remap(batch["input_ids"])
                if pass_task:
                    batch["task"] = task
                sync = world == 1 or micro == accum - 1
                with (contextlib.nullcontext() if sync else wrapped.no_sync()):
                    if run.autocast is not None:
                        with run.autocast:
                            out = wrapped(**batch)
                    else:
                        out = wrapped(**batch)
                    loss = out["loss"] / accum
                    if scaler is not None:
                        scaler.scale(loss).backward()
                    else:
                        loss.backward()
                step_loss += float(loss.detach())
            if world > 1:   # the global step's loss (mean over ranks) and token counts
                import torch.distributed as dist
                totals = torch.tensor([step_loss, counts[0], counts[1]], dtype=torch.float64,
                                      device=device if device.type == "cuda" else "cpu")
                dist.all_reduce(totals)
                step_loss = float(totals[0]) / world
                counts = [int(totals[1]), int(totals[2])]
            state["tokens_seen"] += counts[0]
            state["padded_tokens_seen"] += counts[1]
            if scaler is not None:
                scaler.unscale_(optimizer)
            if args.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            lr = scheduler.get_last_lr()
            stepped = True
            if scaler is not None:
                scale = scaler.get_scale()
                scaler.step(optimizer)
                scaler.update()
                stepped = scaler.get_scale() >= scale   # a lowered scale means inf/nan grads: step skipped
            else:
                optimizer.step()
            if decay_lrs_group is not None and stepped:
                wd = optimizer.param_groups[decay_lrs_group]["weight_decay"]
                if wd:
                    state["log_decay"] += math.log1p(-lr[decay_lrs_group] * wd)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["global_step"] += 1
            if trunk is not None:
                save_trunk(state["global_step"])
            state["pending_loss"] += step_loss
            state["pending_steps"] += 1
            step = state["global_step"]
            if step % args.logging_steps == 0 or step == total_steps:
                entry = {"step": step, "loss": state["pending_loss"] / state["pending_steps"],
                         "learning_rate": lr[0], "epoch": state["micro_batches"] / batches_per_epoch}
                state["log_history"].append(entry)
                state["pending_loss"], state["pending_steps"] = 0.0, 0
                if bar is None and main and run.progress is not False:
                    elapsed = seconds_before + time.perf_counter() - start - (state["eval_seconds"] - eval_before)
                    print(f"step {step}/{total_steps}  loss {entry['loss']:.4f}  lr {entry['learning_rate']:.3g}  "
                          f"epoch {entry['epoch']:.2f}  {state['examples_seen'] / max(elapsed, 1e-9):.1f} ex/s",
                          flush=True)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", refresh=False)
            if evaluating and (step % args.eval_steps == 0 or step == total_steps):
                validate(step)
            state["train_seconds"] = (seconds_before + time.perf_counter() - start
                                      - (state["eval_seconds"] - eval_before))
            if args.checkpoint_every_steps and (step % args.checkpoint_every_steps == 0 or step == total_steps
                                                or state["stopped_early"]):
                save_checkpoint()
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
        if trunk is not None:
            trunk.unlock()
    restore_best = patience > 0 and best_weights is not None and state["best_step"] != state["global_step"]
    if restore_best:
        model.load_state_dict({k: v.to(device) for k, v in best_weights.items()})
    if pruned is not None:   # the unused rows decay for the steps of the weights kept
        pruned.log_decay = state["best_log_decay"] if restore_best else state["log_decay"]
    if args.checkpoint_every_steps and main:  # keep only the final one: enough to return this result again
        for _, old in _checkpoint_dirs(output_dir)[:-1]:
            shutil.rmtree(old, ignore_errors=True)
    distributed.barrier()
    secs = max(state["train_seconds"], 1e-9)
    return TrainResult(
        global_step=state["global_step"], examples_seen=state["examples_seen"], train_seconds=state["train_seconds"],
        examples_per_second=state["examples_seen"] / secs, tokens_per_second=state["tokens_seen"] / secs,
        log_history=list(state["log_history"]), task_counts=dict(state["task_counts"]),
        tokens_seen=state["tokens_seen"], padded_tokens_seen=state["padded_tokens_seen"],
        resumed_from_step=resumed_from, vocab_rows_trained=None if pruned is None else len(pruned.ids),
        best_step=state["best_step"], best_score=state["best_score"], stopped_early=state["stopped_early"],
        eval_seconds=state["eval_seconds"], world_size=world, device=str(device),
        precision=run.precision, resumed_seconds=resumed_seconds,
        stream=None if trunk is None else trunk.summary())


def _reprune(weights: dict, moments: dict, saved_ids: torch.Tensor, log_decay: float, pruned, model: nn.Module,
             optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """A trunk state written by a run that kept other embedding rows (another size's data),
    re-cut to this run's rows. The rows the trunk trained are in both (the trunk's data is in
    every size's subset); any other row was never trained, so its value is the closed-form
    decay of its initial value (as `_PrunedVocabulary.restore` builds it) and its Adam moments
    are 0: the state is exact for this run's rows."""
    ids = pruned.ids
    if torch.equal(saved_ids.cpu(), ids.cpu()):
        return weights, moments
    vocab = pruned.full_weight.shape[0]
    where = torch.full((vocab,), -1, dtype=torch.long)
    where[saved_ids.cpu()] = torch.arange(len(saved_ids))
    src = where[ids.cpu()]
    have = src >= 0

    def recut(rows: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        out = fill.to(rows.device, rows.dtype).clone()
        out[have.to(rows.device)] = rows[src[have].to(rows.device)]
        return out

    name = next(n for n, p in model.named_parameters() if p is pruned.embedding.weight)
    initial = pruned.full_weight.detach()[ids.to(pruned.full_weight.device)] * math.exp(log_decay)
    weights = {**weights, name: recut(weights[name], initial)}
    index = next(i for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])
                 if p is pruned.embedding.weight)
    state = dict(moments["state"])
    if index in state:
        entry = dict(state[index])
        for key in ("exp_avg", "exp_avg_sq"):
            entry[key] = recut(entry[key], torch.zeros(len(ids), entry[key].shape[1]))
        state[index] = entry
    return weights, {**moments, "state": state}


def _stream_plan(train_sets: Mapping[str, Any], args: TrainingArgs, stream, optimizer):
    """The sampler, length, schedule and trunk of one size branch (see xfer_nb.stream)."""
    S = size_stream
    ((task, ds),) = train_sets.items()
    bs, ratio, n = args.per_device_train_batch_size, args.decay_ratio, len(ds)
    order = np.asarray(stream.order, dtype=np.int64)
    cuts = S.boundaries(stream.sizes, bs, ratio)
    inner = S.StreamSampler(np.asarray(_lengths(ds))[order], bs, args.seed, cuts, args.group_by_length,
                            MEGABATCH_MULT)
    total = len(inner)
    own_point = S.branch_point(n, bs, ratio)
    decay_start = inner.steps_before(own_point)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: S.lr_factor(step, args.warmup_steps, decay_start, total))
    # trunk states at the branch points this run passes; none at the largest size's, which no
    # other size resumes from (a killed run resumes from its own checkpoints)
    largest = S.branch_point(max(stream.sizes), bs, ratio)
    points = sorted({p for p in (S.branch_point(m, bs, ratio) for m in stream.sizes)
                     if 0 < p <= own_point and (p < largest or own_point < largest)})
    digests = S.rows_digests(ds, order, points, MODEL_COLUMNS) if stream.store is not None else {}
    ignored = set(_RESUME_NEUTRAL) | {"eval_steps", "early_stopping_patience", "validation_examples"}
    setup = {"args": {k: v for k, v in dataclasses.asdict(args).items() if k not in ignored}, "cuts": cuts,
             **stream.setup}
    store = S.TrunkStore(stream.store) if stream.store is not None else None
    trunk = S.Trunk(store, setup, {inner.steps_before(p): digests.get(p, "") for p in points}, decay_start,
                    stream.sizes)
    return _StreamTaskSampler(task, inner, order), total, scheduler, trunk


def _progress_bar(progress: bool | None, total: int, initial: int):
    if progress is False:
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)
