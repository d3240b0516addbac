"""The one mismatch renderer of the checks: numbers, tables, episode-end explanations.

Every check of :mod:`pgmath.testing.checks` raises a :class:`Mismatch` whose message is rendered
here, once, for the final (shrunk) counterexample: which entries differ and why the reference has
the value it has (where the episode ends, what is bootstrapped), and the input as a table — per
environment for rollouts (:func:`rollout_description`), one column per entry for losses and
estimators (:func:`flat_table`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from pgmath.rollouts import Rollout

__all__ = [
    "Mismatch",
    "case_rows",
    "env_label",
    "explain_step",
    "flat_table",
    "fmt",
    "fmt_pair",
    "mismatch_lines",
    "rollout_description",
    "rollout_table",
    "tolerance_line",
    "which_input",
]


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


def fmt_pair(expected: float, got: float) -> str:
    """``"expected X, got Y (diff D)"`` with as many significant digits as it takes for two
    different numbers to print differently (6 to 17): never "expected 0.0315571, got 0.0315571"."""
    e, g = float(expected), float(got)
    digits = 6
    while digits < 17 and e != g and f"{e:.{digits}g}" == f"{g:.{digits}g}":
        digits += 1

    def show(x: float) -> str:
        return str(x) if math.isnan(x) or math.isinf(x) else ("0" if x == 0 else f"{x:.{digits}g}")

    return f"expected {show(e)}, got {show(g)} (diff {fmt(g - e)})"


def env_label(idx: tuple[int, ...]) -> str:
    """``", env=1"`` for a batch index (``""`` for an unbatched rollout)."""
    if not idx:
        return ""
    return f", env={idx[0]}" if len(idx) == 1 else f", env={idx}"


def which_input(label: str) -> str:
    """How a message names the input: an edge case by its label, else the shrunk counterexample."""
    return f"edge case {label!r}" if label else "counterexample (shrunk by Hypothesis)"


def tolerance_line(rtol: float, atol: float) -> str:
    return (
        f"(entries compared as |got − expected| ≤ atol + rtol·scale with rtol={rtol:.3g}, "
        f"atol={atol:.3g}; scale bounds the magnitude of the terms summed into the entry)"
    )


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


def rollout_table(rows: Sequence[tuple[str, np.ndarray]], n_cols: int,
                  marks: set[int] = frozenset(), axis: str = "t") -> str:
    """A table with one column per time step (or entry, ``axis``); ``marks`` puts a ``^`` under
    differing columns."""
    body = [[axis, *[str(t) for t in range(n_cols)]]]
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


def flat_table(cols: Sequence[tuple[str, np.ndarray]], marks: set[int], axis: str = "i") -> str:
    """A table of flattened columns (one table column per entry, row-major)."""
    n = int(np.asarray(cols[0][1]).size)
    return rollout_table([(k, np.asarray(v).reshape(-1)) for k, v in cols], n, marks, axis)


def case_rows(case: Rollout, idx: tuple[int, ...], *, returns: bool = False) -> list[tuple[str, np.ndarray]]:
    """The rows of ``case`` at batch index ``idx`` (pgmath's names)."""
    sel = (slice(None), *idx)
    names = ["rewards", *([] if returns else ["values"]), "next_values", "terminated", "truncated"]
    return [(n, _col(getattr(case, n))[sel]) for n in names]


def _episode_start_note(term: np.ndarray, trunc: np.ndarray, t: int) -> list[str]:
    if t > 0 and (term[t - 1] or trunc[t - 1]):
        how = "terminated" if term[t - 1] else "truncated"
        return [f"a new episode starts at t={t} (the previous one was {how} at t={t - 1}), so "
                f"nothing from t<{t} enters"]
    return []


def _episode_end_note(term: np.ndarray, trunc: np.ndarray, nv: np.ndarray, t: int, s: int) -> str:
    T = len(term)
    at = "here" if s == t else f"at t={s}"
    if term[s]:
        both = " (it was also truncated; termination wins)" if trunc[s] else ""
        return f"the episode terminated {at}{both}, so nothing is bootstrapped after step {s}"
    if trunc[s]:
        tail = ""
        if s < T - 1:
            tail = f" (the final observation's value, not values[{s + 1}], which is the reset observation's)"
        return f"the episode was truncated {at}, so the bootstrap uses next_values[{s}] = {fmt(nv[s])}{tail}"
    return (f"the rollout ends at t={T - 1} inside the episode, so the bootstrap uses "
            f"next_values[{T - 1}] = {fmt(nv[T - 1])}")


def explain_step(case: Rollout, t: int, idx: tuple[int, ...], *, what: str = "gae") -> str:
    """Why the reference's entry (t, idx) is what it is: where its episode ends and what is
    bootstrapped (``what``: ``"gae"`` or ``"returns"``, the recursion to quote)."""
    sel = (slice(None), *idx)
    term, trunc, nv = (_col(x)[sel] for x in (case.terminated, case.truncated, case.next_values))
    s = t  # the last step of t's episode (forward in time)
    while s < case.T - 1 and not (term[s] or trunc[s]):
        s += 1
    parts = [*_episode_start_note(term, trunc, t), _episode_end_note(term, trunc, nv, t, s)]
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
    # per environment, backward in time: t = T-1, …, 0
    order = [(t, i) for i in idxs for t in range(T - 1, -1, -1) if bad[(t, *i)]]
    lines = []
    for t, i in order[:limit]:
        e, g = expected[(t, *i)], got[(t, *i)]
        why = f"; {explain(t, i)}" if explain is not None else ""
        lines.append(f"  {name}t={t}{env_label(i)}: {fmt_pair(e, g)}{why}")
    if len(order) > limit:
        lines.append(f"  … and {len(order) - limit} more")
    envs = list(dict.fromkeys(i for _, i in order))
    return lines, envs


def _environment_block(case: Rollout, i: tuple[int, ...], extra_rows: Mapping[str, np.ndarray],
                       shown: Mapping[str, np.ndarray], convention: str, marks: set[int],
                       returns: bool) -> list[str]:
    B = case.batch_shape
    rows = case_rows(case, i, returns=returns)
    scalars = []
    for k, v in shown.items():
        if v.shape == B:
            scalars.append(f"{k} = {fmt(v[i]) if v.dtype != bool else bool(v[i])}")
        else:
            rows.append((f"[{convention}] {k}", v[(slice(None), *i)]))
    rows += [(k, v[(slice(None), *i)]) for k, v in extra_rows.items()]
    out = [f"  environment {i[0] if len(i) == 1 else i}:" if i else "  the rollout:",
           rollout_table(rows, case.T, marks)]
    if scalars:
        out.append(f"    [{convention}] " + ", ".join(scalars))
    return out


def rollout_description(
    case: Rollout, envs: list[tuple[int, ...]], bad: np.ndarray | None,
    extra_rows: Mapping[str, np.ndarray], shown: Mapping[str, np.ndarray], convention: str,
    *, returns: bool = False,
) -> str:
    """The rollout as a table per environment (the first two of ``envs``), with the inputs as the
    user's convention saw them (``shown``), extra rows (expected, got) and ``^`` under ``bad``."""
    lam = "" if returns else f", lam={fmt(case.lam)}"
    out = [f"The {which_input(case.label)}: T={case.T}, batch shape {case.batch_shape}, "
           f"{case.dtype}, gamma={fmt(case.gamma)}{lam}"]
    for i in (envs or [next(iter(np.ndindex(case.batch_shape)))])[:2]:
        marks = set(np.flatnonzero(bad[(slice(None), *i)])) if bad is not None else set()
        out += _environment_block(case, i, extra_rows, shown, convention, marks, returns)
    return "\n".join(out)
