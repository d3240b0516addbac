"""Group advantages in both layouts, every estimator, both std floors: the part of
``check_group_advantages`` that goes beyond ``[G, K]`` grids of GRPO / RLOO with std + ε.

Layouts: ``"grid"`` — ``fn(rewards [G, K]) -> [G, K]``; ``"index"`` — ``fn(rewards [N],
index [N]) -> [N]``, the layout of verl / OpenRLHF (answers of one prompt share an index, groups
may be ragged and interleaved). Estimators, within each group g with mean μ_g and Bessel std σ_g:

    "grpo"                  (r − μ_g) / floor(σ_g, ε)          Shao et al. 2024
    "grpo-no-std"           r − μ_g                           Liu et al. 2025 (Dr. GRPO)
    "rloo"                  r − mean of the other answers     Ahmadian et al. 2024
    "reinforce++-baseline"  x = r − μ_g, then (x − mean x) / floor(std x, ε) over the batch
                                                              Hu 2025 (REINFORCE++-baseline)

``std_floor``: ``"add"`` σ + ε, ``"clamp"`` max(σ, ε), ``"inside"`` √(σ² + ε). A group of one answer
has no spread: its expected advantage is 0 for "grpo", "grpo-no-std", "rloo" (no other answers)
— a function may also refuse it, and libraries differ (verl uses μ = 0, σ = 1 there), so
generated groups have at least two answers and singletons are an edge case only when
``singletons=True``.

Checked by: ``tests/test_testing_token_checks.py``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from pgmath.testing.checks.core import CheckOptions, CheckReport, call_user, mismatched, run_cases
from pgmath.testing.checks.token_layout import STD_FLOORS
from pgmath.testing.conventions import output_eps, to_numpy
from pgmath.testing.diagnosis import Candidate, near_reference, search_family
from pgmath.testing.report import Mismatch, flat_table, fmt_pair, tolerance_line, which_input

__all__ = ["GROUP_ESTIMATORS", "IndexCase", "group_expected", "run_group_check"]

GROUP_ESTIMATORS = ("grpo", "grpo-no-std", "rloo", "reinforce++-baseline")


@dataclass(frozen=True)
class IndexCase:
    """``[N]`` rewards and their ``[N]`` int64 group index."""

    rewards: torch.Tensor
    index: torch.Tensor
    label: str = ""

    def __repr__(self) -> str:
        return f"IndexCase({self.label!r}, rewards={self.rewards.tolist()}, index={self.index.tolist()})"


def _floor(sd: float, var: float, eps: float, how: str) -> float:
    return {"add": sd + eps, "clamp": max(sd, eps), "inside": math.sqrt(var + eps)}[how]


def _stats(v: list[float], ddof: int = 1) -> tuple[float, float]:
    mu = math.fsum(v) / len(v)
    var = math.fsum((x - mu) ** 2 for x in v) / (len(v) - ddof) if len(v) > ddof else 0.0
    return mu, var


def group_expected(estimator: str, rewards: np.ndarray, index: np.ndarray, *, eps: float,
                   std_floor: str = "add", ddof: int = 1) -> np.ndarray:
    """``[N]`` advantages by a loop over the groups (Python floats, float64)."""
    r = [float(x) for x in rewards]
    out = np.zeros(len(r))
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(index.tolist()):
        groups.setdefault(int(g), []).append(i)
    for members in groups.values():
        v = [r[i] for i in members]
        mu, var = _stats(v, ddof)
        for i in members:
            if estimator == "grpo":
                out[i] = (r[i] - mu) / _floor(math.sqrt(var), var, eps, std_floor) if len(v) > 1 else 0.0
            elif estimator in ("grpo-no-std", "reinforce++-baseline"):
                out[i] = r[i] - mu
            elif estimator == "rloo":
                out[i] = r[i] - (math.fsum(v) - r[i]) / (len(v) - 1) if len(v) > 1 else 0.0
            else:
                raise ValueError(f"estimator must be one of {GROUP_ESTIMATORS}, got {estimator!r}")
    if estimator == "reinforce++-baseline":
        mu, var = _stats(out.tolist(), ddof)
        out = (out - mu) / _floor(math.sqrt(var), var, eps, std_floor)
    return out


def float32_stats_grpo(rewards: np.ndarray, index: np.ndarray, *, eps: float, std_floor: str = "add") -> np.ndarray:
    """GRPO whose group mean and (two-pass, Bessel) std are computed in float32 while the rewards
    are float64 — the float32 mean loses a near-constant group's spread."""
    r64 = np.asarray(rewards, dtype=np.float64)
    out = np.zeros(len(r64))
    for g in np.unique(index):
        sel = index == g
        x = r64[sel].astype(np.float32)
        n = np.float32(len(x))
        mu = x.sum(dtype=np.float32) / n
        var = np.square(x - mu).sum(dtype=np.float32) / max(n - np.float32(1), np.float32(1))
        sd = np.sqrt(var, dtype=np.float32)
        out[sel] = (r64[sel] - float(mu)) / _floor(float(sd), float(var), eps, std_floor) if len(x) > 1 else 0.0
    return out


def index_cases(dtype: torch.dtype, device: torch.device | str) -> st.SearchStrategy[IndexCase]:
    """Ragged groups of 2–6 answers, interleaved (binary or quarter-integer rewards)."""

    @st.composite
    def draw(d):
        sizes = d(st.lists(st.integers(2, 6), min_size=1, max_size=4))
        binary = d(st.booleans())
        el = st.sampled_from([0.0, 1.0]) if binary else st.integers(-20, 20).map(lambda i: i / 4)
        r = [d(el) for _ in range(sum(sizes))]
        idx = [g for g, n in enumerate(sizes) for _ in range(n)]
        perm = d(st.permutations(list(range(len(r)))))
        return IndexCase(torch.tensor([r[p] for p in perm], dtype=dtype, device=device),
                         torch.tensor([idx[p] for p in perm], dtype=torch.int64, device=device))

    return draw()


def index_edge_cases(dtype: torch.dtype, device: torch.device | str, singletons: bool) -> list[IndexCase]:
    t = {"dtype": dtype, "device": device}

    def mk(label, r, i):
        return IndexCase(torch.tensor(r, **t), torch.tensor(i, dtype=torch.int64, device=device), label)

    out = [
        mk("a constant group beside a varied one, interleaved", [1.0, 0.0, 1.0, 1.0, 1.0, 0.5], [0, 1, 0, 1, 0, 1]),
        mk("constant groups only (zero spread everywhere)", [0.0, 0.0, 2.0, 2.0, 2.0], [0, 0, 1, 1, 1]),
        mk("a near-constant group (spread 1e-7) and ragged sizes", [1.0, 1.0 + 1e-7, 0.0, 1.0, 0.0, 1.0, 1.0],
           [0, 0, 1, 1, 1, 1, 1]),
        mk("group ids that are not 0..G−1", [3.0, -1.0, 2.0, 0.5], [17, 4, 17, 4]),
    ]
    if singletons:
        out.append(mk("a group of one answer", [1.0, 0.0, 1.0], [0, 1, 1]))
    return out


def run_group_check(fn: Callable[..., Any], *, estimator: str, eps: float, std_floor: str, layout: str,
                    opts: CheckOptions, fname: str, singletons: bool = False) -> CheckReport:
    """The check for the settings the grid path of ``check_group_advantages`` does not cover
    (and for ``layout="index"``)."""
    if estimator not in GROUP_ESTIMATORS:
        raise ValueError(f"estimator must be one of {GROUP_ESTIMATORS}, got {estimator!r}")
    if std_floor not in STD_FLOORS:
        raise ValueError(f"std_floor must be one of {STD_FLOORS}, got {std_floor!r}")
    label = f"check_group_advantages({estimator!r}, eps={eps}, std_floor={std_floor!r}, layout={layout!r})"

    def call(case: IndexCase) -> Any:
        if layout == "index":
            return fn(case.rewards, case.index)
        G = int(case.index.max()) + 1
        return fn(case.rewards.reshape(G, -1))

    def describe(case: IndexCase, rows=(), marks=frozenset()) -> str:
        cols = [("rewards", case.rewards.detach().cpu().double().numpy()), ("index", case.index.cpu().numpy()), *rows]
        return f"The {which_input(case.label)}, {case.rewards.dtype}:\n" + flat_table(cols, set(marks))

    def body(case: IndexCase) -> None:
        out = call_user(lambda: call(case), lambda: f"{label}: {fname} failed", lambda: describe(case))
        got, eps_out = call_user(lambda: to_numpy(out, "your advantages"), lambda: f"{label}: {fname} failed",
                                 lambda: describe(case))
        got = got.reshape(-1)
        r = case.rewards.detach().cpu().double().numpy()
        idx = case.index.cpu().numpy()
        exp = group_expected(estimator, r, idx, eps=eps, std_floor=std_floor)
        if got.shape != exp.shape:
            raise Mismatch("wrong shape", lambda: f"{label}: {fname} failed\n  your advantages have {got.size} "
                           f"entries; expected {exp.size}\n{describe(case)}")
        rt, at = opts.tolerances(max(eps_out, output_eps(case.rewards.dtype)), 8)
        spread = float(np.abs(r - r.mean()).max(initial=0.0)) + float(np.abs(r).max(initial=0.0))
        scale = np.abs(exp) * (1 + spread) + spread / max(eps, 1e-300) * (eps if eps > 0 else 1.0)
        bad = mismatched(got, exp, scale, rt, at)
        if not bad.any():
            return

        def render() -> str:
            def ref(**kw: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
                full = {"estimator": estimator, "eps": eps, "std_floor": std_floor, **kw}
                est = full.pop("estimator")
                return lambda rr, ii: group_expected(est, rr, ii, **full)

            cands = [near_reference(ref())]
            cands += [Candidate(f"estimator={e!r}", ref(estimator=e)) for e in GROUP_ESTIMATORS if e != estimator]
            cands += [Candidate(f"std_floor={f!r}", ref(std_floor=f)) for f in STD_FLOORS if f != std_floor]
            cands += [Candidate(f"eps={e}", ref(eps=e)) for e in (0.0, 1e-8, 1e-6, 1e-4) if e != eps]
            cands += [Candidate("the population standard deviation (ddof=0)", ref(ddof=0))]
            if estimator == "grpo":
                cands.append(Candidate("the group statistics (mean, std) computed in float32 while the rewards are "
                                       "float64", functools.partial(float32_stats_grpo, eps=eps, std_floor=std_floor),
                                       rtol=1e-5))

            def confirm(c: Candidate) -> bool:  # the candidate also reproduces fn on the edge cases
                for e in edges:
                    try:
                        user = to_numpy(call(e))[0].reshape(-1)
                    except Exception:  # an input the function refuses confirms nothing
                        continue
                    want = c.fn(e.rewards.detach().cpu().double().numpy(), e.index.cpu().numpy())
                    if not np.allclose(user, want, rtol=1e-5, atol=1e-6):
                        return False
                return True

            diag = search_family(got, exp, cands, lambda f: f(r, idx), confirm)
            lines = [f"{label}: {fname} disagrees with the reference loop on {int(bad.sum())} of {bad.size} answers:"]
            for i in np.flatnonzero(bad)[:6]:
                lines.append(f"  answer {i} (group {idx[i]}): {fmt_pair(exp[i], got[i])}")
            return "\n".join([*lines, describe(case, [("expected", exp), ("got", got)], np.flatnonzero(bad).tolist()),
                              *([diag] if diag else []), tolerance_line(rt, at)])

        raise Mismatch(f"group advantage mismatch at answer {int(np.flatnonzero(bad)[0])}", render)

    t0 = time.perf_counter()
    if layout == "grid":  # equal group sizes, rows in order
        strat = st.tuples(st.integers(1, 4), st.integers(2, 6)).flatmap(lambda gk: st.lists(
            st.integers(-20, 20).map(lambda i: i / 4), min_size=gk[0] * gk[1], max_size=gk[0] * gk[1]).map(
            lambda v, gk=gk: IndexCase(torch.tensor(v, dtype=opts.dtype, device=opts.device),
                                       torch.arange(gk[0], device=opts.device).repeat_interleave(gk[1]))))
        edges = [IndexCase(torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=opts.dtype), torch.tensor([0, 0, 1, 1]),
                           "a constant group beside a varied one")]
    else:
        strat = index_cases(opts.dtype, opts.device)
        edges = index_edge_cases(opts.dtype, opts.device, singletons)
    calls, labels = run_cases(opts.strategy if opts.strategy is not None else strat, body, edges, opts)
    return CheckReport(label, fname, "pgmath.testing.checks.group_index.group_expected", "pgmath", calls, labels,
                       time.perf_counter() - t0)
