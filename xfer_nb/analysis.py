"""The study's analysis: finished runs → tidy table → gains, tests, trends, figures, and
an answer to the research question written from the numbers (04_analysis shows it)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from xfer_nb import grid, io, plots, results, stats
from xfer_nb.config import NO_INTERMEDIATE
from xfer_nb.paths import output_path, outputs_dir as resolve_outputs

CONFIG_COLUMNS = ["intermediate_task", "intermediate_size", "language_set"]

# Phang et al. 2020, XLM-R Large → best intermediate task, XTREME test (DESIGN.md §1).
PAPER = {
    "xnli": (79.2, 80.4), "pawsx": (86.4, 87.7), "panx": (65.4, 64.7),
    "xquad": (76.6, 77.2), "mlqa": (71.6, 72.3), "tydiqa": (65.1, 76.0),
}
PAPER_DIRECTION = {"bucc2018": "large gain", "tatoeba": "large gain"}


@dataclass
class Study:
    name: str
    table: pd.DataFrame
    outputs: Path
    figures: dict[str, list[Path]] = field(default_factory=dict)

    @cached_property
    def primary(self) -> pd.DataFrame:
        return plots.primary_metric(self.table) if len(self.table) else self.table

    @cached_property
    def gains(self) -> pd.DataFrame:
        return stats.paired_gains(self.primary, by=CONFIG_COLUMNS)

    @property
    def has_baseline(self) -> bool:
        return bool(len(self.table)) and bool(stats.baseline_mask(self.table).any())

    # ------------------------------------------------------------ tables

    def significance(self) -> pd.DataFrame:
        """Mean gain over the baseline, 95% CI and paired permutation p per configuration and tier."""
        return stats.significance_table(self.gains, group_by=CONFIG_COLUMNS + ["tier"]).round(4)

    def trends(self) -> pd.DataFrame:
        """Gain per doubling of the intermediate data, per tier, for the intermediate task
        with the most sizes (English-only set when present)."""
        return stats.trend(self._size_axis(self.gains), by="tier").round(4)

    def per_task(self) -> pd.DataFrame:
        """Mean gain per (intermediate task, target task) at each intermediate task's largest
        English-only size, with CI and p."""
        g = self._largest(self._english_only(self.gains))
        return stats.significance_table(g, group_by=["intermediate_task", "task"]).round(4)

    @cached_property
    def size_task(self) -> str | None:
        """The intermediate task that carries the size axis: the one with the most sizes."""
        g = self._english_only(self.gains)
        if not len(g):
            return None
        counts = g.groupby("intermediate_task")["intermediate_size"].nunique()
        return str(counts.sort_values(ascending=False, kind="stable").index[0])

    def _english_only(self, g: pd.DataFrame) -> pd.DataFrame:
        sets = set(g["language_set"])
        return g[g["language_set"] == "en"] if "en" in sets else g

    def _size_axis(self, g: pd.DataFrame) -> pd.DataFrame:
        g = self._english_only(g)
        return g[g["intermediate_task"] == self.size_task] if len(g) else g

    def _largest(self, g: pd.DataFrame) -> pd.DataFrame:
        """Rows of each intermediate task's largest size."""
        if not len(g):
            return g
        return g[g["intermediate_size"] == g.groupby("intermediate_task")["intermediate_size"].transform("max")]

    # ------------------------------------------------------------ figures

    def make_figures(self) -> dict[str, object]:
        """The four study figures (saved as PNG and SVG under outputs/figures/<study>/)."""
        g = self.gains
        figs = {}
        figs["1_gain_by_task"] = plots.plot_task_gains(g)
        note = f"; intermediate task {self.size_task}" if g["intermediate_task"].nunique() > 1 else ""
        figs["2_size_curve"] = plots.plot_size_curve(self._size_axis(g), col="task" if g["task"].nunique() > 1 else None,
                                                     title_note=note)
        if g["language_set"].nunique() > 1:
            figs["3_language_sets"] = plots.plot_language_sets(g)
        if g["distance"].notna().any():
            figs["4_distance"] = plots.plot_distance(g)
        out = output_path(self.outputs, "figures", self.name)
        for name, fig in figs.items():
            self.figures[name] = plots.save(fig, name, out)
        return figs

    def language_tables(self) -> dict[str, pd.DataFrame]:
        """Figure 5: per-language scores per target task (rows tier/language, columns configurations)."""
        return {task: plots.language_table(self.primary, task) for task in sorted(self.table["task"].unique())}

    # ------------------------------------------------------------ words

    def answer(self) -> str:
        """The answer to the research question, in Markdown, written from the numbers."""
        if not self.has_baseline:
            return "No finished baseline runs yet: gains cannot be computed."
        g = self.gains
        lines = [f"**Study `{self.name}`**: {self.table['run_id'].nunique()} finished target runs, "
                 f"{self.table['language'].nunique()} evaluation languages, "
                 f"{self.table['seed'].nunique()} seed(s); gains are in points of each task's primary metric "
                 f"over the no-intermediate baseline, paired by seed and language."]
        headline = self._headline(g)
        if headline:
            lines += ["", "**In short.** " + headline]
        lines.append("")
        lines.append("**Target-task training** (the baseline's scores, which every gain is measured from): "
                     + self._baseline_sentence())
        lines.append("")
        lines.append("**Size.** " + self._size_sentence(g))
        lines.append("")
        lines.append("**Diversity.** " + self._diversity_sentence(g))
        lines.append("")
        lines.append("**Typological distance.** " + self._distance_sentence(g))
        lines.append("")
        lines.append("**Per intermediate and target task** (each intermediate task's largest English-only "
                     "size): " + self._task_sentence())
        return "\n".join(lines)

    def _headline(self, g: pd.DataFrame) -> str:
        """Two sentences on low-resource languages: the size trend, and the best language set
        against English alone (a paired sign-flip test on the same seed, task and language)."""
        parts = []
        low = stats.trend(self._size_axis(g), by="tier")
        low = low[low["tier"] == "low"]
        if len(low) and not math.isnan(low["slope"].iloc[0]):
            r = low.iloc[0]
            verb = ("did not significantly change" if r["p"] >= 0.05 else
                    "raised" if r["slope"] > 0 else "lowered")
            parts.append(f"For low-resource languages, more English {self.size_task} data {verb} zero-shot "
                         f"transfer ({r['slope']:+.2f} points per doubling, 95% CI {_ci(r['ci_low'], r['ci_high'])}, "
                         f"p={r['p']:.3f}).")
        size = _shared_size(g)
        if size is not None and "en" in set(g["language_set"]):
            d = g[(g["intermediate_size"] == size) & (g["tier"] == "low") & ~g["seen"].astype(bool)]
            means = d.groupby("language_set")["gain"].mean()
            best = str(means.drop("en", errors="ignore").idxmax()) if len(means) > 1 else None
            if best is not None:
                key = ["seed", "task", "language", "metric"]
                pair = d[d["language_set"] == best].merge(d[d["language_set"] == "en"], on=key,
                                                           suffixes=("", "_en"))
                p = stats.paired_test(pair["gain"] - pair["gain_en"])
                parts.append(f"At a fixed {size} examples, on low-resource languages seen in no "
                             f"intermediate data, the most helpful multilingual set was {best} "
                             f"({_pts(means[best])} points) against {_pts(means.get('en', math.nan))} for "
                             f"English alone; the difference, paired over {len(pair)} (seed, task, language) "
                             f"scores, {'is' if p < 0.05 else 'is not'} significant (p={p:.3f}).")
        t = self.per_task()
        if len(t):
            sig = t[t["p_holm"] < 0.05].sort_values("mean_gain")
            listed = "; ".join(f"{r['intermediate_task']} → {r['task']} {_pts(r['mean_gain'])}" for _, r in sig.iterrows())
            parts.append(f"Of the {len(t)} (intermediate task, target task) pairs at their largest English size, "
                         + (f"these changed transfer significantly after Holm's correction: {listed}."
                            if len(sig) else "none changed transfer significantly after Holm's correction."))
        return " ".join(parts)

    def comparison_text(self, alpha: float = 0.05) -> str:
        """The paper comparison in one paragraph: which of its findings hold at this scale."""
        c = self.comparison(alpha)
        groups = {
            "holds": "Holds here (same sign, p < 0.05)",
            "opposite": "Reversed here (other sign, p < 0.05)",
            "no significant change": "Not detectable here (p ≥ 0.05)",
        }
        parts = []
        for verdict, head in groups.items():
            rows = c[c["verdict"] == verdict]
            if len(rows):
                items = ", ".join(f"{r['task']} (paper: {r['paper_direction']}"
                                  + (f" {r['paper_gain']:+.1f}" if r["paper_gain"] is not None
                                     and not pd.isna(r["paper_gain"]) else "")
                                  + f"; here {r['our_intermediate']} {_pts(r['our_gain'])}, p={r['our_p']:.3f})"
                                  for _, r in rows.iterrows())
                parts.append(f"{head}: {items}.")
        not_run = c.loc[c["verdict"] == "not run", "task"].tolist()
        if not_run:
            parts.append(f"Not in this study: {', '.join(not_run)}.")
        return " ".join(parts)

    def _baseline_sentence(self) -> str:
        """How well the target training learned, and which tasks cannot show any gain."""
        p = self.primary
        base = p[stats.baseline_mask(p)]
        parts = []
        for task, rows in base.groupby("task", sort=True):
            metric = rows["metric"].iloc[0]
            english = rows.loc[rows["language"] == "en", "value"]
            where = f"English {english.mean():.1f}, " if len(english) else ""
            parts.append(f"{task} {metric} {where}mean over languages {rows['value'].mean():.1f}")
        flat = [task for task, rows in p.groupby("task") if rows.groupby("language")["value"].nunique().max() == 1]
        text = "; ".join(parts) + "."
        if flat:
            text += (f" Every configuration gave identical scores on {', '.join(flat)}: the target training learned "
                     "no more than a constant prediction at this budget, so gains there carry no information.")
        return text

    def _size_sentence(self, g: pd.DataFrame) -> str:
        axis = self._size_axis(g)
        parts = []
        for _, r in stats.trend(axis, by="tier").iterrows():
            if math.isnan(r["slope"]):
                continue
            parts.append(f"{r['tier']}-resource languages: {r['slope']:+.2f} points per doubling "
                         f"(95% CI {_ci(r['ci_low'], r['ci_high'])}, p={r['p']:.3f})")
        largest = self._largest(axis)
        table = stats.significance_table(largest, group_by=["tier"])
        at = ", ".join(f"{r['tier']} {r['mean_gain']:+.2f} (CI {_ci(r['ci_low'], r['ci_high'])}, p={r['p']:.3f})"
                       for _, r in table.iterrows())
        size = int(largest["intermediate_size"].max()) if len(largest) else 0
        trend = "; ".join(parts) if parts else "only one size, so no trend"
        return (f"Intermediate task {self.size_task}, English only. Gain against log size — {trend}. "
                f"At the largest size ({size} examples) the mean gain was {at}.")

    def _diversity_sentence(self, g: pd.DataFrame) -> str:
        sets = sorted(set(g["language_set"]))
        if len(sets) < 2:
            return "Only one language set in this study."
        size = _shared_size(g)
        if size is None:
            return "The language sets share no size, so they cannot be compared at a fixed budget."
        d = g[g["intermediate_size"] == size]
        low = d[d["tier"] == "low"] if (d["tier"] == "low").any() else d
        table = stats.significance_table(low, group_by=["language_set", "seen"])
        parts = [f"{r['language_set']} ({'seen' if r['seen'] else 'unseen'} languages) {r['mean_gain']:+.2f} "
                 f"(CI {_ci(r['ci_low'], r['ci_high'])}, n={r['n']})" for _, r in table.iterrows()]
        best = table.sort_values("mean_gain", ascending=False).iloc[0]
        tier = "low-resource" if (d["tier"] == "low").any() else "all"
        return (f"At a fixed {size} examples, mean gain on {tier} languages: " + "; ".join(parts)
                + f". Largest: {best['language_set']} on {'seen' if best['seen'] else 'unseen'} languages.")

    def _distance_sentence(self, g: pd.DataFrame) -> str:
        d = g.dropna(subset=["distance"])
        if d["distance"].nunique() < 3:
            return "Too few distinct distances to relate gain to distance."
        per_lang = d.groupby(["language", "language_set"], as_index=False)[["gain", "distance"]].mean()
        if per_lang["gain"].nunique() < 2:
            return f"The gain is the same ({_pts(per_lang['gain'].iloc[0])}) at every distance."
        from scipy.stats import linregress, spearmanr
        rho, p_rho = spearmanr(per_lang["distance"], per_lang["gain"])
        fit = linregress(per_lang["distance"], per_lang["gain"])
        return (f"Across {len(per_lang)} (language, language set) points, Spearman's rho between gain and URIEL "
                f"distance to the intermediate languages is {rho:+.2f} (p={p_rho:.3f}); the least-squares slope is "
                f"{fit.slope / 10:+.2f} points per 0.1 of distance.")

    def _task_sentence(self) -> str:
        t = self.per_task()
        return "; ".join(f"{r['intermediate_task']} → {r['task']} {r['mean_gain']:+.2f} "
                         f"(CI {_ci(r['ci_low'], r['ci_high'])}, p={r['p']:.3f})"
                         for _, r in t.iterrows()) or "none"

    def comparison(self, alpha: float = 0.05) -> pd.DataFrame:
        """Our per-task gain next to Phang et al.'s (XLM-R Large; DESIGN.md §1). As in the paper,
        each target task takes its best intermediate task (largest mean gain, named in
        `our_intermediate`). verdict: "holds" (same sign, p < alpha), "opposite" (other sign,
        p < alpha), "no significant change", or "not run"."""
        t = self.per_task()
        best = (t.sort_values("mean_gain", ascending=False, kind="stable").drop_duplicates("task")
                if len(t) else t.assign(task=[]))
        ours = best.set_index("task")
        rows = []
        for task in sorted(set(ours.index) | set(PAPER)):
            paper = PAPER.get(task)
            paper_gain = round(paper[1] - paper[0], 1) if paper else None
            direction = PAPER_DIRECTION.get(task) or (None if paper is None else ("gain" if paper_gain > 0 else "loss"))
            our, p = float(ours["mean_gain"].get(task, math.nan)), float(ours["p"].get(task, math.nan))
            if math.isnan(our):
                verdict = "not run"
            elif math.isnan(p) or p >= alpha:
                verdict = "no significant change"
            elif direction is None:
                verdict = "gain" if our > 0 else "loss"
            else:
                verdict = "holds" if (our > 0) == (direction != "loss") else "opposite"
            rows.append({"task": task, "paper_gain": paper_gain, "paper_direction": direction,
                         "our_intermediate": ours["intermediate_task"].get(task) if len(ours) else None,
                         "our_gain": None if math.isnan(our) else round(our, 2),
                         "our_p": None if math.isnan(p) else round(p, 4), "verdict": verdict})
        return pd.DataFrame(rows)

    def save(self) -> dict[str, Path]:
        paths = {"results": output_path(self.outputs, "reports", f"{self.name}-results.csv"),
                 "significance": output_path(self.outputs, "reports", f"{self.name}-significance.csv"),
                 "answer": output_path(self.outputs, "reports", f"{self.name}-answer.md")}
        io.write_text(paths["results"], self.table.to_csv(index=False))
        if self.has_baseline:
            io.write_text(paths["significance"], self.significance().to_csv(index=False))
        io.write_text(paths["answer"], self.answer() + "\n")
        return paths


def _shared_size(g: pd.DataFrame) -> int | None:
    """The largest intermediate size that every language set has (None: none, or one set)."""
    sizes = [set(rows["intermediate_size"]) for _, rows in g.groupby("language_set")]
    common = set.intersection(*sizes) if len(sizes) > 1 else set()
    return int(max(common)) if common else None


def _pts(x: float) -> str:
    """+1.23; never "-0.00"."""
    return f"{round(float(x), 2) + 0.0:+.2f}"


def _ci(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"{low:+.2f} to {high:+.2f}"


def load(params_file: str | os.PathLike, outputs_dir: str | os.PathLike | None = None) -> Study:
    """The study of one params file: its finished target runs, collected into a table."""
    params = grid.load_params(params_file)
    plan = grid.expand(params, check_data=False)
    outputs = resolve_outputs(outputs_dir or None)
    table = results.collect(outputs, run_ids=[s.run_id for s in plan.stages["target"]], write=True)
    if len(table):
        table = table[table["stage"] == "target"]
    return Study(plan.name, table, outputs)
