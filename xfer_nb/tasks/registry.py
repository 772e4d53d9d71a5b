"""The task table: one `TaskSpec` per task, by data rather than by code paths, and the
lookups that need nothing but the table (`get`, `has_labels`, `env_offline`).

The readers (`tasks.local`, `tasks.hub`) import it, and the package (`xfer_nb.tasks`)
re-exports it next to `load` and `available`, which dispatch to the readers; so imports
flow one way: registry <- readers <- package.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

# The family names of `tasks.schema` (a test checks they are identical). Repeated here so
# that the registry, and with it `xfer-nb data`, imports without loading `datasets`.
PAIR, TAGGING, QA, MULTIPLE_CHOICE, RETRIEVAL = "pair_classification", "tagging", "qa", "multiple_choice", "retrieval"

SOURCES = ("local", "hub")

NLI_LABELS = ("entailment", "neutral", "contradiction")  # the order of xnli / multi_nli / anli on the hub
PARAPHRASE_LABELS = ("not_paraphrase", "paraphrase")      # PAWS-X 0 / 1
DUPLICATE_LABELS = ("not_duplicate", "duplicate")         # QQP 0 / 1
# Universal POS tags in the order of google/xtreme's udpos ClassLabel.
UPOS_LABELS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART",
               "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
# IOB2 entity tags in the order of google/xtreme's PAN-X ClassLabel.
PANX_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

NO_LABEL = -1  # the label (or every tag) of a row whose split has no gold labels


@dataclass(frozen=True, eq=False)
class TaskSpec:
    """One task. Per-source fields are dicts keyed by "local" / "hub"; a missing key
    means the task has no data on that source.

    train_task/train_split: the English data that trains this task in the target phase
    (another task's for QA: XQuAD/MLQA train on SQuAD v1.1, as in XTREME, on both sources);
    None for the retrieval tasks, which take no target training, and for tasks that are
    never a target. eval_split: the labelled split zero-shot evaluation reads (None: an
    intermediate task without one on that source; its runs validate on held-out pool rows).
    intermediate_split: the pool `xfer_nb.data.sample_intermediate` draws from.
    parallel: rows with the same `id` are translations of each other across languages.
    unlabelled: splits whose files carry no gold labels (labels read as -1).
    shared_split_block: when the intermediate pool and zero-shot evaluation read the same
    split of a source (local XNLI: dev), the rows are partitioned in blocks of this many
    consecutive rows (XNLI: the 3 hypotheses of one premise): even blocks are the
    intermediate pool, odd blocks are evaluated, so no evaluated item, nor a translation
    or a premise of one, is ever trained on. 0: no partition.
    """

    name: str
    family: str
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    description: str
    role: str                                   # "target" (an XTREME task) or "intermediate"
    train_task: dict[str, str | None] = field(default_factory=dict)
    train_split: dict[str, str | None] = field(default_factory=dict)
    eval_split: dict[str, str | None] = field(default_factory=dict)
    intermediate_split: dict[str, str | None] = field(default_factory=dict)
    parallel: bool = False
    unlabelled: dict[str, tuple[str, ...]] = field(default_factory=dict)
    shared_split_block: int = 0

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(s for s in SOURCES if s in self.eval_split or s in self.intermediate_split)

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


def _spec(name, family, labels, metrics, description, role, *, local=None, hub=None, parallel=False,
          shared_split_block=0):
    """Build a TaskSpec from per-source (train_task, train_split, eval_split,
    intermediate_split, unlabelled) tuples, so the table below stays one row per task."""
    kw = {k: {} for k in ("train_task", "train_split", "eval_split", "intermediate_split", "unlabelled")}
    for source, row in (("local", local), ("hub", hub)):
        if row is None:
            continue
        train_task, train_split, eval_split, inter_split, unlabelled = row
        kw["train_task"][source] = train_task
        kw["train_split"][source] = train_split
        kw["eval_split"][source] = eval_split
        kw["intermediate_split"][source] = inter_split
        kw["unlabelled"][source] = tuple(unlabelled)
    return TaskSpec(name, family, tuple(labels), tuple(metrics), description, role, parallel=parallel,
                    shared_split_block=shared_split_block, **kw)


_ACC, _QA_METRICS = ("accuracy",), ("exact_match", "f1")

#        per source: (train_task, train_split, eval_split, intermediate_split, unlabelled splits)
_TABLE = [
    # ---- XTREME target tasks ----
    _spec("xnli", PAIR, NLI_LABELS, _ACC,
          "XNLI natural language inference. Local: XNLI dev in 15 languages (2,490 pairs each). "
          "Local English training uses the XNLI English *test* pairs (5,010, from myXNLI's Burmese "
          "files), which are disjoint from the dev pairs evaluated in every language; training on "
          "English dev would put translations of the evaluation items into training. Local dev is "
          "also the intermediate NLI pool: premises alternate between the pool (even) and the "
          "evaluation (odd), 415 premises (1,245 pairs) each per language.",
          "target", parallel=True, shared_split_block=3,
          local=("myxnli", "test", "dev", "dev", ()),
          hub=("xnli", "train", "test", "train", ())),
    _spec("pawsx", PAIR, PARAPHRASE_LABELS, _ACC,
          "PAWS-X paraphrase identification. Local: dev in 7 languages (2,000 pairs each); there is "
          "no PAWS-X training file offline, so English dev trains it, and the other languages' dev "
          "sets are translations of those same pairs (an optimistic, leaky offline proxy).",
          "target", parallel=True,
          local=("pawsx", "dev", "dev", "dev", ()),
          hub=("pawsx", "train", "test", "train", ())),
    _spec("udpos", TAGGING, UPOS_LABELS, ("pos_f1", "accuracy"),
          "Universal Dependencies v2.5 part-of-speech tagging (17 UPOS tags). Local: English "
          "train/dev, test in 33 languages (no German).",
          "target",
          local=("udpos", "train", "test", "train", ()),
          hub=("udpos", "train", "test", "train", ())),
    _spec("panx", TAGGING, PANX_LABELS, ("span_f1",),
          "PAN-X / WikiANN named entities (IOB2 PER/ORG/LOC). Local: English train/dev/test and "
          "dev/test in 12 low-resource languages; local test files have no labels, so dev is the "
          "evaluation split.",
          "target",
          local=("panx", "train", "dev", "train", ("test",)),
          hub=("panx", "train", "test", "train", ())),
    _spec("xquad", QA, (), _QA_METRICS,
          "XQuAD extractive QA: 1,190 SQuAD v1.1 dev questions professionally translated into 11 "
          "languages (12 with English); test only. Trained on SQuAD v1.1 train (87,599 questions; "
          "offline: the rebuilt file in extra/squad), as in XTREME.",
          "target", parallel=True,
          local=("squad", "train", "test", "test", ()),
          hub=("squad", "train", "test", "test", ())),
    _spec("mlqa", QA, (), _QA_METRICS,
          "MLQA extractive QA, same-language context/question pairs. Local: dev in 7 languages. "
          "Questions sharing an id are translations of each other. Trained on SQuAD v1.1 train, as in XTREME.",
          "target", parallel=True,
          local=("squad", "train", "dev", "dev", ()),
          hub=("squad", "train", "test", "dev", ())),
    _spec("tydiqa", QA, (), _QA_METRICS,
          "TyDiQA-GoldP extractive QA. Local: the training files only (en 3,696, ko 1,625, sw 2,755 "
          "questions); sw and ko train serve as evaluation sets offline.",
          "target",
          local=("tydiqa", "train", "train", "train", ()),
          hub=("squad", "train", "dev", "train", ())),
    _spec("tatoeba", RETRIEVAL, (), _ACC,
          "Tatoeba sentence retrieval X->English, scored on LASER's line-aligned copy (108 languages "
          "here); XTREME's own copy has its English side sorted and cannot be scored. No training.",
          "target",
          local=(None, None, "test", None, ()),
          hub=(None, None, "test", None, ())),
    _spec("bucc2018", RETRIEVAL, (), ("f1",),
          "BUCC 2018 bitext mining. Local: zh-en dev only (8,624 zh and 13,589 en sentences, 257 gold "
          "pairs). On the hub only the gold pairs are published, which makes mining easier. No training.",
          "target",
          local=(None, None, "dev", None, ()),
          hub=(None, None, "test", None, ())),
    # ---- intermediate tasks with local data ----
    _spec("anli", PAIR, NLI_LABELS, _ACC,
          "Adversarial NLI. Local: the three dev rounds as annotated in ANLIzing ANLI (1,000 + "
          "1,000 + 1,198 pairs, English); the hub has full train/dev/test rounds (concatenated here).",
          "intermediate",
          local=(None, None, "dev", "dev", ()),
          hub=(None, None, "test", "train", ())),
    _spec("americasnli", PAIR, NLI_LABELS, _ACC,
          "AmericasNLI: XNLI translated into 10 Indigenous languages of the Americas (codes as "
          "published). Dev sizes are uneven (oto 222 ... 743).",
          "intermediate", parallel=True,
          local=(None, None, "test", "dev", ()),
          hub=(None, None, "test", "dev", ())),
    _spec("myxnli", PAIR, NLI_LABELS, _ACC,
          "myXNLI: labelled XNLI dev (2,490) and test (5,010) for sw, ur and Burmese (my); the my files "
          "also carry the English pairs, exposed as language 'en'.",
          "intermediate", parallel=True,
          local=(None, None, "test", "dev", ())),
    _spec("siqa", MULTIPLE_CHOICE, ("A", "B", "C"), _ACC,
          "Social IQa (3 answers). Local: train 33,410 (AI2's release with its 1-based labels file; "
          "29 exact duplicates) is the intermediate pool, dev 1,954 the evaluation split, test 2,224 "
          "(English).",
          "intermediate",
          local=(None, None, "dev", "train", ()),
          hub=(None, None, "dev", "train", ())),
    _spec("cosmosqa", MULTIPLE_CHOICE, ("0", "1", "2", "3"), _ACC,
          "Cosmos QA (4 answers). Local: the validation split only (2,985 rows, English).",
          "intermediate",
          local=(None, None, "dev", "dev", ()),
          hub=(None, None, "dev", "train", ("test",))),
    _spec("xcopa", MULTIPLE_CHOICE, ("choice1", "choice2"), _ACC,
          "XCOPA causal commonsense (2 choices; question 'cause' or 'effect'). Local: dev (100) in "
          "12 languages, English train (400); the local test files (500) carry label 0 on every row, "
          "i.e. no real labels.",
          "intermediate", parallel=True,
          local=(None, None, "dev", "dev", ("test",)),
          hub=(None, None, "test", "dev", ())),
    # ---- Phang et al. 2020's other intermediate tasks: hub only, except MNLI and SQuAD ----
    _spec("mnli", PAIR, NLI_LABELS, _ACC,
          "MultiNLI (nyu-mll/multi_nli). Local: its first 15,001 training pairs in English and 22 machine "
          "translations (salesforce/xnli_extension: ar az cs da de en es et fi fr hu lt lv nl no pl sv sw tr "
          "ur uz vi zh), line-aligned, tokenised text (\"don 't\"); none is in XNLI dev/test. The whole "
          "file is the pool (intermediate runs hold out their validation rows); no local dev.",
          "intermediate", parallel=True,
          local=(None, None, None, "train", ()),
          hub=(None, None, "dev", "train", ())),
    _spec("qqp", PAIR, DUPLICATE_LABELS, _ACC, "Quora Question Pairs (GLUE qqp).", "intermediate",
          hub=(None, None, "dev", "train", ("test",))),
    _spec("squad", QA, (), _QA_METRICS,
          "SQuAD v1.1. Local: train (87,599 questions, 442 articles) rebuilt from the SQuAD explorer's "
          "pages (synthetic ids, recomputed offsets; see SOURCES.md); no local dev. Trains XQuAD and MLQA.",
          "intermediate",
          local=(None, None, None, "train", ()),
          hub=(None, None, "dev", "train", ())),
    _spec("squad_v2", QA, (), _QA_METRICS, "SQuAD v2.0 (unanswerable questions have no answers).",
          "intermediate", hub=(None, None, "dev", "train", ())),
    _spec("hellaswag", MULTIPLE_CHOICE, ("0", "1", "2", "3"), _ACC, "HellaSwag (4 endings).",
          "intermediate", hub=(None, None, "dev", "train", ("test",))),
    _spec("commonsenseqa", MULTIPLE_CHOICE, ("A", "B", "C", "D", "E"), _ACC, "CommonsenseQA (5 answers).",
          "intermediate", hub=(None, None, "dev", "train", ("test",))),
]

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _TABLE}
TARGET_TASKS = tuple(n for n, s in TASKS.items() if s.role == "target")
INTERMEDIATE_TASKS = tuple(n for n, s in TASKS.items() if s.intermediate_split)


class UnknownTask(KeyError):
    """An unknown task name. Its message prints without KeyError's extra quotes."""

    def __str__(self) -> str:
        return str(self.args[0])


def get(task: str) -> TaskSpec:
    """The spec of `task`, or a KeyError listing every task."""
    try:
        return TASKS[task]
    except (KeyError, TypeError):
        raise UnknownTask(f"task={task!r} is not a known task; known tasks: {', '.join(TASKS)}") from None


def _check_source(task: str, source: str) -> TaskSpec:
    spec = get(task)
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not a data source; use one of {', '.join(SOURCES)}")
    if source not in spec.sources:
        with_data = [n for n, s in TASKS.items() if source in s.sources]
        raise ValueError(
            f"task={task!r} has no {source} data (it is available from: {', '.join(spec.sources)}); "
            f"tasks with {source} data: {', '.join(with_data)}")
    return spec


def has_labels(task: str, split: str, source: str = "local") -> bool:
    """Whether `split` of `task` carries gold labels on `source` (PAN-X test and XCOPA
    test do not, locally)."""
    spec = get(task)
    return split not in spec.unlabelled.get(source, ())


def env_offline() -> bool:
    """Whether the hub is switched off for this process (HF_HUB_OFFLINE set to a true value)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
