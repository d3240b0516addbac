"""``check_gae`` and ``check_returns``: other people's recursions against pgmath's reference loops.

A drawn :class:`~pgmath.rollouts.Rollout` is handed to the function in its calling convention
(:mod:`pgmath.testing.conventions`), the answer is brought back to ``[T, *B]`` float64 and compared
entry by entry with :func:`pgmath.gae_reference` (and, for value targets, Â + V) or
:func:`pgmath.discounted_returns_reference`, each entry within atol + rtol·scale where scale
bounds the magnitudes summed into it (the same recursion run on absolute values).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pgmath.advantages import gae_reference
from pgmath.returns import discounted_returns_reference
from pgmath.rollouts import Rollout
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
from pgmath.testing.conventions import (
    GAE_CONVENTIONS,
    RETURNS_CONVENTIONS,
    AdapterResult,
    Convention,
    get_convention,
    output_eps,
)
from pgmath.testing.edge_cases import rollout_edge_cases
from pgmath.testing.report import (
    Mismatch,
    env_label,
    explain_step,
    mismatch_lines,
    rollout_description,
    tolerance_line,
)
from pgmath.testing.strategies import rollouts

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields
    from pgmath.testing.mutants import Mutant

__all__ = ["check_gae", "check_returns", "expected_rollout_output", "rollout_scale"]

_REFERENCE = {"gae": "pgmath.gae_reference", "returns": "pgmath.discounted_returns_reference"}
_CONVENTIONS = {"gae": GAE_CONVENTIONS, "returns": RETURNS_CONVENTIONS}


@dataclass(frozen=True)
class _Setup:
    """What a rollout check calls and how: the recursion, the convention, arrays, bootstrap."""

    kind: str  # "gae" or "returns"
    conv: Convention
    arrays: str
    bootstrap: bool = True

    @property
    def check(self) -> str:
        return f"check_{self.kind}"

    def call(self, fn: Callable[..., Any], case: Rollout) -> AdapterResult:
        if self.kind == "gae":
            return self.conv.call(fn, case, self.arrays)
        return self.conv.call(fn, case, self.arrays, self.bootstrap)

    def for_mutant(self, m: Mutant) -> _Setup:
        conv = _CONVENTIONS[self.kind][m.convention]
        return dataclasses.replace(self, conv=conv, arrays=conv.arrays)


@dataclass(frozen=True)
class _Diff:
    """Where the output differs: advantages (or returns) and, if returned, value targets."""

    expected: np.ndarray
    got: np.ndarray
    bad: np.ndarray
    targets: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (expected Â + V, got, bad)
    rt: float
    at: float


def expected_rollout_output(kind: str, c64: Rollout, bootstrap: bool = True) -> np.ndarray:
    """The reference on a float64 CPU rollout: GAE (``"gae"``) or discounted returns."""
    if kind == "gae":
        return gae_reference(*c64, gamma=c64.gamma, lam=c64.lam).numpy()
    nv = c64.next_values if bootstrap else None
    return discounted_returns_reference(c64.rewards, c64.terminated, c64.truncated, gamma=c64.gamma,
                                        next_values=nv).numpy()


def rollout_scale(kind: str, c64: Rollout) -> np.ndarray:
    """Σ over each entry's terms of their magnitudes (the same recursion on absolute values)."""
    g = c64.gamma
    if kind == "returns":
        return discounted_returns_reference(c64.rewards.abs(), c64.terminated, c64.truncated, gamma=g,
                                            next_values=c64.next_values.abs()).numpy()
    mag = c64.rewards.abs() + g * c64.next_values.abs() + c64.values.abs()
    z = torch.zeros_like(mag)
    return gae_reference(mag, z, z, c64.terminated, c64.truncated, gamma=g, lam=c64.lam).numpy()


def _compare(setup: _Setup, case: Rollout, res: AdapterResult, opts: CheckOptions) -> _Diff | None:
    c64 = case.to(torch.float64, "cpu")
    exp = expected_rollout_output(setup.kind, c64, setup.bootstrap)
    scale = rollout_scale(setup.kind, c64)
    rt, at = opts.tolerances(max(res.eps, output_eps(case.dtype)), case.T)
    bad = mismatched(res.advantages, exp, scale, rt, at)
    targets = None
    if setup.kind == "gae" and res.value_targets is not None:
        v = c64.values.numpy()
        vt_bad = mismatched(res.value_targets, exp + v, scale + np.abs(v), rt, at)
        targets = (exp + v, res.value_targets, vt_bad) if vt_bad.any() else None
    if not bad.any() and targets is None:
        return None
    return _Diff(exp, res.advantages, bad, targets, rt, at)


def _mutant_output(setup: _Setup, case: Rollout, value_targets: bool) -> Callable[[Mutant], np.ndarray | None]:
    def output(m: Mutant) -> np.ndarray | None:
        res = setup.for_mutant(m).call(m.fn, case)
        return res.value_targets if value_targets else res.advantages

    return output


def _render(setup: _Setup, fname: str, case: Rollout, res: AdapterResult, d: _Diff) -> str:
    what = "advantages" if setup.kind == "gae" else "returns"
    lines: list[str] = []
    envs: list[tuple[int, ...]] = []
    extra: dict[str, np.ndarray] = {}
    if d.bad.any():
        ls, envs = mismatch_lines(d.expected, d.got, d.bad, lambda t, i: explain_step(case, t, i, what=setup.kind))
        lines += [f"{setup.check}: {fname} (convention {setup.conv.name!r}) disagrees with "
                  f"{_REFERENCE[setup.kind]} on {int(d.bad.sum())} of {d.bad.size} {what} (listed in the "
                  "order the reverse recursion computes them; the first is where the error starts):", *ls]
        extra = {"expected": d.expected, "got": d.got}
    if d.targets is not None:
        exp_vt, got_vt, vt_bad = d.targets
        ls, envs2 = mismatch_lines(exp_vt, got_vt, vt_bad, None, name="value target ")
        lines += [f"{setup.check}: the value targets (second output) of {fname} disagree with the "
                  f"λ-returns Â + V on {int(vt_bad.sum())} of {vt_bad.size} entries:", *ls]
        extra.update({"expected Â+V": exp_vt, "got targets": got_vt})
        envs = envs or envs2
    marks = d.bad if d.bad.any() else d.targets[2]
    lines.append(rollout_description(case, envs, marks, extra, res.shown, setup.conv.name,
                                     returns=setup.kind == "returns"))
    on_targets = not d.bad.any()
    got, exp = (d.targets[1], d.targets[0]) if on_targets else (d.got, d.expected)
    settings = {"bootstrap": setup.bootstrap} if setup.kind == "returns" else {}
    diag = diagnosis_line(setup.check, got, exp, _mutant_output(setup, case, on_targets), settings)
    return "\n".join([*lines, *([diag] if diag else []), tolerance_line(d.rt, d.at)])


def _body(setup: _Setup, fn: Callable[..., Any], opts: CheckOptions) -> Callable[[Rollout], None]:
    fname = target_name(fn)

    def body(case: Rollout) -> None:
        if not setup.bootstrap:
            case = dataclasses.replace(case, next_values=torch.zeros_like(case.next_values))

        def header() -> str:
            return f"{setup.check}: {fname} (convention {setup.conv.name!r}) failed"

        def describe() -> str:
            return rollout_description(case, [], None, {}, {}, setup.conv.name, returns=setup.kind == "returns")

        res = call_user(lambda: setup.call(fn, case), header, describe)
        d = _compare(setup, case, res, opts)
        if d is not None:
            first = np.argwhere(d.bad if d.bad.any() else d.targets[2])[0]
            raise Mismatch(f"{setup.kind} mismatch at t={first[0]}{env_label(tuple(first[1:]))}",
                           lambda: _render(setup, fname, case, res, d))

    return body


def _check_rollouts(kind: str, fn: Callable[..., Any], convention: str, bootstrap: bool,
                    opts: CheckOptions) -> CheckReport:
    conv = get_convention(_CONVENTIONS[kind], convention, f"check_{kind}")
    setup = _Setup(kind, conv, opts.arrays or conv.arrays, bootstrap)
    t0 = time.perf_counter()
    strat = opts.strategy if opts.strategy is not None else rollouts(dtypes=(opts.dtype,), devices=(opts.device,))
    calls, edges = run_cases(strat, _body(setup, fn, opts), rollout_edge_cases(opts.dtype, opts.device), opts)
    return CheckReport(setup.check, target_name(fn), _REFERENCE[kind], conv.name, calls, edges,
                       time.perf_counter() - t0)


def check_gae(fn: Callable[..., Any], *, convention: str = "pgmath", options: CheckOptions | None = None,
              **overrides: Unpack[OptionFields]) -> CheckReport:
    """Check a GAE implementation against :func:`pgmath.gae_reference`.

    Args:
      fn: the implementation, in the calling convention ``convention`` (see
        :mod:`pgmath.testing.conventions`: ``"pgmath"``, ``"sb3"``, ``"rlax"``, ``"torchrl"``). It
        may return the advantages or a pair ``(advantages, value_targets)``; value targets are
        checked against the λ-returns Â + V.
      options: a :class:`~pgmath.testing.checks.CheckOptions` (examples, seed, dtype, device,
        rtol, atol, edge_cases, strategy — a strategy of :class:`~pgmath.rollouts.Rollout` s —
        and arrays, ``"torch"`` or ``"numpy"``, default the convention's).
      **overrides: any field of :class:`~pgmath.testing.checks.CheckOptions` as a keyword
        (``max_examples=20``), overriding ``options``.
    Returns:
      a :class:`~pgmath.testing.checks.CheckReport`.
    Raises:
      AssertionError: with the shrunken counterexample and a readable diff, on a mismatch.
    """
    return _check_rollouts("gae", fn, convention, True, resolve_options(options, overrides))


def check_returns(fn: Callable[..., Any], *, convention: str = "pgmath", bootstrap: bool = True,
                  options: CheckOptions | None = None, **overrides: Unpack[OptionFields]) -> CheckReport:
    """Check discounted reward-to-go against :func:`pgmath.discounted_returns_reference`.

    Args:
      fn: ``"pgmath"``: ``fn(rewards, terminated, truncated, *, gamma, next_values)``;
        ``"rlax"``: ``fn(r_t, discount_t, v_t)``; ``"torchrl"``: ``fn(gamma, next_state_value,
        reward, done, terminated)``.
      bootstrap: whether ``fn`` bootstraps from the next value at a truncation and at the rollout
        end (True), or returns plain reward-to-go that counts what is cut off as 0 (False; with
        the pgmath convention ``next_values`` is then not passed).
      options, **overrides: as :func:`check_gae`.
    """
    return _check_rollouts("returns", fn, convention, bootstrap, resolve_options(options, overrides))
