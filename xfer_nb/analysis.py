"""The study's analysis: finished runs -> tidy table -> the declared primary family with the
seed as the unit (``stats.infer``), exploratory comparisons, figures, and an answer written
from the numbers (04_analysis shows it; the report is that notebook rendered).

Zero-shot means zero-shot: every comparison on transfer uses evaluation languages other
than English that the intermediate data did not contain ("unseen"); English and seen
languages are reported apart, as exploratory rows. Runs that did not clear their learning
threshold (``target_learned`` / ``intermediate_learned`` False in the results table), and
every target run built on an intermediate run that did not, are counted, listed, and kept
out of every comparison (``Study.gains``). A study whose plan has runs without a finished
result is PARTIAL: its title and first sentence say so and list what is missing, and its
files never replace those of a complete analysis (``Study.save``, ``report_path``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from xfer_nb import analysis_params, grid, io, languages, learning, machine, plots, results, stats
from xfer_nb.paths import output_path, outputs_dir as resolve_outputs

CONFIG_COLUMNS = ["intermediate_task", "intermediate_size", "language_set"]

# Phang et al. 2020, XLM-R Large -> best intermediate task, XTREME test (DESIGN.md §1).
PAPER = {
    "xnli": (79.2, 80.4), "pawsx": (86.4, 87.7), "panx": (65.4, 64.7),
    "xquad": (76.6, 77.2), "mlqa": (71.6, 72.3), "tydiqa": (65.1, 76.0),
}
PAPER_DIRECTION = {"bucc2018": "large gain", "tatoeba": "large gain"}

SIGNIFICANCE_COLUMNS = [
    "family", "hypothesis", "comparison", "task", "metric", "intermediate_task", "intermediate_size",
    "language_set", "versus", "tier", "languages", "estimate", "effect_unit", "ci_low", "ci_high", "p", "p_holm",
    "unit_of_inference", "n_seeds", "n_languages", "seed_sd", "mde_80", "smallest_effect", "tost_p", "verdict", "note",
]
LIMITATIONS_E5 = (
    "The encoder is small: multilingual-e5-small (118M parameters) where Phang et al. used "
    "XLM-R Large (560M), and small models transfer less and less predictably. e5 was trained contrastively, as a "
    "sentence embedder, on top of an XLM-R-style encoder, where the paper fine-tuned XLM-R's masked-language-model "
    "encoder directly, so what intermediate training adds can differ. ")
LIMITATIONS = (
    "**Limitations.** {model}The budget: {budget}; effects smaller "
    "than each comparison's minimal detectable effect (MDE) cannot be seen, and \"inconclusive\" means exactly that. "
    "Every interval treats the seed as the unit and the evaluated languages as a sample of languages; the "
    "conclusions are about this model, these tasks and these data sizes."
)


def _distance(langs: str) -> float:
    """Mean pairwise URIEL distance of a comma-separated language set (NaN if unknown)."""
    try:
        return float(languages.diversity(langs)["mean_pairwise_distance"])
    except (KeyError, ValueError):
        return math.nan


def _is_false(s: pd.Series) -> pd.Series:
    return s.map(lambda v: v is False or (isinstance(v, (bool, np.bool_)) and not v)
                 or (isinstance(v, str) and v.strip().lower() == "false")
                 or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0))


@dataclass
class Study:
    name: str
    table: pd.DataFrame
    outputs: Path
    figures: dict[str, list[Path]] = field(default_factory=dict)
    params: analysis_params.AnalysisParams = field(default_factory=analysis_params.AnalysisParams)
    missing: list[str] = field(default_factory=list)   # planned runs without a finished result
    # every planned language set with intermediate data: name -> its languages ("en,de"),
    # so a partial study still knows which level is the most diverse
    planned_sets: dict[str, str] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)  # figure name -> what is plotted over what units

    # ------------------------------------------------------------ tables of runs

    @property
    def complete(self) -> bool:
        return not self.missing

    @cached_property
    def primary(self) -> pd.DataFrame:
        """One metric per task (its XTREME headline metric), every run."""
        return plots.primary_metric(self.table) if len(self.table) else self.table

    @cached_property
    def learned_mask(self) -> pd.Series:
        """Rows of runs that learned (or were not checked): False where the target run or its
        intermediate run did not clear its learning threshold."""
        t = self.primary
        mask = pd.Series(True, index=t.index)
        for col in ("target_learned", "intermediate_learned"):
            if col in t.columns:
                mask &= ~_is_false(t[col])
        return mask

    def machines(self) -> pd.DataFrame:
        """Runs (target and intermediate, each once) per machine label (results' `machine` and
        `intermediate_machine` columns); empty where the table does not record machines."""
        t = self.table
        if "machine" not in t.columns:
            return pd.DataFrame(columns=["machine", "runs"])
        runs_ = [t[["run_id", "machine"]]]
        if {"intermediate_run", "intermediate_machine"} <= set(t.columns):
            runs_.append(t[["intermediate_run", "intermediate_machine"]].set_axis(["run_id", "machine"], axis=1))
        both = pd.concat(runs_).dropna()
        both = both[(both["run_id"].astype(str) != "") & (both["machine"].astype(str) != "")].drop_duplicates("run_id")
        counts = both.groupby("machine").size().rename("runs").reset_index()
        return counts.sort_values(["runs", "machine"], ascending=[False, True], ignore_index=True)

    def not_learned(self) -> pd.DataFrame:
        """One row per run that did not learn (target runs, and the intermediate runs they
        were built on), with its validation score and how many target runs it takes out."""
        t = self.primary
        rows = []
        if "target_learned" in t.columns:
            for _, r in t[_is_false(t["target_learned"])].drop_duplicates("run_id").iterrows():
                rows.append({"stage": "target", "run": r["run_id"], "target task": r["task"],
                             "intermediate task": r.get("intermediate_task"), "size": r.get("intermediate_size"),
                             "language set": r.get("language_set"), "seed": r["seed"],
                             "validation score": r.get("target_validation"), "target runs excluded": 1})
        if "intermediate_learned" in t.columns and "intermediate_run" in t.columns:
            bad = t[_is_false(t["intermediate_learned"])]
            for run, g in bad.groupby("intermediate_run"):
                r = g.iloc[0]
                rows.append({"stage": "intermediate", "run": run, "target task": ", ".join(sorted(g["task"].unique())),
                             "intermediate task": r.get("intermediate_task"), "size": r.get("intermediate_size"),
                             "language set": r.get("language_set"), "seed": r["seed"],
                             "validation score": r.get("intermediate_validation"),
                             "by language": self._validation_by_language(run),
                             "target runs excluded": int(g["run_id"].nunique())})
        return pd.DataFrame(rows, columns=["stage", "run", "target task", "intermediate task", "size", "language set",
                                           "seed", "validation score", "by language", "target runs excluded"])

    def _validation_by_language(self, run: str) -> str:
        """"en 48.0, sw 44.8": which language held a mixed set's run back ("" for one
        language, or a run from before per-language validation)."""
        path = Path(self.outputs) / "runs" / "intermediate" / str(run) / "metrics.jsonl"
        scores = learning.by_language(list(io.read_jsonl(path))) if path.is_file() else {}
        return ", ".join(f"{lang} {value:.1f}" for lang, value in sorted(scores.items()))

    @cached_property
    def gains(self) -> pd.DataFrame:
        """Paired gains over the baseline of the same seed, task and language, from runs that
        learned only (a baseline that did not learn takes its pairs out too)."""
        t = self.primary[self.learned_mask]
        if not len(t) or not stats.baseline_mask(t).any() or (~stats.baseline_mask(t)).sum() == 0:
            return pd.DataFrame(columns=list(t.columns) + ["baseline", "gain"])
        g = stats.paired_gains(t, by=CONFIG_COLUMNS)
        if "seen" not in g.columns or "distance" not in g.columns:
            g = languages.annotate(g)
        g["seen"] = g["seen"].astype(bool)
        keep = ["seed", "task", "metric", "language", "tier", "seen", "distance", "intermediate_languages",
                "run_id", "value", "baseline", "gain"]
        return g[CONFIG_COLUMNS + [c for c in keep if c in g.columns]].reset_index(drop=True)  # narrow: fast slicing

    @cached_property
    def metric_of(self) -> dict[str, str]:
        p = self.primary
        return p.groupby("task")["metric"].first().to_dict() if len(p) else {}

    @property
    def has_baseline(self) -> bool:
        return bool(len(self.table)) and bool(stats.baseline_mask(self.table).any())

    @property
    def has_gains(self) -> bool:
        return bool(len(self.gains))

    @staticmethod
    def zero_shot(g: pd.DataFrame) -> pd.DataFrame:
        """Languages other than English that the intermediate data did not contain."""
        return g[(g["language"] != "en") & ~g["seen"].astype(bool)]

    @cached_property
    def english_set(self) -> str | None:
        """The English-only language set (analysis.english_control, else the set whose
        languages are just "en")."""
        if self.params.english_control:
            return self.params.english_control
        g = self.gains
        if not len(g):
            return None
        langs = g.groupby("language_set")["intermediate_languages"].first().astype(str)
        english = [s for s, l in langs.items() if l.strip() == "en"]
        return english[0] if english else None

    def _english_only(self, g: pd.DataFrame) -> pd.DataFrame:
        return g[g["language_set"] == self.english_set] if self.english_set is not None else g

    @cached_property
    def size_task(self) -> str | None:
        """The intermediate task that carries the size axis: the one with the most English sizes."""
        g = self._english_only(self.gains)
        if not len(g):
            return None
        counts = g.groupby("intermediate_task")["intermediate_size"].nunique()
        return str(counts.sort_values(ascending=False, kind="stable").index[0])

    @cached_property
    def set_comparable(self) -> pd.DataFrame:
        """Gains of the (intermediate task, size) conditions that two or more language sets
        share; with one language set, every gain. Comparing sets, or distances across sets,
        over anything else would compare intermediate tasks and sizes as well (an English-only
        size axis of another task would count as "English")."""
        g = self.gains
        if not len(g) or g["language_set"].nunique() < 2:
            return g
        shared = g.groupby(["intermediate_task", "intermediate_size"])["language_set"].transform("nunique")
        return g[shared > 1]

    def size_axis(self) -> pd.DataFrame:
        g = self._english_only(self.gains)
        return g[g["intermediate_task"] == self.size_task] if len(g) else g

    @cached_property
    def set_diversity(self) -> pd.DataFrame:
        """Per language set: its languages, number of families and scripts, mean pairwise URIEL distance."""
        t = self.table
        columns = ["language_set", "languages", "n_languages", "n_families", "n_scripts", "mean_pairwise_distance"]
        if not len(t) or "intermediate_languages" not in t.columns or stats.baseline_mask(t).all():
            return pd.DataFrame(columns=columns)
        sets = t[~stats.baseline_mask(t)].groupby("language_set")["intermediate_languages"].first()
        rows = []
        for name, langs in sets.items():
            try:
                d = languages.diversity(str(langs))
            except (KeyError, ValueError):
                d = {"n_languages": len(str(langs).split(",")), "n_families": math.nan, "n_scripts": math.nan,
                     "mean_pairwise_distance": math.nan}
            rows.append({"language_set": name, "languages": str(langs).replace(",", " "), **d})
        return pd.DataFrame(rows).sort_values(["mean_pairwise_distance", "language_set"], na_position="first")

    @cached_property
    def _diverse_target(self) -> tuple[str, list[str]] | None:
        """(label, sets) of the most diverse level (or set) among those planned, finished or
        not: a partial study tests the level the params file makes primary, never a less
        diverse one that happens to have finished first (None: no set besides English)."""
        g, eng = self.gains, self.english_set
        if eng is None:
            return None
        finished = self.set_diversity.set_index("language_set")["mean_pairwise_distance"].to_dict()
        div = {s: _distance(langs) for s, langs in self.planned_sets.items() if s not in finished}
        div.update(finished)
        others = [s for s in dict.fromkeys([*self.planned_sets, *(g["language_set"].unique() if len(g) else [])])
                  if s != eng and s in div]
        if not others:
            return None
        levels = {k: [s for s in v if s in others] for k, v in self.params.diversity_levels.items()}
        levels = {k: v for k, v in levels.items() if v}
        if levels:
            label = max(levels, key=lambda k: np.nanmean([div.get(s, np.nan) for s in levels[k]]))
            return label, levels[label]
        label = max(others, key=lambda s: (np.nan_to_num(div.get(s, np.nan), nan=-1.0), s))
        return label, [label]

    def _diverse_choice(self) -> tuple[str, list[str], int] | None:
        """(label, sets, size) of the most diverse set or level against the English control, at
        the largest size its finished sets share with that control (None: nothing to compare)."""
        g, eng = self.gains, self.english_set
        target = self._diverse_target
        if not len(g) or target is None:
            return None
        label, planned = target
        sets = [s for s in planned if s in set(g["language_set"])]
        if not sets:
            return None
        ctrl_sizes = set(g.loc[g["language_set"] == eng, "intermediate_size"])
        shared = set.intersection(ctrl_sizes, *(set(g.loc[g["language_set"] == s, "intermediate_size"]) for s in sets))
        if not shared:
            return None
        return label, sets, int(max(shared))

    def _why_left_out(self, sets: list[str]) -> str:
        """Why each set is not in a test that keeps complete seeds: a run that did not learn,
        or runs not finished yet (a partial study)."""
        nl = self.not_learned()
        failed = set(nl.loc[nl["stage"] == "intermediate", "language set"]) if len(nl) else set()
        bad = [s for s in sets if s in failed]
        unfinished = [s for s in sets if s not in failed]
        parts = [f"{', '.join(bad)} did not learn in every seed"] if bad else []
        parts += [f"{', '.join(unfinished)} has no finished run in every seed yet"] if unfinished else []
        return " and ".join(parts)

    def _set_vs_control(self, sets: list[str], size: int, task: str | None = None) -> pd.DataFrame:
        """Per (seed, language set, task, language): gain of the set minus the English control's
        gain at the same size and intermediate task, zero-shot languages unseen by the set."""
        g = self.gains[self.gains["intermediate_size"] == size]
        if task is not None:
            g = g[g["task"] == task]
        it = g.loc[g["language_set"].isin(sets), "intermediate_task"]
        if not len(it):
            return pd.DataFrame(columns=["seed", "language_set", "task", "language", "tier", "gain"])
        g = g[g["intermediate_task"] == it.mode().iloc[0]]
        treat = self.zero_shot(g[g["language_set"].isin(sets)])
        ctrl = g[g["language_set"] == self.english_set][["seed", "task", "language", "gain"]]
        d = treat.merge(ctrl, on=["seed", "task", "language"], suffixes=("", "_control"))
        d["gain"] = d["gain"] - d["gain_control"]
        return d[["seed", "language_set", "task", "language", "tier", "gain"]]

    # ------------------------------------------------------------ inference

    def _infer(self, groups, weights=None) -> dict:
        return stats.infer(groups, weights, smallest_effect=self.params.smallest_effect, alpha=self.params.alpha)

    def _slopes(self, g: pd.DataFrame) -> pd.DataFrame:
        s = stats.per_seed_slopes(g, item=("task", "language"))
        return s.rename(columns={"slope": "gain"})

    def _row(self, family, hypothesis, comparison, task, result, **extra) -> dict:
        metric = self.metric_of.get(task)
        row = {c: None for c in SIGNIFICANCE_COLUMNS}
        row.update(family=family, hypothesis=hypothesis, comparison=comparison, task=task, metric=metric,
                   unit_of_inference=stats.UNIT_OF_INFERENCE, smallest_effect=self.params.smallest_effect,
                   effect_unit="points")
        row.update(extra)
        for k in ("estimate", "ci_low", "ci_high", "p", "n_seeds", "n_languages", "seed_sd", "mde_80", "tost_p",
                  "verdict"):
            row[k] = result.get(k)
        if not result.get("n_seeds"):
            row["note"] = row.get("note") or "not testable: no seed has every needed score"
        elif result.get("n_seeds", 0) < 2:
            row["note"] = row.get("note") or "one seed: no interval"
        return row

    def _tasks(self) -> list[str]:
        return sorted(self.gains["task"].unique()) if len(self.gains) else []

    def _primary_rows(self) -> list[dict]:
        P, rows = self.params, []
        axis = self.size_axis()
        choice = self._diverse_choice()
        t = self.primary
        designed = set(t.loc[t["intermediate_task"] == self.size_task, "task"]) if len(t) else set()
        for task in self._tasks():
            zs = self.zero_shot(axis[axis["task"] == task])
            n_sizes = zs["intermediate_size"].nunique() if len(zs) else 0
            sized = task in designed   # False: the grid never trains this target after the size task
            what = (f"{'English ' if self.english_set else ''}{self.size_task} data" if self.size_task
                    else "intermediate data")
            if "size_trend" in P.primary and sized:
                note = None if n_sizes >= 2 else "not testable: fewer than 2 sizes"
                r = self._infer([self._slopes_matrix(zs[zs["tier"] == "low"])]) if n_sizes >= 2 else {}
                rows.append(self._row("primary", "size_trend", f"gain per doubling of {what}", task, r,
                                      intermediate_task=self.size_task, language_set=self.english_set, tier="low",
                                      languages="zero-shot, unseen", effect_unit="points per doubling", note=note))
            if "tier_interaction_size" in P.primary and sized:
                r = {}
                if n_sizes >= 2:
                    lo, hi = self._slopes_matrix(zs[zs["tier"] == "low"]), self._slopes_matrix(zs[zs["tier"] == "high"])
                    seeds = lo.index.intersection(hi.index)
                    if len(seeds) and lo.shape[1] and hi.shape[1]:
                        r = self._infer([lo.loc[seeds].to_numpy(), hi.loc[seeds].to_numpy()], [1.0, -1.0])
                rows.append(self._row("primary", "tier_interaction_size",
                                      f"per-doubling gain of {what}: low-resource minus high-resource languages", task, r,
                                      intermediate_task=self.size_task, language_set=self.english_set, tier="low - high",
                                      languages="zero-shot, unseen", effect_unit="points per doubling",
                                      note=None if n_sizes >= 2 else "not testable: fewer than 2 sizes"))
            # a target the grid never trains after the diverse sets gets no diversity rows
            diverse = not choice or bool(len(t)) and task in set(t.loc[t["language_set"].isin(choice[1]), "task"])
            if diverse and ("diversity" in P.primary or "tier_interaction_diversity" in P.primary):
                d = self._set_vs_control(choice[1], choice[2], task) if choice else pd.DataFrame()
                target = self._diverse_target
                note = None if choice else "not testable: no language set shares a size with the English control"
                if not choice and target and not (set(target[1]) & set(self.gains["language_set"])):
                    note = f"not testable yet: {target[0]} ({', '.join(target[1])}) has no finished run"
                if choice and len(d) and not (d["tier"] == "low").any():
                    note = (f"not testable: no low-resource evaluation language of {task} is unseen by "
                            f"{', '.join(choice[1])}")
                    d = d.iloc[:0]
                planned = list(target[1]) if choice and target else []
                # one seeds x (set, language) matrix of the low tier: the test and the sets it kept
                low = stats.seed_item_matrix(d[d["tier"] == "low"], item=("language_set", "language")) if len(d) \
                    else pd.DataFrame()
                sets = sorted({c.split("|")[0] for c in low.columns}) if len(d) else planned
                left_out = [s for s in planned if s not in sets]
                if left_out and not note:
                    note = (f"{', '.join(left_out)} left out: the test keeps the languages every seed has, and "
                            + self._why_left_out(left_out))
                label = (f"{choice[0]} minus {self.english_set} at {choice[2]:,} examples" if choice else
                         f"{target[0]} minus {self.english_set}" if target else "diverse minus English")
                extra = dict(language_set=",".join(sets) if sets else None, versus=self.english_set,
                             intermediate_size=choice[2] if choice else None, languages="zero-shot, unseen by the set")
                if "diversity" in P.primary:
                    r = self._with_params(stats.infer([low.to_numpy()] if low.size else []) if len(d) else {})
                    rows.append(self._row("primary", "diversity", label, task, r, tier="low", note=note, **extra))
                if "tier_interaction_diversity" in P.primary:
                    r = {}
                    if len(d):
                        r = stats.seed_level_difference(d[d["tier"] == "low"], d[d["tier"] == "high"],
                                                        item=("language_set", "language"), paired_items=False,
                                                        smallest_effect=P.smallest_effect, alpha=P.alpha)
                    rows.append(self._row("primary", "tier_interaction_diversity", label + ": low minus high", task, r,
                                          tier="low - high", note=note, **extra))
        if "positive_control" in P.primary and P.positive_control:
            it, task = P.positive_control["intermediate_task"], P.positive_control["task"]
            g = self._english_only(self.gains)
            g = g[(g["intermediate_task"] == it) & (g["task"] == task)]
            size = int(g["intermediate_size"].max()) if len(g) else None
            g = self.zero_shot(g[g["intermediate_size"] == size]) if len(g) else g
            r = self._with_params(stats.seed_level(g, item=("task", "language"))) if len(g) else {}
            rows.append(self._row("primary", "positive_control", f"{it} -> {task} (must help)", task, r,
                                  intermediate_task=it, intermediate_size=size, language_set=self.english_set,
                                  tier="all", languages="zero-shot, unseen",
                                  note=None if len(g) else f"not testable: no {it} -> {task} gains in the English set"))
        return rows

    def _with_params(self, r: dict) -> dict:
        """Recompute TOST and verdict with this study's smallest effect and alpha."""
        if not r or not r.get("n_seeds") or r.get("n_seeds", 0) < 2 or not np.isfinite(r.get("se", np.nan)):
            return r
        r = dict(r)
        if r["se"] > 0:
            r["tost_p"] = stats.tost(r["estimate"], r["se"], r["df"], self.params.smallest_effect)
            r["mde_80"] = stats.mde(r["se"], r["df"], self.params.alpha)
        r["verdict"] = stats.verdict(r["estimate"], r["p"], r["tost_p"], self.params.alpha)
        return r

    def _slopes_matrix(self, g: pd.DataFrame) -> pd.DataFrame:
        if not len(g):
            return pd.DataFrame()
        return stats.seed_item_matrix(self._slopes(g), item=("task", "language"))

    def _exploratory_rows(self) -> list[dict]:
        rows, g = [], self.gains
        if not len(g):
            return rows
        P = self.params
        groups = [("low", "zero-shot, unseen", lambda d: self.zero_shot(d)[lambda x: x["tier"] == "low"]),
                  ("mid", "zero-shot, unseen", lambda d: self.zero_shot(d)[lambda x: x["tier"] == "mid"]),
                  ("high", "zero-shot, unseen", lambda d: self.zero_shot(d)[lambda x: x["tier"] == "high"]),
                  ("all", "seen in the intermediate data", lambda d: d[(d["language"] != "en") & d["seen"]]),
                  ("high", "English (not zero-shot)", lambda d: d[d["language"] == "en"])]
        for (it, size, ls, task), d in g.groupby(["intermediate_task", "intermediate_size", "language_set", "task"]):
            for tier, which, pick in groups:
                sub = pick(d)
                if not len(sub):
                    continue
                r = self._with_params(stats.seed_level(sub, item=("task", "language")))
                rows.append(self._row("exploratory", "gain", f"{it} {int(size):,} ({ls}) minus baseline", task, r,
                                      intermediate_task=it, intermediate_size=int(size), language_set=ls,
                                      versus="baseline", tier=tier, languages=which))
        axis = self.size_axis()
        for task in self._tasks():
            zs = self.zero_shot(axis[axis["task"] == task])
            if zs["intermediate_size"].nunique() < 2:
                continue
            for tier in ("mid", "high"):
                m = self._slopes_matrix(zs[zs["tier"] == tier])
                if m.size:
                    rows.append(self._row("exploratory", "size_trend", f"gain per doubling of English {self.size_task} data",
                                          task, self._infer([m.to_numpy()]), intermediate_task=self.size_task,
                                          language_set=self.english_set, tier=tier, languages="zero-shot, unseen",
                                          effect_unit="points per doubling"))
        if self.english_set is not None:
            for ls in sorted(set(g["language_set"]) - {self.english_set}):
                sizes = set(g.loc[g["language_set"] == ls, "intermediate_size"]) & \
                    set(g.loc[g["language_set"] == self.english_set, "intermediate_size"])
                for size in sorted(sizes):
                    for task in self._tasks():
                        d = self._set_vs_control([ls], size, task)
                        if not len(d):
                            continue
                        r = self._with_params(stats.seed_level(d, item=("language_set", "language")))
                        rows.append(self._row("exploratory", "set_vs_english", f"{ls} minus {self.english_set} at "
                                              f"{int(size):,} examples", task, r, language_set=ls, versus=self.english_set,
                                              intermediate_size=int(size), tier="all", languages="zero-shot, unseen by the set"))
                        mates = self._genus_mates(ls)
                        is_mate = d["language"].isin(mates)
                        if is_mate.any() and (~is_mate).any():
                            r = stats.seed_level_difference(d[is_mate], d[~is_mate], item=("language_set", "language"),
                                                            paired_items=False, smallest_effect=P.smallest_effect,
                                                            alpha=P.alpha)
                            found = sorted(set(d.loc[is_mate, "language"]))
                            rows.append(self._row("exploratory", "genus_mates", f"{ls} minus {self.english_set} at "
                                                  f"{int(size):,} examples: genus-mates of its added languages "
                                                  f"({' '.join(found)}) minus its other unseen languages", task, r,
                                                  language_set=ls, versus=self.english_set, intermediate_size=int(size),
                                                  tier="all", languages="zero-shot, unseen by the set"))
            levels = self.params.diversity_levels
            names = list(levels)
            choice = self._diverse_choice()
            if len(names) >= 2 and choice:
                for i, a in enumerate(names):
                    for b in names[i + 1:]:
                        for task in self._tasks():
                            da = self._set_vs_control(list(levels[a]), choice[2], task)
                            db = self._set_vs_control(list(levels[b]), choice[2], task)
                            if not len(da) or not len(db):
                                continue
                            r = stats.seed_level_difference(da, db, item=("language_set", "language"), paired_items=False,
                                                            smallest_effect=P.smallest_effect, alpha=P.alpha)
                            rows.append(self._row("exploratory", "level_vs_level", f"level {a} minus level {b}", task, r,
                                                  intermediate_size=choice[2], tier="all",
                                                  languages="zero-shot, unseen by the set"))
        for task in self._tasks():
            r = self.distance_slope(task)
            if r is not None:
                rows.append(self._row("exploratory", "distance", "gain per 0.1 of URIEL distance to the nearest "
                                      "intermediate language (random intercept per language)", task, r, tier="all",
                                      languages="zero-shot, unseen", effect_unit="points per 0.1 distance"))
        return rows

    def _genus_mates(self, language_set: str) -> set[str]:
        """Evaluation languages of the genus (WALS-style: Turkic, Germanic, ...) of a language
        the set adds to English, related languages that may benefit together."""
        g = self.gains
        added = str(g.loc[g["language_set"] == language_set, "intermediate_languages"].iloc[0]).split(",")
        genera = set()
        for code in added:
            if code.strip() and code.strip() != "en":
                with contextlib.suppress(KeyError, ValueError):
                    genera.add(languages.info(code.strip()).genus)
        mates = set()
        for code in g["language"].unique():
            with contextlib.suppress(KeyError, ValueError):
                if languages.info(code).genus in genera - {None}:
                    mates.add(code)
        return mates

    def distance_slope(self, task: str) -> dict | None:
        """Per seed, the slope of gain on URIEL distance across (language set, language)
        points of one task, with a random intercept per language
        (``stats.random_intercept_slope``: a language's own level is a random effect, so it
        cannot masquerade as a distance effect beyond what the language variance allows);
        then the seed-level t over those slopes. None when no language is seen at two
        distances (an English-only study)."""
        g = self.set_comparable
        d = self.zero_shot(g[g["task"] == task]).dropna(subset=["distance"])
        if not len(d):
            return None
        slopes = []
        for seed, s in d.groupby("seed"):
            s = s.groupby(["language", "language_set"], as_index=False)[["distance", "gain"]].mean()
            b = stats.random_intercept_slope(s["distance"], s["gain"], s["language"])
            if np.isfinite(b):
                slopes.append({"seed": seed, "item": "slope", "gain": b / 10})
        if not slopes:
            return None
        return self._with_params(stats.seed_level(pd.DataFrame(slopes), item=("item",)))

    @cached_property
    def significance_rows(self) -> pd.DataFrame:
        """Every comparison, primary family first (Holm over the family), then exploratory."""
        prim = pd.DataFrame(self._primary_rows(), columns=SIGNIFICANCE_COLUMNS)
        if len(prim):
            prim["p_holm"] = stats.holm(pd.to_numeric(prim["p"], errors="coerce").to_numpy())
            for i, r in prim.iterrows():
                if r["n_seeds"] and r["n_seeds"] >= 2:
                    prim.at[i, "verdict"] = stats.verdict(float(r["estimate"]), float(r["p_holm"]),
                                                          float(r["tost_p"]) if r["tost_p"] is not None else math.nan,
                                                          self.params.alpha)
                elif r["note"]:
                    prim.at[i, "verdict"] = "inconclusive"
        expl = pd.DataFrame(self._exploratory_rows(), columns=SIGNIFICANCE_COLUMNS)
        frames = [f for f in (prim, expl) if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)

    def significance(self) -> pd.DataFrame:
        """The significance table as written to <study>-significance.csv (4 decimals)."""
        s = self.significance_rows.copy()
        for c in ("estimate", "ci_low", "ci_high", "p", "p_holm", "seed_sd", "mde_80", "smallest_effect", "tost_p"):
            s[c] = pd.to_numeric(s[c], errors="coerce").round(4)
        return s

    def per_task(self) -> pd.DataFrame:
        """Seed-level gain per (intermediate task, target task) at each intermediate task's
        largest English-only size, zero-shot unseen languages."""
        s = self.significance_rows
        if not len(s):
            return s
        s = s[(s["hypothesis"] == "gain") & (s["languages"] == "zero-shot, unseen")]
        g = self._english_only(self.gains)
        largest = g.groupby("intermediate_task")["intermediate_size"].max().to_dict() if len(g) else {}
        s = s[(s["language_set"] == self.english_set) &
              (s["intermediate_size"] == s["intermediate_task"].map(largest))]
        rows = []
        for (it, task), d in self.zero_shot(g[g["intermediate_size"] == g["intermediate_task"].map(largest)]) \
                .groupby(["intermediate_task", "task"]):
            r = self._with_params(stats.seed_level(d, item=("task", "language")))
            rows.append({"intermediate_task": it, "task": task, "intermediate_size": int(largest[it]), **r})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------ words

    def title(self) -> str:
        status = f"PARTIAL — {len(self.missing)} planned run(s) missing — " if not self.complete else ""
        return f"# {status}Study `{self.name}`: what do size and diversity of intermediate data do for zero-shot transfer?"

    def answer(self) -> str:
        """The answer, in Markdown, written from the numbers: the primary family first."""
        lines = []
        if not self.complete:
            shown = "; ".join(self.missing[:12]) + (f"; and {len(self.missing) - 12} more" if len(self.missing) > 12 else "")
            lines += [f"**PARTIAL: this report analyses only the finished runs; {len(self.missing)} planned run(s) "
                      f"have no finished result** ({shown}). Every number below may change when they finish.", ""]
        if not len(self.table):
            return "\n".join(lines + ["No finished target runs yet: nothing to analyse."])
        n_runs = self.table["run_id"].nunique()
        lines.append(f"**Study `{self.name}`**: {n_runs} finished target runs, {self.table['language'].nunique()} "
                     f"evaluation languages, {self.table['seed'].nunique()} seed(s). Gains are in points of each task's "
                     "primary metric over the no-intermediate baseline of the same seed and language; every interval "
                     "and p-value treats the seed as the unit.")
        mixed = self.machines()
        if len(mixed) > 1:
            shown = "; ".join(f"{r['machine']}: {r['runs']} run(s)" for _, r in mixed.iterrows())
            lines += ["", f"**Runs from {len(mixed)} kinds of machine** ({shown}). `precision: auto` trains in bf16 "
                      "only where the CPU has native bf16, and bf16 kernels differ between CPUs, so one run id can give "
                      "other numbers on another machine. Comparisons across these runs mix that difference into the "
                      "seed variance: rerun the study on one kind of machine, or read it as such."]
        nl = self.not_learned()
        if len(nl):
            excl = int(nl.loc[nl["stage"] == "target", "target runs excluded"].sum() +
                       nl.loc[nl["stage"] == "intermediate", "target runs excluded"].sum())
            lines += ["", f"**Runs that did not learn**: {int((nl['stage'] == 'intermediate').sum())} intermediate and "
                      f"{int((nl['stage'] == 'target').sum())} target run(s) stayed below their learning threshold; "
                      f"they and the target runs built on them ({excl} target run(s)) are kept out of every comparison "
                      "(listed in the table below)."]
        if not self.has_baseline:
            return "\n".join(lines + ["", "No finished baseline runs yet: gains cannot be computed."])
        if not self.has_gains:
            why = ("every run with an intermediate task was kept out (it did not learn), so no gains were computed"
                   if (~stats.baseline_mask(self.primary)).any() else "only baseline runs finished, so no gains were computed")
            return "\n".join(lines + ["", f"**No gains: {why}.** The baseline's scores per task, tier and language are "
                                      "below. " + self._baseline_sentence()])
        prim = self.significance_rows[self.significance_rows["family"] == "primary"]
        testable = prim[prim["n_seeds"].fillna(0).astype(int) >= 2]
        lines += ["", f"**Primary family: {len(testable)} test(s), Holm-adjusted over the family; smallest effect of "
                  f"interest {self.params.smallest_effect:g} point(s).**"]
        for _, r in testable.iterrows():
            lines.append(f"- {self._sentence(r)}")
        untested = prim[prim["n_seeds"].fillna(0).astype(int) < 2]
        for (hyp, note), rows in untested.groupby(["hypothesis", "note"], sort=False, dropna=False):
            lines.append(f"- {_HYPOTHESIS_NAMES.get(hyp, hyp)} ({', '.join(rows['task'].astype(str))}): "
                         f"{note or 'not testable'}.")
        lines += ["", "**Target-task training** (the baseline every gain is measured from): " + self._baseline_sentence()]
        lines += ["", self.comparison_text(), "", self.limitations(), "",
                  "Everything after the primary family (the exploratory table) is exploratory: its p-values are raw, "
                  "uncorrected, and labelled so."]
        return "\n".join(lines)

    def _sentence(self, r: pd.Series) -> str:
        head = f"**{_HYPOTHESIS_NAMES.get(r['hypothesis'], r['hypothesis'])}, {r['task']}** ({r['comparison']}; {r['languages']} " \
               f"languages, tier {r['tier']})"
        if r["note"] and (not r["n_seeds"] or r["n_seeds"] < 2):
            return f"{head}: {r['note']}."
        unit = r["effect_unit"]
        dec = _decimals(r["mde_80"])
        v = r["verdict"]
        tail = {"gain": "a gain", "loss": "a loss", "equivalent (no effect)":
                f"no effect: equivalent within ±{self.params.smallest_effect:g} (TOST p {_p(r['tost_p'])})",
                "inconclusive": "inconclusive: neither a difference nor equivalence is shown"}[v]
        if r["hypothesis"] == "positive_control" and v != "gain":
            tail += "; the positive control was not detected, so this study cannot detect effects of about this size"
        return (f"{head}: {_signed(r['estimate'], dec)} {unit} (95% CI {_signed(r['ci_low'], dec)} to "
                f"{_signed(r['ci_high'], dec)}; Holm p {_p(r['p_holm'])}; {int(r['n_seeds'])} seeds × "
                f"{int(r['n_languages'])} languages; MDE {r['mde_80']:.{dec}f}) — {tail}"
                + (f" ({r['note']})." if isinstance(r["note"], str) and r["note"] else "."))

    def limitations(self) -> str:
        models = sorted(set(self.table["model_name_or_path"].astype(str))) if "model_name_or_path" in self.table else []
        passes = self._passes()
        if models and not any("e5" in m for m in models):
            return LIMITATIONS.format(model=f"The encoder here is {', '.join(models)}, where Phang et al. used XLM-R "
                                      "Large (560M parameters); its results say nothing about XLM-R. ",
                                      budget=self._budget(passes))
        return LIMITATIONS.format(model=LIMITATIONS_E5, budget=self._budget(passes))

    def _budget(self, passes: str) -> str:
        """Seeds, intermediate sizes, passes and machines, read from the runs (a GPU study's
        budget is not a 2-core CPU's)."""
        t = self.table
        seeds = t["seed"].nunique() if "seed" in t else 0
        sizes = sorted({int(n) for n in pd.to_numeric(t.get("intermediate_size", pd.Series(dtype=float)),
                                                      errors="coerce").dropna() if n > 0})
        said = (f"{sizes[0]:,} intermediate training examples per run" if len(sizes) == 1 else
                f"{sizes[0]:,} to {sizes[-1]:,} intermediate training examples per run" if sizes else
                "no intermediate training")
        labels = [m for m in self.machines()["machine"] if m != machine.NOT_RECORDED]
        where = f", trained on {' and '.join(labels)}" if labels else ""
        return f"{seeds} seed(s), {said}, {passes}{where}"

    def _passes(self) -> str:
        """How many passes the intermediate runs made, read from the runs (not assumed)."""
        epochs = sorted(set(pd.to_numeric(self.table.get("intermediate_epochs", pd.Series(dtype=float)),
                                          errors="coerce").dropna()))
        if not epochs:
            return "short intermediate training"
        said = [f"{e:g}" for e in epochs]
        if said == ["1"]:
            return "one pass over the intermediate data"
        return f"{' or '.join(said)} passes over the intermediate data"

    def _baseline_sentence(self) -> str:
        base = self.primary[stats.baseline_mask(self.primary)]
        parts = []
        for task, rows in base.groupby("task", sort=True):
            english = rows.loc[rows["language"] == "en", "value"]
            zs = rows[rows["language"] != "en"]
            seeds = rows.groupby("seed")["value"].mean()
            sd = f", seed SD {seeds.std(ddof=1):.1f}" if len(seeds) > 1 else ""
            where = f"English {english.mean():.1f}, " if len(english) else ""
            parts.append(f"{task} {rows['metric'].iloc[0]} {where}zero-shot mean {zs['value'].mean():.1f}{sd}")
        flat = [t for t, rows in self.primary.groupby("task") if rows.groupby("language")["value"].nunique().max() == 1
                and rows["run_id"].nunique() > 1]
        text = "; ".join(parts) + "."
        if flat:
            text += (f" Every configuration gave identical scores on {', '.join(flat)}: the target training learned no "
                     "more than a constant prediction at this budget, so gains there carry no information.")
        return text

    def baseline_table(self) -> pd.DataFrame:
        """Baseline scores per task, tier and language (mean over seeds, n seeds)."""
        base = self.primary[stats.baseline_mask(self.primary)]
        if not len(base):
            return pd.DataFrame(columns=["Target task", "Metric", "Tier", "Language", "Score", "Seeds"])
        t = base.groupby(["task", "metric", "tier", "language"], as_index=False).agg(score=("value", "mean"),
                                                                                      seeds=("seed", "nunique"))
        order = {x: i for i, x in enumerate(languages.TIERS)}
        t = t.sort_values(["task", "tier", "language"], key=lambda s: s.map(order).fillna(9) if s.name == "tier" else s)
        t["score"] = t["score"].round(1)
        return t.rename(columns={"task": "Target task", "metric": "Metric", "tier": "Tier", "language": "Language",
                                 "score": "Score", "seeds": "Seeds"})

    def comparison(self, alpha: float | None = None) -> pd.DataFrame:
        """Our per-task gain next to Phang et al.'s (XLM-R Large; DESIGN.md §1): each target task
        takes its best intermediate task at its largest English size, seed-level inference.
        verdict: "holds" (same sign, p < alpha), "opposite", "equivalent (no effect)",
        "inconclusive", or "not run"."""
        alpha = self.params.alpha if alpha is None else alpha
        t = self.per_task()
        best = (t.sort_values("estimate", ascending=False, kind="stable").drop_duplicates("task")
                if len(t) else pd.DataFrame(columns=["task", "estimate", "p", "intermediate_task", "verdict"]))
        ours = best.set_index("task")
        rows = []
        for task in sorted(set(ours.index) | set(PAPER)):
            paper = PAPER.get(task)
            paper_gain = round(paper[1] - paper[0], 1) if paper else None
            direction = PAPER_DIRECTION.get(task) or (None if paper is None else ("gain" if paper_gain > 0 else "loss"))
            our = float(ours["estimate"].get(task, math.nan)) if len(ours) else math.nan
            p = float(ours["p"].get(task, math.nan)) if len(ours) else math.nan
            if math.isnan(our):
                verdict = "not run"
            elif not math.isnan(p) and p < alpha:
                verdict = "holds" if direction is None or (our > 0) == (direction != "loss") else "opposite"
            else:
                verdict = ours["verdict"].get(task, "inconclusive")
            rows.append({"task": task, "paper_gain": paper_gain, "paper_direction": direction,
                         "our_intermediate": ours["intermediate_task"].get(task) if len(ours) else None,
                         "our_gain": None if math.isnan(our) else round(our, 2),
                         "our_p": None if math.isnan(p) else round(p, 4), "verdict": verdict})
        return pd.DataFrame(rows)

    def comparison_text(self) -> str:
        c = self.comparison()
        heads = {"holds": "Holds here (same sign, seed-level p < 0.05)", "opposite": "Reversed here (seed-level p < 0.05)",
                 "equivalent (no effect)": "No effect here (equivalent within the smallest effect of interest)",
                 "inconclusive": "Inconclusive here (neither a difference nor equivalence shown)"}
        parts = ["**Against Phang et al. 2020** (best intermediate task per target task, largest English size)."]
        for verdict, head in heads.items():
            rows = c[c["verdict"] == verdict]
            if len(rows):
                items = ", ".join(f"{r['task']} (paper: {r['paper_direction'] if isinstance(r['paper_direction'], str) else 'not reported'}"
                                  + (f" {r['paper_gain']:+.1f}" if r["paper_gain"] is not None and not pd.isna(r["paper_gain"]) else "")
                                  + f"; here {r['our_intermediate']} {r['our_gain']:+.1f}, p {_p(r['our_p'])})"
                                  for _, r in rows.iterrows())
                parts.append(f"{head}: {items}.")
        not_run = c.loc[c["verdict"] == "not run", "task"].tolist()
        if not_run:
            parts.append(f"Not in this study: {', '.join(not_run)}.")
        return " ".join(parts)

    # ------------------------------------------------------------ tables for people

    def primary_table(self) -> pd.DataFrame:
        """The testable members of the primary family (the untestable ones are named in the answer)."""
        s = self.significance_rows
        return _human(s[(s["family"] == "primary") & (s["n_seeds"].fillna(0).astype(int) >= 2)], holm=True)

    def exploratory_table(self) -> pd.DataFrame:
        s = self.significance_rows
        return _human(s[s["family"] == "exploratory"], holm=False)

    def diversity_table(self) -> pd.DataFrame:
        d = self.set_diversity.copy()
        d["mean_pairwise_distance"] = d["mean_pairwise_distance"].round(2)
        return d.rename(columns={"language_set": "Language set", "languages": "Languages", "n_languages": "Number of languages",
                                 "n_families": "Families", "n_scripts": "Scripts",
                                 "mean_pairwise_distance": "Mean pairwise URIEL distance"})

    def missing_table(self) -> pd.DataFrame:
        return pd.DataFrame({"Missing or failed run": self.missing})

    def language_tables(self) -> dict[str, pd.DataFrame]:
        """Per-language mean scores per target task (rows tier/language, columns configurations)."""
        out = {}
        for task in sorted(self.table["task"].unique()) if len(self.table) else []:
            t = plots.language_table(self.primary, task).reset_index()
            t.columns = [" ".join(str(x) for x in c if str(x) != "") if isinstance(c, tuple) else str(c) for c in t.columns]
            out[task] = t
        return out

    # ------------------------------------------------------------ figures

    def make_figures(self) -> dict[str, object]:
        """The study's figures (PNG and SVG under outputs/figures/<study>/), each with a caption
        in ``self.captions``."""
        figs = {}
        self.captions.clear()
        g = self.gains
        if not len(g):
            return figs
        figs["1_gain_by_task"], self.captions["1_gain_by_task"] = plots.plot_task_gains(g, english_set=self.english_set)
        axis = self.size_axis()
        if len(axis) and axis["intermediate_size"].nunique() >= 1:
            figs["2_size_curve"], self.captions["2_size_curve"] = plots.plot_size_curve(axis, size_task=self.size_task,
                                                                                     english=self.english_set is not None)
        comparable = self.set_comparable
        if comparable["language_set"].nunique() > 1:
            figs["3_language_sets"], self.captions["3_language_sets"] = plots.plot_language_sets(comparable)
        if comparable["distance"].notna().any():
            figs["4_distance"], self.captions["4_distance"] = plots.plot_distance(comparable)
        out = output_path(self.outputs, "figures", self.name)
        for name, fig in figs.items():
            self.figures[name] = plots.save(fig, name, out)
        return figs

    # ------------------------------------------------------------ files

    def save(self) -> dict[str, Path]:
        """Write results, significance, answer and status under outputs/reports/. A partial
        analysis never replaces a complete one: it then writes <name>-partial-* instead."""
        base = report_base(self.outputs, self.name, self.complete)
        paths = {kind: output_path(self.outputs, "reports", f"{base}-{kind}.{ext}")
                 for kind, ext in (("results", "csv"), ("significance", "csv"), ("answer", "md"), ("status", "json"))}
        io.write_text(paths["results"], self.table.to_csv(index=False))
        if self.has_gains:
            io.write_text(paths["significance"], self.significance().to_csv(index=False))
        io.write_text(paths["answer"], self.title() + "\n\n" + self.answer() + "\n")
        io.write_text(paths["status"], json.dumps({"complete": self.complete, "missing": self.missing}, indent=1) + "\n")
        return paths


def report_base(outputs: str | os.PathLike, name: str, complete: bool) -> str:
    """The stem of a study's report files: "<name>", or "<name>-partial" when this analysis is
    partial and a complete one is already there (which must not be replaced)."""
    status = output_path(outputs, "reports", f"{name}-status.json")
    if not complete and status.is_file():
        try:
            if json.loads(status.read_text()).get("complete"):
                return f"{name}-partial"
        except (OSError, ValueError):
            pass
    return name


def report_path(outputs: str | os.PathLike, name: str) -> Path:
    """Where the rendered report of the analysis that just ran goes: reports/<name>.html, or
    reports/<name>-partial.html when that analysis was partial and a complete one exists.
    Reads the status files ``Study.save`` wrote."""
    partial = output_path(outputs, "reports", f"{name}-partial-status.json")
    main = output_path(outputs, "reports", f"{name}-status.json")
    if partial.is_file() and (not main.is_file() or partial.stat().st_mtime_ns >= main.stat().st_mtime_ns):
        return output_path(outputs, "reports", f"{name}-partial.html")
    return output_path(outputs, "reports", f"{name}.html")


_HYPOTHESIS_NAMES = {"size_trend": "Size", "diversity": "Diversity", "tier_interaction_size": "Low- vs high-resource (size)",
                     "tier_interaction_diversity": "Low- vs high-resource (diversity)",
                     "positive_control": "Positive control"}


def _decimals(mde: float) -> int:
    """Round to what the data support: 1 decimal when the MDE is a point or more, else 2."""
    return 1 if mde is not None and np.isfinite(mde) and mde >= 1 else 2


def _signed(x: float, dec: int) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{round(float(x), dec) + 0.0:+.{dec}f}"


def _p(p) -> str:
    if p is None or not np.isfinite(float(p)):
        return "n/a"
    p = float(p)
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def _human(s: pd.DataFrame, holm: bool) -> pd.DataFrame:
    """A significance table for people: human column names, rounded to the data, no index."""
    rows = []
    for _, r in s.iterrows():
        dec = _decimals(r["mde_80"])
        ci = f"{_signed(r['ci_low'], dec)} to {_signed(r['ci_high'], dec)}" if r["n_seeds"] and r["n_seeds"] >= 2 else "n/a"
        row = {"Comparison": r["comparison"], "Target task": r["task"], "Languages": f"{r['languages']}, tier {r['tier']}",
               "Estimate": f"{_signed(r['estimate'], dec)} {r['effect_unit']}", "95% CI": ci}
        row["Holm p" if holm else "p (raw, exploratory)"] = _p(r["p_holm"] if holm else r["p"])
        row.update({"Seeds": int(r["n_seeds"] or 0), "Languages (n)": int(r["n_languages"] or 0),
                    "MDE (80% power)": "n/a" if r["mde_80"] is None or not np.isfinite(r["mde_80"])
                    else f"{r['mde_80']:.{dec}f}",
                    "Verdict": f"{r['verdict']} ({r['note']})" if isinstance(r["note"], str) and r["note"] else r["verdict"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _cell_text(value):
    """A number as it was rounded (no trailing zeros of a fixed precision), a missing one as –."""
    if isinstance(value, float):
        return "–" if not np.isfinite(value) else f"{value:.4g}"
    return "–" if value is None else value


def show(df: pd.DataFrame):
    """A table for the report: no index column, numbers as rounded, missing values as –."""
    return df.style.hide(axis="index").format(_cell_text)


def load(params_file: str | os.PathLike, outputs_dir: str | os.PathLike | None = None) -> Study:
    """The study of one params file: its finished target runs, collected into a table, and
    the planned runs that have no finished result (a partial study)."""
    params = grid.load_params(params_file)
    plan = grid.expand(params, check_data=False)
    outputs = resolve_outputs(outputs_dir or None)
    planned = [s.run_id for s in plan.stages["target"]]
    table = results.collect(outputs, run_ids=planned, write=True)
    if len(table):
        table = table[table["stage"] == "target"] if "stage" in table.columns else table
    done = set(table["run_id"]) if len(table) else set()
    missing = []
    for point in plan.points:
        if point["target_run"] not in done:
            axes = ", ".join(f"{k}={v}" for k, v in point.items() if k != "target_run")
            missing.append(f"target run {point['target_run']} ({axes})")
    missing = list(dict.fromkeys(missing))
    sets = params.get("language_sets") or {"en": ["en"]}
    planned_sets = {p["language_set"]: ",".join(sets[p["language_set"]]) for p in plan.points
                    if p.get("intermediate_task", "none") != "none" and p.get("language_set") in sets}
    return Study(plan.name, table, outputs, params=analysis_params.parse(params.get("analysis")), missing=missing,
                 planned_sets=planned_sets)
