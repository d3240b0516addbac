"""``check_group_advantages``: GRPO / RLOO group-relative advantages against :mod:`pgmath.llm`.

``"grpo"``: Âᵢ = (rᵢ − mean) / (std + ε) within each group of K answers to one prompt (unbiased
std; ``normalize_std=False``: rᵢ − mean); ``"rloo"``: Âᵢ = rᵢ − mean of the other K − 1.
Sources: Shao et al. (2024), DeepSeekMath, §4.1 (GRPO); Ahmadian et al. (2024), "Back to Basics"
(RLOO). Each entry is compared within atol + rtol·scale, scale = |Â| + (|r − mean| + |r|)/(std + ε).
"""

from __future__ import annotations

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
    target_name,
)
from pgmath.testing.conventions import output_eps, to_numpy
from pgmath.testing.edge_cases import GroupCase, group_edge_cases
from pgmath.testing.report import (
    Mismatch,
    fmt,
    fmt_pair,
    rollout_table,
    tolerance_line,
    which_input,
)
from pgmath.testing.strategies import reward_groups

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields
    from pgmath.testing.mutants import Mutant

__all__ = ["check_group_advantages", "group_reference"]


def group_reference(kind: str, normalize_std: bool, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pgmath.llm reference loop for ``kind`` ("grpo" or "rloo") as ``rewards [G, K] -> [G, K]``
    (the loops the group_advantages, group_advantages_mean and rloo_advantages specs wrap)."""
    from pgmath import llm

    if kind == "grpo":
        return lambda r: llm.group_advantages_reference(r, normalize_std=normalize_std, eps=eps)
    if kind == "rloo":
        return llm.rloo_advantages_reference
    raise ValueError(f"estimator must be 'grpo' or 'rloo', got {kind!r}")


@dataclass(frozen=True)
class _Setup:
    estimator: str
    normalize_std: bool
    eps: float
    arrays: str
    fname: str

    @property
    def label(self) -> str:
        plain = not self.normalize_std and self.estimator == "grpo"
        return f"check_group_advantages({self.estimator!r}{', normalize_std=False' if plain else ''})"

    @property
    def settings(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "normalize_std": self.normalize_std, "eps": self.eps}

    def scale(self, r64: np.ndarray, exp: np.ndarray) -> np.ndarray:
        centred = np.abs(r64 - r64.mean(1, keepdims=True))
        std = r64.std(1, ddof=1, keepdims=True)
        divide = self.normalize_std and self.estimator == "grpo"
        denom = std + self.eps if divide else np.ones_like(std)
        # a constant group with eps = 0: std + eps = 0, and every advantage is 0 (centred = 0);
        # dividing would give 0/0 = NaN and reject every answer (a harness bug, now tested)
        denom = np.where(denom > 0, denom, 1.0)
        return np.abs(exp) + (centred + np.abs(r64)) / denom


def _describe(case: GroupCase, extra: dict[str, np.ndarray] | None = None, bad: np.ndarray | None = None) -> str:
    """The groups as tables (only the differing ones when there are more than two)."""
    r = case.rewards
    r64 = r.detach().cpu().double().numpy()
    out = [f"The {which_input(case.label)}: {r.shape[0]} group(s) of {r.shape[1]} answers, {r.dtype}"]
    for g in range(r.shape[0]):
        if bad is not None and not bad[g].any() and r.shape[0] > 2:
            continue
        rows = [("rewards", r64[g])] + [(k, v[g]) for k, v in (extra or {}).items()]
        marks = set(np.flatnonzero(bad[g]).tolist()) if bad is not None else set()
        out += [f"  group {g}:", rollout_table(rows, r.shape[1], marks, axis="k")]
    return "\n".join(out)


def _entry_lines(r64: np.ndarray, exp: np.ndarray, got: np.ndarray, bad: np.ndarray) -> list[str]:
    lines = []
    for g, k in np.argwhere(bad)[:6]:
        std_g = float(r64[g].std(ddof=1))
        lines.append(
            f"  group {g}, answer {k}: {fmt_pair(exp[g, k], got[g, k])}; the group's "
            f"mean is {fmt(r64[g].mean())} and its standard deviation {fmt(std_g)}"
            + (" (a constant group: every advantage is 0)" if std_g == 0 else ""))
    return lines


def _mutant_output(case: GroupCase) -> Callable[[Mutant], np.ndarray | None]:
    def output(m: Mutant) -> np.ndarray | None:
        return to_numpy(m.fn(case.rewards))[0]

    return output


def _body(s: _Setup, fn: Callable[..., Any], opts: CheckOptions) -> Callable[[GroupCase], None]:
    reference = group_reference(s.estimator, s.normalize_std, s.eps)

    def header() -> str:
        return f"{s.label}: {s.fname} failed"

    def body(case: GroupCase) -> None:
        r = case.rewards
        r64 = r.detach().cpu().double()
        arg = r if s.arrays == "torch" else r.detach().cpu().numpy()
        out = call_user(lambda: fn(arg), header, lambda: _describe(case))
        got, eps_out = call_user(lambda: to_numpy(out, "your advantages"), header, lambda: _describe(case))
        if got.shape != tuple(r.shape):
            raise Mismatch("wrong shape", lambda: f"{header()}\n  your advantages have shape {got.shape}; "
                           f"expected {tuple(r.shape)}\n{_describe(case)}")
        exp = reference(r64).numpy()
        rt, at = opts.tolerances(max(eps_out, output_eps(r.dtype)), 8)
        bad = mismatched(got, exp, s.scale(r64.numpy(), exp), rt, at)
        if not bad.any():
            return

        def render() -> str:
            diag = diagnosis_line("check_group_advantages", got, exp, _mutant_output(case), s.settings)
            return "\n".join([
                f"{s.label}: {s.fname} disagrees with the pgmath.llm reference on {int(bad.sum())} of {bad.size} entries:",
                *_entry_lines(r64.numpy(), exp, got, bad), _describe(case, {"expected": exp, "got": got}, bad),
                *([diag] if diag else []), tolerance_line(rt, at)])

        g0, k0 = np.argwhere(bad)[0]
        raise Mismatch(f"group advantage mismatch at group {g0}, answer {k0}", render)

    return body


def check_group_advantages(
    fn: Callable[..., Any],
    *,
    estimator: str = "grpo",
    normalize_std: bool = True,
    eps: float = 1e-6,
    std_floor: str = "add",
    layout: str = "grid",
    options: CheckOptions | None = None,
    **overrides: Unpack[OptionFields],
) -> CheckReport:
    """Check group-relative advantages ``fn(rewards [G, K]) -> [G, K]`` against :mod:`pgmath.llm`.

    ``estimator="grpo"``: :func:`pgmath.llm.group_advantages` (rᵢ − mean)/(std + eps) within each
    group of K answers to one prompt (``normalize_std=False``: rᵢ − mean). ``"rloo"``:
    :func:`pgmath.llm.rloo_advantages` (rᵢ minus the mean of the other K − 1). Constant groups
    (std = 0) are among the edge cases: their advantages must be 0, not NaN. ``options`` and
    ``**overrides`` as :func:`~pgmath.testing.check_gae` (``arrays`` defaults to ``"torch"``).

    Also ``estimator="grpo-no-std"`` and ``"reinforce++-baseline"``; ``std_floor`` ``"add"``
    (σ + ε), ``"clamp"`` (max(σ, ε)) or ``"inside"`` (√(σ² + ε)); ``layout="index"``:
    ``fn(rewards [N], index [N]) -> [N]`` with ragged, interleaved groups
    (:mod:`pgmath.testing.checks.group_index`).
    """
    if layout not in ("grid", "index"):
        raise ValueError(f"layout must be 'grid' or 'index', got {layout!r}")
    if layout == "index" or std_floor != "add" or estimator not in ("grpo", "rloo"):
        # ragged groups given by an index, the other estimators and std floors (group_index.py)
        from pgmath.testing.checks.group_index import run_group_check

        est = "grpo-no-std" if estimator == "grpo" and not normalize_std else estimator
        return run_group_check(fn, estimator=est, eps=eps, std_floor=std_floor, layout=layout,
                               opts=resolve_options(options, overrides), fname=target_name(fn))
    group_reference(estimator, normalize_std, eps)  # a ValueError for an unknown estimator
    opts = resolve_options(options, overrides)
    s = _Setup(estimator, normalize_std, eps, opts.arrays or "torch", target_name(fn))
    t0 = time.perf_counter()
    strat = opts.strategy if opts.strategy is not None else reward_groups(
        dtypes=(opts.dtype,), devices=(opts.device,)).map(GroupCase)
    calls, edges = run_cases(strat, _body(s, fn, opts), group_edge_cases(opts.dtype, opts.device), opts)
    ref = f"pgmath.llm.{'group' if estimator == 'grpo' else 'rloo'}_advantages_reference"
    return CheckReport(s.label, s.fname, ref, "pgmath", calls, edges, time.perf_counter() - t0)
