"""Task heads on a shared Hugging Face encoder (`AutoModel`), and the hand-over of the
encoder between phases.

Phase 2 (intermediate training) and phase 3 (target training) each put a fresh head on
the encoder. `save_encoder` writes only the encoder and the tokenizer, so the next phase
loads the encoder with `build_task_model(path, ...)` and gets a new, randomly
initialised head; the intermediate head is dropped (as in Phang et al. 2020 / jiant).

Heads (all read the encoder's last hidden states):
    PAIR             <s> vector -> dropout -> dense+tanh -> dropout -> linear(num_labels)
                     (as RobertaClassificationHead); with pooling="mean" the mean of the
                     tokens' vectors replaces <s> (the pooling e5 was trained with)
    TAGGING          per token: dropout -> linear(num_labels)
    QA               per token: linear(2) -> start_logits, end_logits
    MULTIPLE_CHOICE  each choice encoded as its own (context, question + choice) pair;
                     <s> vector -> dropout -> dense+tanh -> dropout -> linear(1) = that
                     choice's score; softmax (cross-entropy) over the choices
Losses: cross-entropy, ignoring -100 (tagging); QA: mean of start and end
cross-entropies with positions clamped as in Hugging Face's QA models.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from xfer_nb.tasks.schema import MULTIPLE_CHOICE, PAIR, QA, TAGGING

FAMILIES = (PAIR, TAGGING, QA, MULTIPLE_CHOICE)


def _config_value(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


POOLINGS = ("first", "mean")


class ClassificationHead(nn.Module):
    """<s> vector (pooling="first") or the mean over real tokens (pooling="mean") ->
    dropout -> dense + tanh -> dropout -> linear (RobertaClassificationHead)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, pooling: str = "first"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not allowed; use one of {POOLINGS}")
        self.pooling = pooling
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pooling == "mean" and attention_mask is not None:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        elif self.pooling == "mean":
            pooled = hidden.mean(1)
        else:
            pooled = hidden[:, 0, :]
        x = self.dropout(pooled)
        x = torch.tanh(self.dense(x))
        return self.out_proj(self.dropout(x))


class TokenHead(nn.Module):
    """Per-token dropout -> linear."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


class SpanHead(nn.Module):
    """Per-token linear to (start, end) logits."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(hidden)


def make_head(family: str, hidden_size: int, num_labels: int, dropout: float, *,
              initializer_range: float = 0.02, seed: int | None = None, pooling: str = "first") -> nn.Module:
    """A freshly initialised head (weights ~ N(0, initializer_range), biases 0, as in
    Hugging Face models). With `seed`, the initialisation uses its own generator, so it
    does not depend on what else has drawn from torch's global RNG."""
    if family == PAIR:
        head = ClassificationHead(hidden_size, num_labels, dropout, pooling)
    elif family == MULTIPLE_CHOICE:
        head = ClassificationHead(hidden_size, 1, dropout, pooling)
    elif family == TAGGING:
        head = TokenHead(hidden_size, num_labels, dropout)
    elif family == QA:
        head = SpanHead(hidden_size)
    else:
        raise ValueError(f"no head for family {family!r}; heads exist for {FAMILIES}")
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    with torch.no_grad():
        for module in head.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, initializer_range, generator=generator)
                module.bias.zero_()
    head.family = family
    head.num_labels = num_labels
    return head


def _encode(encoder: nn.Module, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    out = encoder(**kwargs)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def run_head(encoder: nn.Module, head: nn.Module, family: str, input_ids: torch.Tensor,
             attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
             labels: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
             end_positions: torch.Tensor | None = None, choice_mask: torch.Tensor | None = None,
             **_ignored) -> dict[str, torch.Tensor]:
    """Encode a batch and apply one head. Returns {"loss" (when labels are given), "logits"}
    ({"loss", "start_logits", "end_logits"} for QA). Unknown batch keys (e.g. `length`)
    are ignored."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    out: dict[str, torch.Tensor] = {}
    if family == MULTIPLE_CHOICE:
        b, c, l = input_ids.shape
        flat = lambda t: None if t is None else t.reshape(b * c, l)  # noqa: E731
        hidden = _encode(encoder, flat(input_ids), flat(attention_mask), flat(token_type_ids))
        logits = head(hidden, flat(attention_mask)).reshape(b, c)
        if choice_mask is not None:
            logits = logits.masked_fill(~choice_mask.bool(), torch.finfo(logits.dtype).min)
        out["logits"] = logits
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.float(), labels)
        return out

    hidden = _encode(encoder, input_ids, attention_mask, token_type_ids)
    if family == PAIR:
        logits = head(hidden, attention_mask)
        out["logits"] = logits
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.float(), labels)
    elif family == TAGGING:
        logits = head(hidden)
        out["logits"] = logits
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                          ignore_index=-100)
    elif family == QA:
        start_logits, end_logits = head(hidden).split(1, dim=-1)
        start_logits = start_logits.squeeze(-1).contiguous()
        end_logits = end_logits.squeeze(-1).contiguous()
        out["start_logits"], out["end_logits"] = start_logits, end_logits
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]
            s = start_positions.reshape(-1).clamp(0, ignored)
            e = end_positions.reshape(-1).clamp(0, ignored)
            out["loss"] = (F.cross_entropy(start_logits.float(), s, ignore_index=ignored)
                           + F.cross_entropy(end_logits.float(), e, ignore_index=ignored)) / 2
    else:
        raise ValueError(f"no head for family {family!r}")
    return out


def _hidden_size(encoder: nn.Module) -> int:
    return int(_config_value(encoder.config, "hidden_size", "dim", "d_model"))


def _default_dropout(encoder: nn.Module) -> float:
    return float(_config_value(encoder.config, "classifier_dropout", "hidden_dropout_prob", "dropout",
                               default=0.1))


class TaskModel(nn.Module):
    """One encoder, one head. forward(input_ids, attention_mask, labels=None, ...) -> dict
    with loss (when labels/positions are given) and logits (QA: start_logits, end_logits)."""

    def __init__(self, encoder: nn.Module, family: str, num_labels: int, dropout: float | None = None, *,
                 seed: int | None = None, pooling: str = "first"):
        super().__init__()
        self.encoder = encoder
        self.family = family
        self.num_labels = num_labels
        self.head = make_head(family, _hidden_size(encoder), num_labels,
                              _default_dropout(encoder) if dropout is None else dropout,
                              initializer_range=float(_config_value(encoder.config, "initializer_range",
                                                                    default=0.02)),
                              seed=seed, pooling=pooling)

    @property
    def config(self):
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, labels=None,
                start_positions=None, end_positions=None, **batch) -> dict[str, torch.Tensor]:
        return run_head(self.encoder, self.head, self.family, input_ids, attention_mask, labels=labels,
                        start_positions=start_positions, end_positions=end_positions, **batch)


class MultiTaskModel(nn.Module):
    """One shared encoder, one head per task: heads = {task_name: (family, num_labels)}.
    forward(task=name, **batch) runs that task's head."""

    def __init__(self, encoder: nn.Module, heads: dict[str, tuple[str, int]], dropout: float | None = None, *,
                 seed: int | None = None, pooling: str = "first"):
        super().__init__()
        self.encoder = encoder
        self.families = {name: family for name, (family, _) in heads.items()}
        drop = _default_dropout(encoder) if dropout is None else dropout
        init_range = float(_config_value(encoder.config, "initializer_range", default=0.02))
        self.heads = nn.ModuleDict({
            name: make_head(family, _hidden_size(encoder), num_labels, drop, initializer_range=init_range,
                            seed=None if seed is None else seed + i, pooling=pooling)
            for i, (name, (family, num_labels)) in enumerate(sorted(heads.items()))
        })

    @property
    def config(self):
        return self.encoder.config

    def forward(self, task: str, **batch) -> dict[str, torch.Tensor]:
        if task not in self.heads:
            raise KeyError(f"unknown task {task!r}; this model has heads for {sorted(self.heads)}")
        return run_head(self.encoder, self.heads[task], self.families[task], **batch)


def load_encoder(path_or_name: str | os.PathLike, **kwargs) -> nn.Module:
    """AutoModel.from_pretrained(path), without the pooler where the class has one; a hub
    name may pin its revision as ``name@revision`` (see xfer_nb.models.hub)."""
    from transformers import AutoModel
    from xfer_nb.models.hub import split_revision
    path_or_name = str(path_or_name)
    if not Path(path_or_name).expanduser().is_dir():
        path_or_name, revision = split_revision(path_or_name)
        kwargs = {**kwargs, "revision": revision} if revision else kwargs
    try:
        return AutoModel.from_pretrained(path_or_name, add_pooling_layer=False, **kwargs)
    except TypeError:
        return AutoModel.from_pretrained(path_or_name, **kwargs)


def build_task_model(encoder_path_or_module: str | os.PathLike | nn.Module, family: str, num_labels: int, *,
                     dropout: float | None = None, seed: int | None = None, pooling: str = "first") -> TaskModel:
    """A TaskModel on an encoder given as a module or as a path/hub name (loaded with
    AutoModel, add_pooling_layer=False), with a fresh head (seeded by `seed` if given)."""
    encoder = (encoder_path_or_module if isinstance(encoder_path_or_module, nn.Module)
               else load_encoder(encoder_path_or_module))
    return TaskModel(encoder, family, num_labels, dropout, seed=seed, pooling=pooling)


def save_encoder(model: nn.Module, out_dir: str | os.PathLike, tokenizer=None) -> Path:
    """Write ONLY the encoder (save_pretrained) and the tokenizer to `out_dir`, atomically.
    Heads are not saved: the next phase puts a fresh head on the loaded encoder."""
    from xfer_nb.io import atomic_path
    encoder = getattr(model, "encoder", model)
    if not hasattr(encoder, "save_pretrained"):
        raise TypeError(f"{type(encoder).__name__} has no save_pretrained: pass a TaskModel, "
                        "MultiTaskModel or a Hugging Face encoder")
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        encoder.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return out_dir
