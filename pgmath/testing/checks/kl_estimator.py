"""``check_kl_estimator``: a Monte-Carlo KL estimator against the reference loop of the
``kl_k1`` / ``kl_k2`` / ``kl_k3`` specs (:mod:`pgmath.specs.kl`, the formulas of :func:`pgmath.kl_estimate`).

k1 = ℓ, k2 = ½ℓ², k3 = (ρ − 1) − log ρ with ℓ = log π − log π_ref and ρ = π_ref/π = e^{−ℓ}
(Schulman, "Approximating KL Divergence", 2020). A per-sample output is compared entry by entry
within atol + rtol·scale (scale = |ℓ|, + ℓ² for k2, + e^{−ℓ} + 1 for k3); a scalar output is
compared with the mean of the per-sample estimates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pgmath.testing.checks.core import (
    CheckOptions,
    CheckReport,
    call_user,
    diagnosis_line,
    mismatched,
    resolve_options,
    run_cases,
    spec_reference,
    target_name,
)
from pgmath.testing.conventions import output_eps, to_numpy
from pgmath.testing.diagnosis import Candidate, same_output, search_family
from pgmath.testing.edge_cases import KLCase, kl_edge_cases
from pgmath.testing.report import Mismatch, flat_table, fmt, fmt_pair, tolerance_line, which_input
from pgmath.testing.strategies import logit_batches

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields
    from pgmath.testing.mutants import Mutant

__all__ = ["REFERENCE", "check_kl_estimator"]

#: What the estimate is compared with: the reference loop of the kl_k1 / kl_k2 / kl_k3 specs.
REFERENCE = "pgmath.specs.kl.kl_estimate_reference"

FORMULAS = {"k1": "k1 = ℓ", "k2": "k2 = ½ℓ²", "k3": "k3 = (ρ − 1) − log ρ, ρ = e^{−ℓ}"}


@dataclass(frozen=True)
class _Setup:
    estimator: str
    arrays: str
    fname: str

    @property
    def label(self) -> str:
        return f"check_kl_estimator({self.estimator!r})"

    def call(self, fn: Callable[..., Any], case: KLCase) -> Any:
        lp, ref = case.log_probs, case.ref_log_probs
        if self.arrays == "numpy":
            return fn(lp.detach().cpu().numpy(), ref.detach().cpu().numpy())
        return fn(lp, ref)

    def table(self, case: KLCase, rows: list[tuple[str, np.ndarray]], marks: set[int]) -> str:
        lp, ref = (x.detach().cpu().double().numpy() for x in (case.log_probs, case.ref_log_probs))
        cols = [("log_probs", lp), ("ref_log_probs", ref), ("ℓ", lp - ref)]
        return f"The {which_input(case.label)} ({FORMULAS[self.estimator]}):\n" + flat_table(cols + rows, marks)


def _ell(case: KLCase) -> np.ndarray:
    return (case.log_probs.detach().cpu().double() - case.ref_log_probs.detach().cpu().double()).numpy()


def _scale(estimator: str, ell: np.ndarray) -> np.ndarray:
    return np.abs(ell) + (ell**2 if estimator == "k2" else 0) + (np.exp(-ell) + 1 if estimator == "k3" else 0)


def _entry_problems(s: _Setup, ell: np.ndarray, exp: np.ndarray, got: np.ndarray, bad: np.ndarray) -> list[str]:
    e, g, ll = exp.reshape(-1), got.reshape(-1), ell.reshape(-1)
    return [
        f"  i={i}: {fmt_pair(e[i], g[i])}; "
        f"ℓ = log π − log π_ref = {fmt(ll[i])}"
        + (f", ρ = e^(−ℓ) = {fmt(math.exp(-ll[i]))}" if s.estimator == "k3" else "")
        for i in np.flatnonzero(bad)[:5]
    ]


def _compare(s: _Setup, case: KLCase, got: np.ndarray, rt: float, at: float, header: Callable[[], str]):
    """``None`` when the estimate agrees, else ``(problems, table rows, marks, expected as compared)``."""
    ell = _ell(case)
    exp = spec_reference(f"kl_{s.estimator}")(case.log_probs.detach().cpu().double(),
                                               case.ref_log_probs.detach().cpu().double()).numpy()
    scale = _scale(s.estimator, ell)
    if got.shape != exp.shape and got.size == 1:
        mean, e_mean = float(got.reshape(())), float(exp.mean())
        if abs(mean - e_mean) <= at + rt * float(scale.mean()):
            return None
        return [f"  mean estimate: {fmt_pair(e_mean, mean)}"], \
            [("expected", exp)], set(), np.asarray(e_mean)
    if got.shape != exp.shape:
        raise Mismatch("wrong shape", lambda: f"{header()}\n  your estimate has shape {got.shape}; expected "
                       f"{exp.shape} (per sample) or a scalar (their mean)\n{s.table(case, [], set())}")
    bad = mismatched(got, exp, scale, rt, at).reshape(-1)
    if not bad.any():
        return None
    rows = [("expected", exp.reshape(-1)), ("got", got.reshape(-1))]
    return _entry_problems(s, ell, exp, got, bad), rows, set(np.flatnonzero(bad).tolist()), exp


def _mutant_output(s: _Setup, case: KLCase, scalar: bool) -> Callable[[Mutant], np.ndarray | None]:
    def output(m: Mutant) -> np.ndarray | None:
        out = to_numpy(m.fn(case.log_probs, case.ref_log_probs))[0]
        return np.asarray(out.mean()) if scalar and out.size > 1 else out

    return output


def _family_line(s: _Setup, fn: Callable[..., Any], case: KLCase, got: np.ndarray, exp: np.ndarray) -> str:
    """"Your output matches k3 with its two arguments swapped" (or another estimator, either order),
    confirmed on the edge cases (:mod:`pgmath.testing.diagnosis`)."""
    def member(est: str, swap: bool) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
        ref = spec_reference(f"kl_{est}")

        def f(lp: torch.Tensor, rlp: torch.Tensor) -> np.ndarray:
            a, b = (x.detach().cpu().double() for x in (lp, rlp))
            return (ref(b, a) if swap else ref(a, b)).numpy()

        return f

    # simplest first: its own estimator swapped, then the others as they are, then swapped
    order = [(s.estimator, True)] + [(e, False) for e in FORMULAS if e != s.estimator] + \
        [(e, True) for e in FORMULAS if e != s.estimator]
    cands = [Candidate(f"{e} with its two arguments swapped" if swap else f"estimator {e!r}", member(e, swap))
             for e, swap in order]

    def shaped(out: np.ndarray, like: np.ndarray) -> np.ndarray:
        return np.asarray(out.mean()) if like.size == 1 and out.size > 1 else out

    def confirm(c: Candidate) -> bool:
        for e in kl_edge_cases(case.log_probs.dtype, case.log_probs.device):
            try:
                user = to_numpy(s.call(fn, e))[0]
            except Exception:  # an edge the function refuses confirms nothing
                continue
            want = shaped(c.fn(e.log_probs, e.ref_log_probs), user)
            if user.shape != want.shape or not same_output(user, want, 1e-5):
                return False
        return True

    return search_family(got, exp, cands, lambda f: shaped(f(case.log_probs, case.ref_log_probs), got), confirm)


def _body(s: _Setup, fn: Callable[..., Any], opts: CheckOptions) -> Callable[[KLCase], None]:
    def header() -> str:
        return f"{s.label}: {s.fname} failed"

    def body(case: KLCase) -> None:
        def describe() -> str:
            return s.table(case, [], set())

        out = call_user(lambda: s.call(fn, case), header, describe)
        got, eps_out = call_user(lambda: to_numpy(out, "your estimate"), header, describe)
        rt, at = opts.tolerances(max(eps_out, output_eps(case.log_probs.dtype)), 4)
        found = _compare(s, case, got, rt, at, header)
        if found is None:
            return
        problems, rows, marks, exp = found

        def render() -> str:
            diag = _family_line(s, fn, case, got, exp)
            if not diag:  # a catalogued bug only when no member of the family reproduces the output
                diag = diagnosis_line("check_kl_estimator", got, exp, _mutant_output(s, case, got.size == 1),
                                      {"estimator": s.estimator})
            return "\n".join([f"{s.label}: {s.fname} disagrees with {REFERENCE}:", *problems,
                              s.table(case, rows, marks), *([diag] if diag else []), tolerance_line(rt, at)])

        raise Mismatch(problems[0].strip(), render)

    return body


def check_kl_estimator(fn: Callable[..., Any], estimator: str = "k3", *, options: CheckOptions | None = None,
                       **overrides: Unpack[OptionFields]) -> CheckReport:
    """Check a Monte-Carlo KL estimator against the reference loop of :func:`pgmath.kl_estimate`
    (Schulman's k1/k2/k3; ``kl_estimate_reference`` of :mod:`pgmath.specs.kl`).

    ``fn(log_probs, ref_log_probs)`` gets the log-probabilities of samples under the policy π and
    the reference π_ref and estimates KL(π ‖ π_ref): per sample (same shape as the inputs) or
    their mean (a scalar). k1 = ℓ, k2 = ½ℓ², k3 = (ρ − 1) − log ρ with ℓ = log π − log π_ref and
    ρ = π_ref/π = e^{−ℓ}. ``options`` and ``**overrides`` as :func:`~pgmath.testing.check_gae`
    (``arrays`` defaults to ``"torch"``).
    """
    if estimator not in FORMULAS:
        raise ValueError(f"estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")
    opts = resolve_options(options, overrides)
    s = _Setup(estimator, opts.arrays or "torch", target_name(fn))
    t0 = time.perf_counter()
    strat = opts.strategy if opts.strategy is not None else logit_batches(
        dtypes=(opts.dtype,), devices=(opts.device,)).map(lambda b: KLCase(b.log_probs, b.ref_log_probs))
    calls, edges = run_cases(strat, _body(s, fn, opts), kl_edge_cases(opts.dtype, opts.device), opts)
    return CheckReport(f"check_kl_estimator({estimator})", s.fname, REFERENCE, "pgmath", calls, edges,
                       time.perf_counter() - t0)
