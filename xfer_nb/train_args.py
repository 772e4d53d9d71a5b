"""Training hyper-parameters, without torch: :class:`TrainingArgs` and its allowed values.

Kept apart from :mod:`xfer_nb.train` so that :mod:`xfer_nb.config` (and with it
``xfer-nb plan`` / ``xfer-nb sweep``) validates configurations without importing torch.
:mod:`xfer_nb.train` re-exports everything here. The fields' names, defaults and order
are part of every run id (a run's id hashes its whole config): never change them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
SAMPLING = ("proportional", "uniform", "temperature")
DEVICES = ("auto", "cpu", "cuda")
SCHEDULES = ("linear", "constant_with_warmup", "wsd")


def stream_conflicts(args) -> list[str]:
    """Why these training settings cannot train one size branch of the nested stream
    (xfer_nb.stream); empty when they can. Shared by config validation and train()."""
    needs = {"lr_scheduler_type": "wsd", "num_train_epochs": 1.0, "max_steps": -1, "gradient_accumulation_steps": 1,
             "early_stopping_patience": 0}
    wrong = [f"{k}={getattr(args, k)!r} (needs {want!r})" for k, want in needs.items() if getattr(args, k) != want]
    if args.warmup_steps < 1:
        wrong.append(f"warmup_steps={args.warmup_steps} (needs a fixed number >= 1, the same for every size)")
    return wrong


def _help(text: str, **kw) -> dict:
    return {"metadata": {"help": text}, **kw}


@dataclass
class TrainingArgs:
    """Training hyper-parameters (names as in Hugging Face's ``TrainingArguments``)."""

    learning_rate: float = field(default=2e-5, **_help("Peak learning rate of AdamW (after linear warm-up)."))
    per_device_train_batch_size: int = field(default=32, **_help("Examples per micro-batch."))
    gradient_accumulation_steps: int = field(default=1, **_help("Micro-batches per optimizer step."))
    num_train_epochs: float = field(default=3.0, **_help("Epochs of training (used when max_steps <= 0); may be fractional."))
    max_steps: int = field(default=-1, **_help("Optimizer steps; -1: derive from num_train_epochs."))
    warmup_ratio: float = field(default=0.1, **_help("Fraction of the steps with linear warm-up from 0 to learning_rate; then linear decay to 0."))
    warmup_steps: int = field(default=0, **_help("Warm-up steps; > 0 overrides warmup_ratio (a fixed warm-up, as the size stream needs)."))
    lr_scheduler_type: str = field(default="linear", **_help("'linear' (warm-up, then linear decay to 0, as HF), 'constant_with_warmup', or 'wsd' (warm-up, constant, then a linear decay to 0 over the last decay_ratio of the steps; Hagele et al. 2024)."))
    decay_ratio: float = field(default=0.2, **_help("With lr_scheduler_type 'wsd': the fraction of the steps in the final linear decay."))
    weight_decay: float = field(default=0.01, **_help("Decoupled AdamW weight decay (not on biases and LayerNorm weights)."))
    max_grad_norm: float = field(default=1.0, **_help("Gradient clipping norm; 0 disables clipping."))
    seed: int = field(default=42, **_help("Seed of data order, task draws and dropout."))
    precision: str = field(default="fp32", **_help("'fp32', 'bf16' (autocast; CPU needs native bf16, see default_precision()), 'fp16' (CUDA only), or 'auto': bf16 where the device has native bf16, else fp32 (the run records which)."))
    group_by_length: bool = field(default=True, **_help("Batch examples of similar length (megabatches of 50 batches, sorted) and pad per batch; ~5x faster on CPU."))
    checkpoint_every_steps: int = field(default=0, **_help("Write a resumable checkpoint every this many steps, and at the end (0: no checkpoints)."))
    save_total_limit: int = field(default=2, **_help("Checkpoints kept (the newest ones); at least 1."))
    logging_steps: int = field(default=50, **_help("Record (and print, without a terminal) the mean loss every this many steps."))
    num_threads: int = field(default=1, **_help("torch threads for this process (1 is fastest per core on a shared CPU)."))
    multitask_sampling: str = field(default="proportional", **_help("How each micro-batch picks its task: 'proportional' to size, 'uniform', or 'temperature' (size ** (1/T))."))
    multitask_temperature: float = field(default=2.0, **_help("T of temperature sampling (1 = proportional, large = uniform)."))
    multitask_cap: int | None = field(default=None, **_help("Examples cap per task when sizing the proportional/temperature mixture (jiant/T5 'K'); None: no cap."))
    freeze_word_embeddings: bool = field(default=False, **_help("Do not train the word-embedding matrix (a recipe change that removes the cost of a large vocabulary)."))
    prune_vocabulary: bool = field(default=False, **_help("Train only the embedding rows the data uses and restore the full matrix at the end (exact; see xfer_nb.train)."))
    eval_steps: int = field(default=0, **_help("Score the validation subset every this many optimizer steps (0: never); early stopping needs it."))
    early_stopping_patience: int = field(default=0, **_help("Stop after this many validation scores in a row without improvement and keep the best weights (0: off)."))
    validation_examples: int = field(default=500, **_help("Size of the validation subset for eval_steps (held-out English data of the task)."))
    device: str = field(default="auto", **_help("'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."))

    def __post_init__(self):
        def bad(name: str, allowed: str):
            raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; {allowed}.")

        if not self.learning_rate > 0:
            bad("learning_rate", "use a value > 0")
        if self.per_device_train_batch_size <= 0:
            bad("per_device_train_batch_size", "use an integer >= 1")
        if self.gradient_accumulation_steps <= 0:
            bad("gradient_accumulation_steps", "use an integer >= 1")
        if self.max_steps <= 0 and not self.num_train_epochs > 0:
            bad("num_train_epochs", "use a value > 0, or set max_steps > 0")
        if self.max_steps == 0 or self.max_steps < -1:
            bad("max_steps", "use -1 (derive from num_train_epochs) or an integer >= 1")
        if not 0 <= self.warmup_ratio < 1:
            bad("warmup_ratio", "use a value in [0, 1)")
        if self.warmup_steps < 0:
            bad("warmup_steps", "use 0 (use warmup_ratio) or an integer >= 1")
        if self.lr_scheduler_type not in SCHEDULES:
            bad("lr_scheduler_type", f"allowed: {list(SCHEDULES)}")
        if not 0 < self.decay_ratio <= 1:
            bad("decay_ratio", "use a value in (0, 1]")
        if self.weight_decay < 0:
            bad("weight_decay", "use a value >= 0")
        if self.max_grad_norm < 0:
            bad("max_grad_norm", "use a value >= 0 (0 disables clipping)")
        if self.precision not in PRECISIONS:
            bad("precision", f"allowed: {list(PRECISIONS)}")
        if self.checkpoint_every_steps < 0:
            bad("checkpoint_every_steps", "use 0 (no checkpoints) or an integer >= 1")
        if self.save_total_limit < 1:
            bad("save_total_limit", "use an integer >= 1")
        if self.logging_steps <= 0:
            bad("logging_steps", "use an integer >= 1")
        if self.num_threads <= 0:
            bad("num_threads", "use an integer >= 1")
        if self.multitask_sampling not in SAMPLING:
            bad("multitask_sampling", f"allowed: {list(SAMPLING)}")
        if not self.multitask_temperature > 0:
            bad("multitask_temperature", "use a value > 0")
        if self.multitask_cap is not None and self.multitask_cap <= 0:
            bad("multitask_cap", "use None (no cap) or an integer >= 1")
        if self.eval_steps < 0:
            bad("eval_steps", "use 0 (never) or an integer >= 1")
        if self.early_stopping_patience < 0:
            bad("early_stopping_patience", "use 0 (off) or an integer >= 1")
        if self.early_stopping_patience > 0 and self.eval_steps == 0:
            bad("early_stopping_patience", "early stopping needs eval_steps >= 1")
        if self.validation_examples < 1:
            bad("validation_examples", "use an integer >= 1")
        if self.device not in DEVICES:
            bad("device", f"allowed: {list(DEVICES)}")
