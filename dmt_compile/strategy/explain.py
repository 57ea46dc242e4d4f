"""The explanation of a choice: a table of every candidate (predicted step and its band, bytes across
hosts, compute, ΔAUC when measured, why dropped), the choice, the margin to the runner-up and
whether the predictor's error makes it uncertain; the same as a JSON-ready dict (`SCHEMA`).

It renders a `choose.StrategyChoice` (which calls it), so it names that type in strings only."""
from __future__ import annotations

from tabulate import tabulate

__all__ = ["choice_table", "choice_dict", "SCHEMA"]

SCHEMA = "dmt_compile.strategy.choice/1"


def _quality_cell(r: "CandidateRow") -> str:
    if r.candidate.exact:
        return "exact"
    q = r.quality
    return "—" if q is None else f"{q.delta_auc:+.4f} ± {q.auc_spread:.4f}"


def _status(choice: "StrategyChoice", r: "CandidateRow") -> str:
    key = r.candidate.key
    if key == choice.chosen:
        return "CHOSEN"
    if key == choice.runner_up:
        return "runner-up"
    return f"dropped: {r.dropped}" if r.dropped else ""


def _headline(choice: "StrategyChoice") -> list[str]:
    chosen = choice.row(choice.chosen)
    lines = [f"strategy auto on {choice.topology}, batch {choice.batch_per_rank} per rank; predictor: "
             f"{choice.predictor}; quality budget: ΔAUC ≥ -{choice.quality_budget:g} (quality {choice.quality})"]
    text = f"chosen: {choice.chosen} — {chosen.candidate.describe()}, predicted {chosen.prediction.seconds * 1e3:.3f} ms"
    if choice.runner_up is not None:
        text += f"; margin to runner-up {choice.runner_up}: {choice.margin * 100:.1f} %"
        if choice.uncertain:
            err = max(chosen.prediction.rel_error, choice.row(choice.runner_up).prediction.rel_error)
            text += f" — uncertain: the predictor's error (±{err * 100:.0f} %) exceeds the margin"
    lines.append(text)
    if not choice.quality_checked:
        lines.append("quality was not checked: only exact candidates (flat, identity) and those the quality "
                     "harness measured within the budget on both its data sets (docs/QUALITY.md) can be chosen; "
                     "pass calibration data to measure the others on yours")
    return lines


def choice_table(choice: "StrategyChoice") -> str:
    """The explanation as text (module docstring)."""
    flat = next((r.prediction.seconds for r in choice.rows if r.candidate.strategy == "flat"), None)
    rows = []
    for r in choice.rows:
        p, c = r.prediction, r.candidate
        rows.append([c.key, f"{p.seconds * 1e3:.3f} ±{p.rel_error * 100:.0f}%",
                     f"{flat / p.seconds:.2f}x" if flat else "—", f"{c.effective_compression:.2f}",
                     f"{p.cross_host_bytes / 1e6:.3f}", f"{p.compute_s * 1e3:.3f}", f"{p.comm_s * 1e3:.3f}",
                     _quality_cell(r), _status(choice, r)])
    table = tabulate(rows, headers=["candidate", "step ms", "vs flat", "eff. c", "cross-host MB", "compute ms",
                                    "comm ms", "ΔAUC", "status"], tablefmt="simple", disable_numparse=True)
    lines = _headline(choice) + [table]
    lines += [f"refused: {r.what}: {r.reason}" for r in choice.refusals]
    lines += [f"note: {n}" for n in choice.notes]
    return "\n".join(lines)


def _row_dict(choice: "StrategyChoice", r: "CandidateRow") -> dict:
    c, p, q = r.candidate, r.prediction, r.quality
    return {
        "key": c.key, "strategy": c.strategy, "tower_module": c.tower_module, "compression": c.compression,
        "effective_compression": c.effective_compression, "feed": c.feed, "wire_dtype": c.wire_dtype,
        "exact": c.exact, "predicted_step_s": p.seconds, "rel_error": p.rel_error,
        "cross_host_bytes": p.cross_host_bytes, "compute_s": p.compute_s, "comm_s": p.comm_s,
        "terms": dict(p.terms), "delta_auc": None if q is None else q.delta_auc,
        "auc_spread": None if q is None else q.auc_spread, "delta_log_loss": None if q is None else q.delta_log_loss,
        "log_loss_spread": None if q is None else q.log_loss_spread, "quality_seeds": None if q is None else q.seeds,
        "dropped": r.dropped or None, "status": _status(choice, r).split(":")[0] or None,
        "towers": [{"host": t.host, "width_in": t.width_in, "width_out": t.width_out} for t in c.towers],
    }


def choice_dict(choice: "StrategyChoice") -> dict:
    """The explanation as a JSON-ready dict (schema `SCHEMA`)."""
    return {
        "schema": SCHEMA, "topology": choice.topology, "batch_per_rank": choice.batch_per_rank,
        "predictor": choice.predictor, "quality_budget": choice.quality_budget, "quality": choice.quality,
        "quality_checked": choice.quality_checked, "chosen": choice.chosen, "runner_up": choice.runner_up,
        "margin": choice.margin, "uncertain": choice.uncertain,
        "candidates": [_row_dict(choice, r) for r in choice.rows],
        "refused": [{"what": r.what, "reason": r.reason} for r in choice.refusals], "notes": list(choice.notes),
    }
