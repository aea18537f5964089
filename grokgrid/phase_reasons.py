"""The ``reason`` column of the labels: a short sentence, with the numbers, per run.

phases.py computes the labels (``_label_table``, one array per column, plus what the sentences
need); this module only turns one run's entries of those arrays into words, so that a reader
can see why a run got its phase and detail, and tune the criteria.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from grokgrid.criteria import PhaseCriteria


def _divergence_text(cols: Mapping[str, np.ndarray], g: int) -> str:
    row = int(cols["div_row"][g])
    parts = []
    if cols["bad_train"][row]:
        parts.append(f"train_loss={cols['train_loss'][row]}")
    if cols["bad_val"][row]:
        parts.append(f"val_loss={cols['val_loss'][row]}")
    return f"loss diverged at step {int(cols['div_step'][g])} ({', '.join(parts)})"


def reason(cols: Mapping[str, np.ndarray], g: int, criteria: PhaseCriteria) -> str:
    """A short sentence, with the numbers, saying why run ``g`` got its phase (and detail)."""
    text = _phase_reason(cols, g, criteria)
    extra = _detail_reason(cols, g, criteria)
    return f"{text}; {extra}" if extra else text


def _detail_reason(cols: Mapping[str, np.ndarray], g: int, criteria: PhaseCriteria) -> str:
    detail, phase = cols["detail"][g], cols["phase"][g]
    thr = f"{criteria.threshold:g}"
    plateau = f"{cols['plateau_val_acc'][g]:.3g}"
    if detail == "semi-grokking" or cols["semi_rising"][g]:
        t_semi, mid, last = int(cols["t_semi"][g]), int(cols["semi_mid"][g]), int(cols["last_step"][g])
        where = (f"half way from t_semi {t_semi} to the end" if mid == t_semi + (last - t_semi) // 2
                 else f"two plateau windows before the end (t_semi {t_semi} leaves no room for a plateau after it)")
        rise = f"{cols['semi_rise'][g]:.3g} above val acc {cols['semi_ref'][g]:.3g} at step {mid}, {where}"
        if detail != "semi-grokking":
            return f"not semi-grokking: val acc still rising: plateau {plateau} is {rise} (> plateau_rise_max {criteria.plateau_rise_max:g})"
        return (
            f"semi-grokking: val acc reached {criteria.semi_min:g} at step {int(cols['t_semi'][g])}, "
            f"{int(cols['semi_delay'][g])} steps after train (>= {criteria.gap}), "
            f"and plateaued at {plateau} (in [{criteria.semi_min:g}, {criteria.semi_max:g})), "
            f"flat: {rise} (<= plateau_rise_max {criteria.plateau_rise_max:g})"
        )
    if not cols["t_drop_ok"][g] or phase not in ("grokking", "comprehension"):
        return ""
    fell = (
        f"val acc fell below {thr} at step {int(cols['t_drop'][g])} and stayed below "
        f"(peak {cols['max_val_acc'][g]:.3g}, plateau {plateau})"
    )
    if detail == "ungrokking" and cols["staged_drop"][g]:
        return (f"ungrokking: generalised in stage {int(cols['stage_val'][g])} (val acc >= {thr} at step "
                f"{int(cols['t_val'][g])}), then in stage {int(cols['stage_drop'][g])} {fell} while train acc stayed >= {thr}")
    if detail == "ungrokking":
        return f"ungrokking: after grokking, {fell} while train acc stayed >= {thr}"
    if detail == "misgrokking":
        return f"misgrokking: after generalising promptly, {fell} while train acc stayed >= {thr}"
    # A drop that is not un/misgrokking: say why not, so that a reader can tune the criteria.
    why = []
    if not cols["train_after"][g] >= criteria.threshold:
        why.append(f"train acc fell to {cols['train_after'][g]:.3g}")
    if not cols["fall"][g] >= criteria.drop_min:
        why.append(f"fall {cols['fall'][g]:.3g} < drop_min {criteria.drop_min:g}")
    return f"{fell}; not un/misgrokking: {', '.join(why)}"


def _phase_reason(cols: Mapping[str, np.ndarray], g: int, criteria: PhaseCriteria) -> str:
    if not cols["last_step_ok"][g]:
        if cols["had_rows"][g] and criteria.budget is not None:
            return f"no logged steps within budget {criteria.budget}"
        return "no logged steps"
    phase = cols["phase"][g]
    thr = f"{criteria.threshold:g}"
    tt, tv, gap, last = (int(cols[k][g]) for k in ("t_train", "t_val", "gap", "last_step"))
    if phase == "diverged":
        return _divergence_text(cols, g)
    if phase in ("grokking", "comprehension"):
        op = ">=" if phase == "grokking" else "<"
        if tv < tt:
            return f"val acc reached {thr} at step {tv}, before train at step {tt}: gap {gap} {op} {criteria.gap}"
        return f"train acc reached {thr} at step {tt}, val at step {tv}: gap {gap} {op} {criteria.gap}"
    if phase == "memorization":
        return (
            f"train acc reached {thr} at step {tt}, val acc never did by step {last} "
            f"(max {cols['max_val_acc'][g]:.3g})"
        )
    final_train = f"{cols['final_train_acc'][g]:.3g}"
    if cols["t_val_ok"][g]:
        # Liu's notebook would call this comprehension; train never fitted, so it is not.
        return (
            f"val acc reached {thr} at step {tv} but train acc never did by step {last} "
            f"(final {final_train}): confusion, not comprehension"
        )
    return f"train acc never reached {thr} by step {last} (final {final_train})"


def reasons(cols: Mapping[str, np.ndarray], criteria: PhaseCriteria) -> list[str]:
    # A Python loop, but over runs (not rows): ~10 ms for 10k runs.
    return [reason(cols, g, criteria) for g in range(len(cols["phase"]))]
