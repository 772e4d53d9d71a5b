"""The params file's `analysis:` block: the declared primary family, the smallest effect of
interest and the named controls. Checked here, with no other project import, so that
grid validation can call ``parse`` before anything runs.

    analysis:
      primary: [size_trend, diversity, tier_interaction_size, tier_interaction_diversity,
                positive_control]
      positive_control: {intermediate_task: xnli, task: xnli}  # must help its target
      english_control: en          # the budget-matched English-only set (default: the set
                                   # whose languages are just English)
      diversity_levels: {near: [near-1, near-2], far: [far-1, far-2]}  # optional
      smallest_effect: 1.0         # points; the equivalence margin of every TOST
      alpha: 0.05

Each primary hypothesis is tested once per target task (each task in its own metric) on
zero-shot languages (English and languages seen in the intermediate data excluded):

size_trend                  gain per doubling of the size axis, low-resource languages
diversity                   the most diverse set (or level) minus the English control at the
                            same budget, low-resource languages unseen by that set
tier_interaction_size       size_trend on low-resource minus on high-resource languages
tier_interaction_diversity  diversity on low-resource minus on high-resource languages
positive_control            gain of `positive_control.intermediate_task` on its task at its
                            largest English size, all zero-shot languages
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HYPOTHESES: tuple[str, ...] = ("size_trend", "diversity", "tier_interaction_size", "tier_interaction_diversity",
                               "positive_control")
KEYS: tuple[str, ...] = ("primary", "positive_control", "english_control", "diversity_levels", "smallest_effect",
                         "alpha", "learning_thresholds")


class AnalysisParamsError(ValueError):
    """A bad `analysis:` block; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class AnalysisParams:
    primary: tuple[str, ...] = HYPOTHESES
    positive_control: dict[str, str] = field(default_factory=dict)
    english_control: str | None = None
    diversity_levels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    smallest_effect: float = 1.0
    alpha: float = 0.05


def parse(block: Any) -> AnalysisParams:
    """The checked `analysis:` block (None or missing: the defaults; positive_control then
    joins the family only when configured)."""
    if block is None:
        block = {}
    if not isinstance(block, dict):
        raise AnalysisParamsError(f"analysis: must be a mapping with keys {list(KEYS)}, got {block!r}")
    unknown = sorted(set(block) - set(KEYS))
    if unknown:
        raise AnalysisParamsError(f"analysis: unknown key(s) {unknown}; allowed: {list(KEYS)}")
    primary = block.get("primary", list(HYPOTHESES))
    if not isinstance(primary, list) or not all(isinstance(p, str) for p in primary):
        raise AnalysisParamsError(f"analysis.primary must be a list of names from {list(HYPOTHESES)}, got {primary!r}")
    bad = [p for p in primary if p not in HYPOTHESES]
    if bad:
        raise AnalysisParamsError(f"analysis.primary: unknown hypothesis {bad}; allowed: {list(HYPOTHESES)}")
    control = block.get("positive_control") or {}
    if not isinstance(control, dict) or set(control) - {"intermediate_task", "task"} or \
            (control and set(control) != {"intermediate_task", "task"}):
        raise AnalysisParamsError("analysis.positive_control must be {intermediate_task: <name>, task: <target task>}, "
                                  f"got {control!r}")
    if "positive_control" in primary and "primary" in block and not control:
        raise AnalysisParamsError("analysis.primary lists positive_control but analysis.positive_control is not set; "
                                  "give {intermediate_task: ..., task: ...}")
    levels = block.get("diversity_levels") or {}
    if not isinstance(levels, dict) or not all(isinstance(v, list) and v and all(isinstance(x, str) for x in v)
                                               for v in levels.values()):
        raise AnalysisParamsError("analysis.diversity_levels must map a level name to a non-empty list of "
                                  f"language-set names, got {levels!r}")
    eff = block.get("smallest_effect", 1.0)
    if isinstance(eff, bool) or not isinstance(eff, (int, float)) or not eff > 0:
        raise AnalysisParamsError(f"analysis.smallest_effect must be a positive number of points, got {eff!r}")
    alpha = block.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise AnalysisParamsError(f"analysis.alpha must be a number in (0, 0.5), got {alpha!r}")
    english = block.get("english_control")
    if english is not None and not isinstance(english, str):
        raise AnalysisParamsError(f"analysis.english_control must be a language-set name, got {english!r}")
    if "primary" not in block and not control:
        primary = [p for p in primary if p != "positive_control"]
    return AnalysisParams(primary=tuple(primary), positive_control=dict(control), english_control=english,
                          diversity_levels={k: tuple(v) for k, v in levels.items()},
                          smallest_effect=float(eff), alpha=float(alpha))
