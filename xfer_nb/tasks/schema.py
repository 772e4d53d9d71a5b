"""The fixed column schema of each task family.

Every loader (local files or the Hugging Face hub) returns a `datasets.Dataset` with
exactly these columns, so featurisation, training and evaluation never look at where
the data came from. Labels are integer indices into the task's `label_names`.
"""
from __future__ import annotations

import datasets
import pyarrow as pa

PAIR = "pair_classification"      # XNLI, PAWS-X, ANLI, AmericasNLI, myXNLI, MNLI, QQP
TAGGING = "tagging"               # UD-POS, PAN-X
QA = "qa"                         # XQuAD, MLQA, TyDiQA-GoldP, SQuAD
MULTIPLE_CHOICE = "multiple_choice"  # SocialIQA, CosmosQA, XCOPA, HellaSwag, CommonsenseQA
RETRIEVAL = "retrieval"           # Tatoeba, BUCC

FAMILIES = (PAIR, TAGGING, QA, MULTIPLE_CHOICE, RETRIEVAL)

_S = datasets.Value("string")
_I = datasets.Value("int64")

FEATURES: dict[str, datasets.Features] = {
    PAIR: datasets.Features({"id": _S, "language": _S, "sentence1": _S, "sentence2": _S, "label": _I}),
    TAGGING: datasets.Features({"id": _S, "language": _S, "tokens": datasets.Sequence(_S), "tags": datasets.Sequence(_I)}),
    QA: datasets.Features({
        "id": _S, "language": _S, "context": _S, "question": _S,
        "answers": {"text": datasets.Sequence(_S), "answer_start": datasets.Sequence(_I)},
    }),
    MULTIPLE_CHOICE: datasets.Features({
        "id": _S, "language": _S, "context": _S, "question": _S, "choices": datasets.Sequence(_S), "label": _I,
    }),
    # One row per sentence. Source rows (the non-English side) name the id of their gold
    # target row in `gold` ("" when the sentence has no translation, as in most of BUCC);
    # target rows (English) have gold "".
    RETRIEVAL: datasets.Features({"id": _S, "language": _S, "side": _S, "sentence": _S, "gold": _S}),
}


def make_dataset(family: str, rows: list[dict]) -> datasets.Dataset:
    """Build a Dataset of one family from plain row dicts, checking the columns."""
    features = FEATURES[family]
    missing = [r for r in rows[:1] if set(r) != set(features)]
    if missing:
        raise ValueError(f"{family} rows need columns {sorted(features)}, got {sorted(missing[0])}")
    # Python lists -> Arrow arrays of the schema's types in one step: several times faster
    # than letting `datasets` encode row by row (SQuAD train: 87,599 contexts).
    table = pa.Table.from_pydict({name: [r[name] for r in rows] for name in features}, schema=features.arrow_schema)
    return datasets.Dataset.from_dict({name: table[name] for name in features}, features=features)
