"""Diagnosis that names the right cause: search the reference's family before naming a bug.

When a function disagrees with the reference, the simplest explanation is usually that it
computes a *different member of the same family*: another objective or aggregation, another clip
setting, its arguments in another order, or the right formula in float32 arithmetic. Only when
none of those reproduces its output is a catalogued bug (:mod:`pgmath.testing.mutants`) named —
and only a bug that reproduces the output.

A check builds its :class:`Candidate` list (simplest first), and :func:`search_family` runs each
candidate through the same observation as the user's function (value and gradients, laid out
alike) and returns the first that reproduces it:

    "matches objective='ppo', aggregation='seq-mean-token-mean' (the check expected
    aggregation='token-mean')"

Checked by: ``tests/test_testing_policy_loss.py`` (a GRPO loss with per-sequence length
normalisation is named as aggregation='seq-mean-token-mean', a CISPO loss as objective='cispo',
a float32 loss as float32 round-off, a hard-coded dual clip by its setting),
``tests/test_testing_token_checks.py`` (a KL with its arguments swapped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NEAR_ADVICE", "Candidate", "float32_valued", "near_reference", "same_output", "search_family"]

#: What a user is told when the output is the reference's to within 2e-6 relative.
NEAR_ADVICE = ("the difference is tiny — typically an ε in a denominator (mask.sum() + 1e-8) or a "
               "clamp far from the inputs; if that is intended, pass rtol=1e-6")


@dataclass(frozen=True)
class Candidate:
    """A member of the reference's family, in the calling convention of the function under test.

    Attributes:
      description: what it is, as the diagnosis prints it ("objective='cispo'", "k3 with its two
        arguments swapped", "float32 arithmetic").
      fn: the candidate, called exactly as the user's function is.
      advice: what to do when it matches (e.g. "pass dtype=torch.float32").
      rtol: how closely it must reproduce the output (looser for round-off candidates).
    """

    description: str
    fn: Callable[..., Any]
    advice: str = ""
    rtol: float = 1e-6
    applies: Callable[[np.ndarray], bool] | None = None  # a precondition on the user's output


def float32_valued(got: np.ndarray) -> bool:
    """Whether every finite entry of ``got`` is exactly a float32 number (what a computation in
    float32 gives, even when returned as float64)."""
    a = np.asarray(got, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    return bool(np.all(a.astype(np.float32).astype(np.float64) == a))


def near_reference(fn: Callable[..., Any]) -> Candidate:
    """The candidate "the reference itself, to within 2e-6 relative" (``fn``: the reference in
    the check's calling convention), tried right after float32 round-off."""
    return Candidate("the reference to within 2e-6 relative", fn, NEAR_ADVICE, 2e-6)


def same_output(a: np.ndarray, b: np.ndarray, rtol: float = 1e-6) -> bool:
    """Whether two observations agree entry by entry within ``rtol`` of the larger magnitude
    (NaN matches NaN; shapes must agree)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        return False
    finite = np.isfinite(b)
    scale = max(1.0, float(np.abs(b[finite]).max())) if finite.any() else 1.0
    return bool(np.allclose(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True))


def search_family(got: np.ndarray, expected: np.ndarray, candidates: Iterable[Candidate],
                  observe: Callable[[Callable[..., Any]], np.ndarray],
                  confirm: Callable[[Candidate], bool] | None = None) -> str:
    """The first candidate whose observation reproduces ``got`` (and differs from ``expected``),
    as a diagnosis line; ``""`` when none does. A candidate that raises does not match.

    ``confirm(candidate)``: a second test a match must pass (e.g. reproducing the function on the
    check's edge cases too), so that a small shrunk input on which two family members coincide
    (a one-token response: GMPO with a ratio-space clip *is* PPO there) does not name the wrong one."""
    for c in candidates:
        if c.applies is not None and not c.applies(got):
            continue
        try:
            out = observe(c.fn)
        except Exception:  # a candidate that cannot run on this input does not explain it
            continue
        # a tolerance candidate (rtol looser than 1e-6: float32 round-off, the reference to within
        # 2e-6) may equal the reference; the check already found the output outside its tolerance
        differs = c.rtol > 1e-6 or not same_output(out, expected, c.rtol)
        if same_output(got, out, c.rtol) and differs and (confirm is None or confirm(c)):
            line = f"Your output matches {c.description}"
            return line + (f": {c.advice}" if c.advice else "")
    return ""
