"""Readable mismatch reports: number formatting, per-environment tables, episode-end explanations.

The checks in :mod:`pgmath.testing.checks` raise an ``AssertionError`` whose message is built here
from the shrunken counterexample: which entries differ, why the reference has the value it has
(where the episode ends, what is bootstrapped), and the counterexample as a table per environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from pgmath.testing.strategies import RolloutCase

__all__ = ["Mismatch", "env_label", "explain_step", "fmt", "rollout_table", "tolerance_line"]


class Mismatch(AssertionError):
    """Raised inside a check; the full message is rendered once, for the final (shrunk) example."""

    def __init__(self, summary: str, render: Callable[[], str]):
        super().__init__(summary)
        self.summary = summary
        self.render = render


def fmt(x: float) -> str:
    """A number in at most 6 significant digits (``nan``/``inf`` as such)."""
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.6g}"


def env_label(idx: tuple[int, ...]) -> str:
    """``", env=1"`` for a batch index (``""`` for an unbatched rollout)."""
    if not idx:
        return ""
    return f", env={idx[0]}" if len(idx) == 1 else f", env={idx}"


def _col(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x if x.dtype == torch.bool else x.double()
        return x.numpy()
    return np.asarray(x)


def _cell(v: object) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "T" if v else "."
    return fmt(float(v))


def rollout_table(rows: Sequence[tuple[str, np.ndarray]], n_cols: int, marks: set[int] = frozenset()) -> str:
    """A table with one column per time step; ``marks`` puts a ``^`` under differing steps."""
    header = ["t", *[str(t) for t in range(n_cols)]]
    body = [header]
    for name, vals in rows:
        cells = [_cell(v) for v in np.asarray(vals).reshape(-1)]
        body.append([name, *cells, *([""] * (n_cols - len(cells)))])
    if marks:
        body.append(["", *["^" if t in marks else "" for t in range(n_cols)]])
    widths = [max(len(r[i]) if i < len(r) else 0 for r in body) for i in range(n_cols + 1)]
    lines = []
    for r in body:
        cells = [r[0].ljust(widths[0])] + [c.rjust(widths[i + 1]) for i, c in enumerate(r[1:])]
        lines.append("    " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def case_rows(case: RolloutCase, idx: tuple[int, ...], *, returns: bool = False) -> list[tuple[str, np.ndarray]]:
    """The rows of ``case`` at batch index ``idx`` (pgmath's names)."""
    sel = (slice(None), *idx)
    rows = [("rewards", _col(case.rewards)[sel])]
    if not returns:
        rows.append(("values", _col(case.values)[sel]))
    rows += [
        ("next_values", _col(case.next_values)[sel]),
        ("terminated", _col(case.terminated)[sel]),
        ("truncated", _col(case.truncated)[sel]),
    ]
    return rows


def explain_step(case: RolloutCase, t: int, idx: tuple[int, ...], *, what: str = "gae") -> str:
    """Why the reference's entry (t, idx) is what it is: where its episode ends and what is bootstrapped."""
    term = _col(case.terminated)[(slice(None), *idx)]
    trunc = _col(case.truncated)[(slice(None), *idx)]
    nv = _col(case.next_values)[(slice(None), *idx)]
    T = case.T
    parts = []
    if t > 0 and (term[t - 1] or trunc[t - 1]):
        how = "terminated" if term[t - 1] else "truncated"
        parts.append(
            f"a new episode starts at t={t} (the previous one was {how} at t={t - 1}), so nothing "
            f"from t<{t} enters"
        )
    s = t
    while s < T - 1 and not (term[s] or trunc[s]):
        s += 1
    at = "here" if s == t else f"at t={s}"
    if term[s]:
        both = " (it was also truncated; termination wins)" if trunc[s] else ""
        parts.append(f"the episode terminated {at}{both}, so nothing is bootstrapped after step {s}")
    elif trunc[s]:
        tail = ""
        if s < T - 1:
            tail = f" (the final observation's value, not values[{s + 1}], which is the reset observation's)"
        parts.append(
            f"the episode was truncated {at}, so the bootstrap uses next_values[{s}] = {fmt(nv[s])}{tail}"
        )
    else:
        parts.append(
            f"the rollout ends at t={T - 1} inside the episode, so the bootstrap uses "
            f"next_values[{T - 1}] = {fmt(nv[T - 1])}"
        )
    if what == "gae" and s > t:
        parts.append(f"Â[{t}] = δ[{t}] + γλ Â[{t + 1}] with γ={fmt(case.gamma)}, λ={fmt(case.lam)}")
    elif what == "returns" and s > t:
        parts.append(f"G[{t}] = r[{t}] + γ G[{t + 1}] with γ={fmt(case.gamma)}")
    return "; ".join(parts)


def mismatch_lines(
    expected: np.ndarray,
    got: np.ndarray,
    bad: np.ndarray,
    explain: Callable[[int, tuple[int, ...]], str] | None,
    *,
    name: str = "",
    limit: int = 6,
) -> tuple[list[str], list[tuple[int, ...]]]:
    """Lines ``t=3, env=1: expected …, got …; why`` in the order a reverse recursion computes them.

    Returns the lines and the batch indices with a mismatch (in order of first appearance).
    """
    T = expected.shape[0]
    idxs = list(np.ndindex(expected.shape[1:]))
    order = [(t, i) for i in idxs for t in range(T - 1, -1, -1) if bad[(t, *i)]]
    lines = []
    for t, i in order[:limit]:
        e, g = expected[(t, *i)], got[(t, *i)]
        why = f"; {explain(t, i)}" if explain is not None else ""
        lines.append(f"  {name}t={t}{env_label(i)}: expected {fmt(e)}, got {fmt(g)} (diff {fmt(g - e)}){why}")
    if len(order) > limit:
        lines.append(f"  … and {len(order) - limit} more")
    envs = list(dict.fromkeys(i for _, i in order))
    return lines, envs


def tolerance_line(rtol: float, atol: float) -> str:
    return (
        f"(entries compared as |got − expected| ≤ atol + rtol·scale with rtol={rtol:.3g}, "
        f"atol={atol:.3g}; scale bounds the magnitude of the terms summed into the entry)"
    )
