"""Check anyone's GAE, returns, PPO loss, KL estimator or group advantages against pgmath's.

Three lines::

    from pgmath.testing import check_gae
    from mytrainer.buffers import compute_gae
    check_gae(compute_gae, convention="sb3")

Each check runs a property-based comparison (Hypothesis, a bounded number of examples,
derandomized so a CI run is reproducible) against pgmath's reference implementation, then the
hand-made edge cases of :mod:`pgmath.testing.edge_cases`. On the first disagreement it raises an
``AssertionError`` whose message carries the *shrunken* counterexample: the differing entries
(``t=3, env=1: expected …, got …; the episode was truncated at t=2, so the bootstrap uses
next_values[2] …``), the input as a table per environment (also as your convention saw it), and
the known bug from :mod:`pgmath.testing.mutants` whose output it reproduces, if any. On success
it returns a :class:`CheckReport`.

References: :func:`pgmath.gae_reference`, :func:`pgmath.discounted_returns_reference`,
:func:`pgmath.ppo_clip_loss`, :func:`pgmath.kl_estimate`, :func:`pgmath.llm.group_advantages` /
:func:`pgmath.llm.rloo_advantages`.

Tolerance: an entry passes when |got − expected| ≤ atol + rtol · scale, where scale bounds the
magnitude of the terms that make up the entry (e.g. Σ (γλ)ˡ (|rₜ₊ₗ| + γ|V(sₜ₊ₗ₊₁)| + |V(sₜ₊ₗ)|)
for GAE) and rtol defaults to a small multiple of the machine epsilon of the *coarser* of the
input dtype and your output's dtype (so a float32 implementation is judged in float32).

Checked by: ``tests/test_testing_checks.py`` (the references pass; every mutant of
:mod:`pgmath.testing.mutants` is rejected; messages name the step, environment and episode end),
``tests/test_testing_sb3.py`` (Stable-Baselines3's ``RolloutBuffer``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky

from pgmath.advantages import gae_reference
from pgmath.kl import kl_estimate
from pgmath.losses import ppo_clip_loss
from pgmath.returns import discounted_returns_reference
from pgmath.testing._report import (
    Mismatch,
    case_rows,
    env_label,
    explain_step,
    fmt,
    mismatch_lines,
    rollout_table,
    tolerance_line,
)
from pgmath.testing.conventions import (
    GAE_CONVENTIONS,
    RETURNS_CONVENTIONS,
    AdapterResult,
    ConventionError,
    get_convention,
    output_eps,
    to_numpy,
)
from pgmath.testing.edge_cases import (
    GroupCase,
    KLCase,
    PPOCase,
    group_edge_cases,
    kl_edge_cases,
    ppo_all_masked,
    ppo_edge_cases,
    rollout_edge_cases,
)
from pgmath.testing.strategies import RolloutCase, logit_batches, reward_groups, rollouts

__all__ = [
    "DEFAULT_MAX_EXAMPLES",
    "CheckReport",
    "check_gae",
    "check_group_advantages",
    "check_kl_estimator",
    "check_ppo_loss",
    "check_returns",
]

#: Property-based examples per check unless ``max_examples=`` says otherwise.
DEFAULT_MAX_EXAMPLES = 100

_SUPPRESS = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]


@dataclass(frozen=True)
class CheckReport:
    """What a passing check ran."""

    check: str
    target: str
    reference: str
    convention: str
    examples: int  # function calls made by the property-based search
    edge_cases: tuple[str, ...]
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.check}: {self.target} agrees with {self.reference} (convention {self.convention!r}) "
            f"on {self.examples} generated examples and {len(self.edge_cases)} edge cases "
            f"in {self.seconds:.2f} s"
        )


def _name(fn: Callable[..., Any]) -> str:
    mod = getattr(fn, "__module__", None)
    qn = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if qn is None:
        return repr(fn)
    return f"{mod}.{qn}" if mod else qn


def _check_arrays(arrays: str) -> None:
    if arrays not in ("torch", "numpy"):
        raise ValueError(f"arrays must be 'torch' or 'numpy', got {arrays!r}")


def _which(label: str) -> str:
    return f"edge case {label!r}" if label else "counterexample (shrunk by Hypothesis)"


def _run_property(strategy, body: Callable[[Any], None], *, max_examples: int, seed: int | None) -> int:
    """Run ``body`` on up to ``max_examples`` draws; shrink and re-raise the first failure."""
    if max_examples <= 0:
        return 0
    calls = 0

    def prop(case):
        nonlocal calls
        calls += 1
        body(case)

    test = given(strategy)(prop)
    test = settings(
        max_examples=max_examples,
        derandomize=seed is None,
        database=None,
        deadline=None,
        suppress_health_check=_SUPPRESS,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
    )(test)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    try:
        test()
    except Flaky as exc:
        raise AssertionError(
            "your function gave different results for the same input (it is not deterministic), "
            f"so no counterexample could be confirmed: {exc}"
        ) from exc
    return calls


def _finish(run: Callable[[], None]) -> None:
    """Turn a :class:`Mismatch` into the final ``AssertionError`` with the full message."""
    try:
        run()
    except Mismatch as m:
        cause = m.__cause__ if m.__cause__ is not None else None
        raise AssertionError(m.render()) from cause


def _call(thunk: Callable[[], Any], header: Callable[[], str], describe: Callable[[], str]):
    """Call the user's function; its exceptions become a :class:`Mismatch` with the input."""
    try:
        return thunk()
    except Mismatch:
        raise
    except ConventionError as exc:
        text = str(exc)
        raise Mismatch(text, lambda: f"{header()}\n  {text}\n{describe()}") from None
    except Exception as exc:  # anything the user's code raises is reported with the input
        msg = f"{type(exc).__name__}: {exc}"

        def render() -> str:
            return f"{header()}\n  your function raised {msg}\n{describe()}"

        raise Mismatch(msg, render) from exc


def _tolerances(rtol: float | None, atol: float | None, eps: float, n_terms: int) -> tuple[float, float]:
    rt = rtol if rtol is not None else 8.0 * (n_terms + 2) * eps
    at = atol if atol is not None else 10.0 * eps
    return rt, at


def _bad(got: np.ndarray, expected: np.ndarray, scale: np.ndarray, rt: float, at: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ~(np.abs(got - expected) <= at + rt * scale)


def _diagnosis(kind: str, case: Any, got: np.ndarray, expected: np.ndarray, extra: Any = None) -> str:
    from pgmath.testing.mutants import diagnose

    names = diagnose(kind, case, got, expected, extra)
    if not names:
        return ""
    return "Your output reproduces the known bug(s) of pgmath.testing.mutants: " + "; ".join(names)


def _edge_and_property(
    strategy, body: Callable[[Any], None], edges: list[Any], *, max_examples: int, seed: int | None,
    edge_cases: bool,
) -> tuple[int, tuple[str, ...]]:
    def run() -> None:
        nonlocal calls
        calls = _run_property(strategy, body, max_examples=max_examples, seed=seed)
        if edge_cases:
            for c in edges:
                body(c)

    calls = 0
    _finish(run)
    return calls, tuple(c.label for c in edges) if edge_cases else ()


# --------------------------------------------------------------------------------------------
# GAE and returns


def _describe_rollout(
    case: RolloutCase, envs: list[tuple[int, ...]], bad: np.ndarray | None, extra_rows: dict[str, np.ndarray],
    res: AdapterResult | None, convention: str, *, returns: bool = False,
) -> str:
    B = case.batch_shape
    which = _which(case.label)
    out = [
        f"The {which}: T={case.T}, batch shape {B}, {case.dtype}, gamma={fmt(case.gamma)}"
        + ("" if returns else f", lam={fmt(case.lam)}")
    ]
    shown = res.shown if res is not None else {}
    for i in (envs or [next(iter(np.ndindex(B)))])[:2]:
        out.append(f"  environment {i[0] if len(i) == 1 else i}:" if i else "  the rollout:")
        rows = case_rows(case, i, returns=returns)
        scalars = []
        for k, v in shown.items():
            if v.shape == B:
                scalars.append(f"{k} = {fmt(v[i]) if v.dtype != bool else bool(v[i])}")
            else:
                rows.append((f"[{convention}] {k}", v[(slice(None), *i)]))
        rows += [(k, v[(slice(None), *i)]) for k, v in extra_rows.items()]
        marks = set(np.flatnonzero(bad[(slice(None), *i)])) if bad is not None else set()
        out.append(rollout_table(rows, case.T, marks))
        if scalars:
            out.append(f"    [{convention}] " + ", ".join(scalars))
    return "\n".join(out)


def _gae_scale(c64: RolloutCase, *, returns: bool = False) -> np.ndarray:
    """Σ over the entry's terms of their magnitudes (the same recursion on absolute values)."""
    g = c64.gamma
    if returns:
        mag = c64.rewards.abs()
        return discounted_returns_reference(
            mag, c64.terminated, c64.truncated, gamma=g, next_values=c64.next_values.abs()
        ).numpy()
    mag = c64.rewards.abs() + g * c64.next_values.abs() + c64.values.abs()
    z = torch.zeros_like(mag)
    return gae_reference(mag, z, z, c64.terminated, c64.truncated, gamma=g, lam=c64.lam).numpy()


def _rollout_body(
    fn, kind: str, conv, arrays: str, rtol, atol, *, bootstrap: bool = True,
) -> Callable[[RolloutCase], None]:
    is_gae = kind == "gae"
    ref_name = "pgmath.gae_reference" if is_gae else "pgmath.discounted_returns_reference"
    fname = _name(fn)

    def body(case: RolloutCase) -> None:
        if not bootstrap:
            case = RolloutCase(
                case.rewards, case.values, torch.zeros_like(case.next_values), case.terminated,
                case.truncated, case.last_values, case.first_episode_start, case.gamma, case.lam,
                case.label,
            )

        def header() -> str:
            return f"check_{kind}: {fname} (convention {conv.name!r}) failed"

        def describe() -> str:
            return _describe_rollout(case, [], None, {}, None, conv.name, returns=not is_gae)

        if is_gae:
            res = _call(lambda: conv.call(fn, case, arrays), header, describe)
        else:
            res = _call(lambda: conv.call(fn, case, arrays, bootstrap), header, describe)
        c64 = case.to(torch.float64, "cpu")
        if is_gae:
            exp = gae_reference(
                c64.rewards, c64.values, c64.next_values, c64.terminated, c64.truncated,
                gamma=c64.gamma, lam=c64.lam,
            ).numpy()
        else:
            exp = discounted_returns_reference(
                c64.rewards, c64.terminated, c64.truncated, gamma=c64.gamma,
                next_values=c64.next_values if bootstrap else None,
            ).numpy()
        scale = _gae_scale(c64, returns=not is_gae)
        eps = max(res.eps, output_eps(case.dtype))
        rt, at = _tolerances(rtol, atol, eps, case.T)
        got = res.advantages
        bad = _bad(got, exp, scale, rt, at)
        vt_bad = None
        if is_gae and res.value_targets is not None:
            exp_vt = exp + c64.values.numpy()
            vt_bad = _bad(res.value_targets, exp_vt, scale + np.abs(c64.values.numpy()), rt, at)
            if not vt_bad.any():
                vt_bad = None
        if not bad.any() and vt_bad is None:
            return

        def render() -> str:
            what = "advantages" if is_gae else "returns"

            def why(t, i):
                return explain_step(case, t, i, what=kind)

            lines, envs = [], []
            extra: dict[str, np.ndarray] = {}
            if bad.any():
                ls, envs = mismatch_lines(exp, got, bad, why)
                lines += [
                    f"check_{kind}: {fname} (convention {conv.name!r}) disagrees with {ref_name} "
                    f"on {int(bad.sum())} of {bad.size} {what} (listed in the order the reverse "
                    "recursion computes them; the first is where the error starts):",
                    *ls,
                ]
                extra = {"expected": exp, "got": got}
            if vt_bad is not None:
                ls, envs2 = mismatch_lines(exp_vt, res.value_targets, vt_bad, None, name="value target ")
                lines += [
                    f"check_{kind}: the value targets (second output) of {fname} disagree with the "
                    f"λ-returns Â + V on {int(vt_bad.sum())} of {vt_bad.size} entries:",
                    *ls,
                ]
                extra.update({"expected Â+V": exp_vt, "got targets": res.value_targets})
                envs = envs or envs2
            lines.append(_describe_rollout(case, envs, bad if bad.any() else vt_bad, extra, res, conv.name,
                                           returns=not is_gae))
            if bad.any():
                diag = _diagnosis(kind, case, got, exp)
            else:
                diag = _diagnosis(kind, case, res.value_targets, exp_vt, "value_targets")
            if diag:
                lines.append(diag)
            lines.append(tolerance_line(rt, at))
            return "\n".join(lines)

        first = np.argwhere(bad if bad.any() else vt_bad)[0]
        raise Mismatch(f"{kind} mismatch at t={first[0]}{env_label(tuple(first[1:]))}", render)

    return body


def check_gae(
    fn: Callable[..., Any],
    *,
    convention: str = "pgmath",
    arrays: str | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    edge_cases: bool = True,
    strategy: Any = None,
) -> CheckReport:
    """Check a GAE implementation against :func:`pgmath.gae_reference`.

    Args:
      fn: the implementation, in the calling convention ``convention`` (see
        :mod:`pgmath.testing.conventions`: ``"pgmath"``, ``"sb3"``, ``"rlax"``, ``"torchrl"``). It
        may return the advantages or a pair ``(advantages, value_targets)``; value targets are
        checked against the λ-returns Â + V.
      arrays: ``"torch"`` or ``"numpy"``: what ``fn`` receives (default: the convention's).
      max_examples: property-based examples (0 runs only the edge cases).
      seed: Hypothesis seed; None (default) derandomizes, so every run draws the same examples.
      dtype, device: of the generated rollouts (the reference always runs in float64 on CPU).
      rtol, atol: override the tolerance (see the module docstring).
      edge_cases: also run :func:`pgmath.testing.edge_cases.rollout_edge_cases`.
      strategy: a Hypothesis strategy of :class:`RolloutCase` to use instead of
        ``rollouts(dtypes=(dtype,), devices=(device,))``.
    Returns:
      a :class:`CheckReport`.
    Raises:
      AssertionError: with the shrunken counterexample and a readable diff, on a mismatch.
    """
    return _check_rollouts("gae", fn, GAE_CONVENTIONS, convention, arrays, max_examples, seed,
                           dtype, device, rtol, atol, edge_cases, strategy, True)


def check_returns(
    fn: Callable[..., Any],
    *,
    convention: str = "pgmath",
    bootstrap: bool = True,
    arrays: str | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    edge_cases: bool = True,
    strategy: Any = None,
) -> CheckReport:
    """Check discounted reward-to-go against :func:`pgmath.discounted_returns_reference`.

    Args:
      fn: ``"pgmath"``: ``fn(rewards, terminated, truncated, *, gamma, next_values)``;
        ``"rlax"``: ``fn(r_t, discount_t, v_t)``; ``"torchrl"``: ``fn(gamma, next_state_value,
        reward, done, terminated)``.
      bootstrap: whether ``fn`` bootstraps from the next value at a truncation and at the rollout
        end (True), or returns plain reward-to-go that counts what is cut off as 0 (False; with
        the pgmath convention ``next_values`` is then not passed).
      Other arguments as :func:`check_gae`.
    """
    return _check_rollouts("returns", fn, RETURNS_CONVENTIONS, convention, arrays, max_examples,
                           seed, dtype, device, rtol, atol, edge_cases, strategy, bootstrap)


def _check_rollouts(kind, fn, table, convention, arrays, max_examples, seed, dtype, device, rtol,
                    atol, edge_cases, strategy, bootstrap) -> CheckReport:
    conv = get_convention(table, convention, f"check_{kind}")
    arrays = arrays or conv.arrays
    _check_arrays(arrays)
    t0 = time.perf_counter()
    body = _rollout_body(fn, kind, conv, arrays, rtol, atol, bootstrap=bootstrap)
    strat = strategy if strategy is not None else rollouts(dtypes=(dtype,), devices=(device,))
    calls, edges = _edge_and_property(
        strat, body, rollout_edge_cases(dtype, device), max_examples=max_examples, seed=seed,
        edge_cases=edge_cases,
    )
    ref = "pgmath.gae_reference" if kind == "gae" else "pgmath.discounted_returns_reference"
    return CheckReport(f"check_{kind}", _name(fn), ref, conv.name, calls, edges, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# PPO clipped loss


def _grad_or_zeros(g: torch.Tensor | None, like: torch.Tensor) -> np.ndarray:
    return (torch.zeros_like(like) if g is None else g).detach().cpu().double().numpy()


def _flat_table(cols: list[tuple[str, np.ndarray]], marks: set[int], axis: str = "i") -> str:
    n = int(np.asarray(cols[0][1]).size)
    table = rollout_table([(k, np.asarray(v).reshape(-1)) for k, v in cols], n, marks)
    return table.replace("    t ", f"    {axis} ", 1)


def check_ppo_loss(
    fn: Callable[..., Any],
    *,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    convention: str = "pgmath",
    masked: bool = True,
    gradients: bool = True,
    arrays: str | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    edge_cases: bool = True,
    strategy: Any = None,
) -> CheckReport:
    """Check a PPO clipped surrogate loss (its value and gradients) against :func:`pgmath.ppo_clip_loss`.

    Conventions:
      ``"pgmath"``: ``fn(log_probs, old_log_probs, advantages, *, clip_eps[, clip_eps_high]
      [, dual_clip][, mask])`` returning the scalar loss to minimise, or ``(loss, info)``; the
      optional keywords are passed only when set (``mask`` only with ``masked=True``).
      ``"rlax"``: ``fn(prob_ratios_t, adv_t, epsilon)`` (rlax's ``clipped_surrogate_pg_loss``),
      symmetric clip, no mask; the check computes the ratio.

    With ``gradients=True`` (torch only) ``old_log_probs`` and ``advantages`` are passed as tensors
    that *require grad*: the loss must treat them as constants, so its gradient with respect to
    them must be 0, and its gradient with respect to ``log_probs`` must match the reference's
    (0 where the clip binds). With ``masked=True`` an all-masked batch must raise or give a finite
    loss (not NaN). Other arguments as :func:`check_gae`.
    """
    if convention not in ("pgmath", "rlax"):
        raise ValueError(f"convention must be 'pgmath' or 'rlax' for check_ppo_loss, got {convention!r}")
    if convention == "rlax" and (clip_eps_high is not None or dual_clip is not None):
        raise ValueError("the rlax convention has a symmetric clip: clip_eps_high and dual_clip must be None")
    masked = masked and convention == "pgmath"
    arrays = arrays or "torch"
    _check_arrays(arrays)
    gradients = gradients and arrays == "torch"
    eps_hi = clip_eps if clip_eps_high is None else clip_eps_high
    fname = _name(fn)
    t0 = time.perf_counter()
    ref_kw: dict[str, Any] = {"clip_eps": clip_eps, "clip_eps_high": clip_eps_high, "dual_clip": dual_clip}
    user_kw: dict[str, Any] = {"clip_eps": clip_eps}
    if clip_eps_high is not None:
        user_kw["clip_eps_high"] = clip_eps_high
    if dual_clip is not None:
        user_kw["dual_clip"] = dual_clip

    def invoke(case: PPOCase):
        lp = case.log_probs.detach().clone().requires_grad_(gradients)
        old = case.old_log_probs.detach().clone().requires_grad_(gradients)
        adv = case.advantages.detach().clone().requires_grad_(gradients)
        if convention == "pgmath":
            kw = dict(user_kw)
            if masked:
                kw["mask"] = case.mask if arrays == "torch" else case.mask.cpu().numpy()
            if arrays == "torch":
                out = fn(lp, old, adv, **kw)
            else:
                out = fn(*(x.detach().cpu().numpy() for x in (lp, old, adv)), **kw)
        else:
            ratio = torch.exp(lp - old.detach())
            if arrays == "torch":
                out = fn(ratio, adv, clip_eps)
            else:
                out = fn(ratio.detach().cpu().numpy(), adv.detach().cpu().numpy(), clip_eps)
        loss = out[0] if isinstance(out, (tuple, list)) else out
        return loss, (lp, old, adv)

    def reference(case: PPOCase):
        lp = case.log_probs.detach().cpu().double().requires_grad_()
        m = case.mask.cpu() if masked else None
        loss, _ = ppo_clip_loss(lp, case.old_log_probs.detach().cpu().double(),
                                case.advantages.detach().cpu().double(), mask=m, **ref_kw)
        (g,) = torch.autograd.grad(loss, lp)
        return float(loss.detach()), g.numpy()

    def table(case: PPOCase, rows: list[tuple[str, np.ndarray]], marks: set[int]) -> str:
        lp = case.log_probs.detach().cpu().double().numpy()
        old = case.old_log_probs.detach().cpu().double().numpy()
        cols = [
            ("log_probs", lp), ("old_log_probs", old), ("ratio", np.exp(lp - old)),
            ("advantages", case.advantages.detach().cpu().double().numpy()),
        ]
        if masked:
            cols.append(("mask", case.mask.cpu().numpy()))
        which = _which(case.label)
        shape = tuple(case.log_probs.shape)
        note = f" (entries of the {shape} grid in row-major order)" if len(shape) > 1 else ""
        return f"The {which}, clip range [{fmt(1 - clip_eps)}, {fmt(1 + eps_hi)}]{note}:\n" + _flat_table(cols + rows, marks)

    def explain(case: PPOCase, i: int) -> str:
        lp = case.log_probs.detach().cpu().double().reshape(-1).numpy()
        old = case.old_log_probs.detach().cpu().double().reshape(-1).numpy()
        a = float(case.advantages.detach().cpu().double().reshape(-1)[i])
        r = math.exp(lp[i] - old[i])
        if masked and not bool(case.mask.reshape(-1)[i]):
            return "the entry is masked out, so it gets no gradient"
        n = int(case.mask.sum()) if masked else lp.size
        lo, hi = 1 - clip_eps, 1 + eps_hi
        if a > 0 and r > hi:
            return f"ρ = {fmt(r)} > 1+ε = {fmt(hi)} with Â = {fmt(a)} > 0: the clip binds, so the gradient is 0"
        if a < 0 and r < lo:
            return f"ρ = {fmt(r)} < 1−ε = {fmt(lo)} with Â = {fmt(a)} < 0: the clip binds, so the gradient is 0"
        if dual_clip is not None and a < 0 and r > dual_clip:
            return f"Â = {fmt(a)} < 0 and ρ = {fmt(r)} > c = {fmt(dual_clip)}: the dual clip binds, so the gradient is 0"
        return f"the unclipped term ρÂ is the minimum (ρ = {fmt(r)}, Â = {fmt(a)}), so ∂L/∂log π = −ρÂ/n with n = {n}"

    def kink(case: PPOCase) -> np.ndarray:
        r = torch.exp(case.log_probs.detach().cpu().double() - case.old_log_probs.detach().cpu().double()).reshape(-1).numpy()
        near = np.isclose(r, 1 - clip_eps, rtol=1e-7) | np.isclose(r, 1 + eps_hi, rtol=1e-7)
        if dual_clip is not None:
            near |= np.isclose(r, dual_clip, rtol=1e-7)
        return near

    def header() -> str:
        return f"check_ppo_loss: {fname} (convention {convention!r}) failed"

    def body(case: PPOCase) -> None:
        def describe() -> str:
            return table(case, [], set())

        loss, (lp, old, adv) = _call(lambda: invoke(case), header, describe)
        got, eps_out = _call(lambda: to_numpy(loss, "the loss"), header, describe)
        if got.size != 1:
            raise Mismatch("loss not scalar", lambda: f"{header()}\n  the loss has shape {got.shape}; a scalar is needed\n{describe()}")
        got_v = float(got.reshape(()))
        exp_v, exp_g = reference(case)
        eps = max(eps_out, output_eps(case.log_probs.dtype))
        lpn = case.log_probs.detach().cpu().double().numpy()
        ratio = np.exp(lpn - case.old_log_probs.detach().cpu().double().numpy())
        a = case.advantages.detach().cpu().double().numpy()
        n = max(int(case.mask.sum()) if masked else lpn.size, 1)
        mag = (np.abs(ratio) + 1.0 + (dual_clip or 0.0)) * np.abs(a)
        rt, at = _tolerances(rtol, atol, eps, 4)
        problems: list[str] = []
        grad_vec = None  # (∂/∂log_probs, ∂/∂old, ∂/∂adv), flat, when the gradients were compared
        marks: set[int] = set()
        rows: list[tuple[str, np.ndarray]] = []
        if not abs(got_v - exp_v) <= at + rt * float(mag.sum() / n):
            problems.append(f"  loss: expected {fmt(exp_v)}, got {fmt(got_v)} (diff {fmt(got_v - exp_v)})")
        if gradients:
            if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
                problems.append("  the loss is not differentiable with respect to log_probs (no autograd graph)")
            else:
                grads = torch.autograd.grad(loss.sum(), [lp, old, adv], allow_unused=True)
                g_lp, g_old, g_adv = (_grad_or_zeros(g, x).reshape(-1) for g, x in zip(grads, (lp, old, adv)))
                grad_vec = (g_lp, g_old, g_adv)
                gscale = (mag / n).reshape(-1)
                skip = kink(case)
                bad_lp = _bad(g_lp, exp_g.reshape(-1), gscale, rt, at) & ~skip
                bad_old = ~(np.abs(g_old) <= at)
                bad_adv = ~(np.abs(g_adv) <= at)
                for i in np.flatnonzero(bad_lp)[:4]:
                    problems.append(
                        f"  ∂loss/∂log_probs at i={i}: expected {fmt(exp_g.reshape(-1)[i])}, got {fmt(g_lp[i])}; "
                        + explain(case, int(i))
                    )
                for nm, bad_x, g_x in (("old_log_probs", bad_old, g_old), ("advantages", bad_adv, g_adv)):
                    for i in np.flatnonzero(bad_x)[:3]:
                        problems.append(
                            f"  ∂loss/∂{nm} at i={i}: expected 0, got {fmt(g_x[i])}; {nm} must be treated "
                            "as constants (detached): no gradient may flow into them"
                        )
                if bad_lp.any() or bad_old.any() or bad_adv.any():
                    marks = set(np.flatnonzero(bad_lp | bad_old | bad_adv).tolist())
                    rows = [("expected ∂L/∂logπ", exp_g.reshape(-1)), ("got ∂L/∂logπ", g_lp)]
                    if bad_old.any():
                        rows.append(("got ∂L/∂old", g_old))
                    if bad_adv.any():
                        rows.append(("got ∂L/∂Â", g_adv))
        if not problems:
            return

        def render() -> str:
            lines = [f"check_ppo_loss: {fname} (convention {convention!r}) disagrees with pgmath.ppo_clip_loss:",
                     *problems, table(case, rows, marks)]
            if grad_vec is None:
                got_vec, exp_vec = np.asarray([got_v]), np.asarray([exp_v])
            else:
                zeros = np.zeros(exp_g.size)
                got_vec = np.concatenate([[got_v], *grad_vec])
                exp_vec = np.concatenate([[exp_v], exp_g.reshape(-1), zeros, zeros])
            diag = _diagnosis("ppo_loss", case, got_vec, exp_vec, (convention, user_kw, masked, grad_vec is not None))
            if diag:
                lines.append(diag)
            lines.append(tolerance_line(rt, at))
            return "\n".join(lines)

        raise Mismatch(problems[0].strip(), render)

    def all_masked() -> None:
        case = ppo_all_masked(dtype, device)
        try:
            loss, (lp, old, adv) = invoke(case)
            got, _ = to_numpy(loss, "the loss")
        except Exception:  # raising on an empty selection is a correct answer
            return
        grads_ok = True
        if gradients and isinstance(loss, torch.Tensor) and loss.grad_fn is not None:
            gs = torch.autograd.grad(loss.sum(), [lp, old, adv], allow_unused=True)
            grads_ok = all(g is None or bool(torch.isfinite(g).all()) for g in gs)
        if got.size == 1 and np.isfinite(got).all() and grads_ok:
            return
        raise Mismatch(
            "all-masked batch gave a non-finite loss",
            lambda: (
                f"check_ppo_loss: {fname} (convention {convention!r}) failed on the edge case "
                f"'every entry masked': expected an exception (pgmath raises ValueError) or a finite "
                f"loss with finite gradients, got loss {got.reshape(-1).tolist()}"
                + ("" if grads_ok else " with non-finite gradients")
                + " — a masked mean that divides by mask.sum() = 0 gives NaN, which poisons the update\n"
                + table(case, [], set())
            ),
        )

    def to_case(b) -> PPOCase:
        mask = b.mask if masked else torch.ones_like(b.mask)
        return PPOCase(b.log_probs, b.ref_log_probs, b.advantages, mask)

    strat = strategy if strategy is not None else logit_batches(dtypes=(dtype,), devices=(device,)).map(to_case)
    edges = ppo_edge_cases(clip_eps, clip_eps_high, dual_clip, dtype, device)
    if not masked:
        edges = [PPOCase(c.log_probs, c.old_log_probs, c.advantages, torch.ones_like(c.mask), c.label) for c in edges]

    def run() -> None:
        nonlocal calls
        calls = _run_property(strat, body, max_examples=max_examples, seed=seed)
        if edge_cases:
            for c in edges:
                body(c)
            if masked:
                all_masked()

    calls = 0
    _finish(run)
    labels = tuple(c.label for c in edges) + (("every entry masked",) if masked else ()) if edge_cases else ()
    return CheckReport("check_ppo_loss", fname, "pgmath.ppo_clip_loss", convention, calls, labels,
                       time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# KL estimators


def check_kl_estimator(
    fn: Callable[..., Any],
    estimator: str = "k3",
    *,
    arrays: str = "torch",
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    edge_cases: bool = True,
    strategy: Any = None,
) -> CheckReport:
    """Check a Monte-Carlo KL estimator against :func:`pgmath.kl_estimate` (Schulman's k1/k2/k3).

    ``fn(log_probs, ref_log_probs)`` gets the log-probabilities of samples under the policy π and
    the reference π_ref and estimates KL(π ‖ π_ref): per sample (same shape as the inputs) or
    their mean (a scalar). k1 = ℓ, k2 = ½ℓ², k3 = (ρ − 1) − log ρ with ℓ = log π − log π_ref and
    ρ = π_ref/π = e^{−ℓ}. Other arguments as :func:`check_gae`.
    """
    if estimator not in ("k1", "k2", "k3"):
        raise ValueError(f"estimator must be 'k1', 'k2' or 'k3', got {estimator!r}")
    _check_arrays(arrays)
    fname = _name(fn)
    t0 = time.perf_counter()
    formula = {"k1": "k1 = ℓ", "k2": "k2 = ½ℓ²", "k3": "k3 = (ρ − 1) − log ρ, ρ = e^{−ℓ}"}[estimator]

    def header() -> str:
        return f"check_kl_estimator({estimator!r}): {fname} failed"

    def body(case: KLCase) -> None:
        lp, ref = case.log_probs, case.ref_log_probs
        lp64, ref64 = lp.detach().cpu().double(), ref.detach().cpu().double()
        ell = (lp64 - ref64).numpy()

        def table(rows, marks) -> str:
            which = _which(case.label)
            cols = [("log_probs", lp64.numpy()), ("ref_log_probs", ref64.numpy()), ("ℓ", ell)]
            return f"The {which} ({formula}):\n" + _flat_table(cols + rows, marks)

        args = (lp, ref) if arrays == "torch" else (lp.detach().cpu().numpy(), ref.detach().cpu().numpy())
        out = _call(lambda: fn(*args), header, lambda: table([], set()))
        got, eps_out = _call(lambda: to_numpy(out, "your estimate"), header, lambda: table([], set()))
        exp = kl_estimate(lp64, ref64, estimator).numpy()
        scale = np.abs(ell) + (ell**2 if estimator == "k2" else 0) + (np.exp(-ell) + 1 if estimator == "k3" else 0)
        eps = max(eps_out, output_eps(lp.dtype))
        rt, at = _tolerances(rtol, atol, eps, 4)
        if got.shape != exp.shape and got.size == 1:
            mean, e_mean = float(got.reshape(())), float(exp.mean())
            if abs(mean - e_mean) <= at + rt * float(scale.mean()):
                return
            problems = [f"  mean estimate: expected {fmt(e_mean)}, got {fmt(mean)} (diff {fmt(mean - e_mean)})"]
            rows, marks = [("expected", exp)], set()
        else:
            if got.shape != exp.shape:
                raise Mismatch("wrong shape", lambda: f"{header()}\n  your estimate has shape {got.shape}; "
                               f"expected {exp.shape} (per sample) or a scalar (their mean)\n{table([], set())}")
            bad = _bad(got, exp, scale, rt, at).reshape(-1)
            if not bad.any():
                return
            e, g = exp.reshape(-1), got.reshape(-1)
            problems = [
                f"  i={i}: expected {fmt(e[i])}, got {fmt(g[i])} (diff {fmt(g[i] - e[i])}); "
                f"ℓ = log π − log π_ref = {fmt(ell.reshape(-1)[i])}"
                + (f", ρ = e^(−ℓ) = {fmt(math.exp(-ell.reshape(-1)[i]))}" if estimator == "k3" else "")
                for i in np.flatnonzero(bad)[:5]
            ]
            rows, marks = [("expected", e), ("got", g)], set(np.flatnonzero(bad).tolist())

        def render() -> str:
            lines = [f"check_kl_estimator({estimator!r}): {fname} disagrees with pgmath.kl_estimate:", *problems,
                     table(rows, marks)]
            diag = _diagnosis("kl", case, got, exp if got.size > 1 else np.asarray(exp.mean()), estimator)
            if diag:
                lines.append(diag)
            lines.append(tolerance_line(rt, at))
            return "\n".join(lines)

        raise Mismatch(problems[0].strip(), render)

    strat = strategy if strategy is not None else logit_batches(dtypes=(dtype,), devices=(device,)).map(
        lambda b: KLCase(b.log_probs, b.ref_log_probs)
    )
    calls, edges = _edge_and_property(strat, body, kl_edge_cases(dtype, device), max_examples=max_examples,
                                      seed=seed, edge_cases=edge_cases)
    return CheckReport(f"check_kl_estimator({estimator})", fname, "pgmath.kl_estimate", "pgmath", calls, edges,
                       time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# GRPO / RLOO group advantages


def group_reference(kind: str, normalize_std: bool, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pgmath.llm reference for ``kind`` ("grpo" or "rloo") as ``rewards [G, K] -> [G, K]``."""
    from pgmath import llm

    if kind == "grpo":
        return lambda r: llm.group_advantages(r, normalize_std=normalize_std, eps=eps)
    if kind == "rloo":
        return lambda r: llm.rloo_advantages(r)
    raise ValueError(f"estimator must be 'grpo' or 'rloo', got {kind!r}")


def check_group_advantages(
    fn: Callable[..., Any],
    *,
    estimator: str = "grpo",
    normalize_std: bool = True,
    eps: float = 1e-6,
    arrays: str = "torch",
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    edge_cases: bool = True,
    strategy: Any = None,
) -> CheckReport:
    """Check group-relative advantages ``fn(rewards [G, K]) -> [G, K]`` against :mod:`pgmath.llm`.

    ``estimator="grpo"``: :func:`pgmath.llm.group_advantages` (rᵢ − mean)/(std + eps) within each
    group of K answers to one prompt (``normalize_std=False``: rᵢ − mean). ``"rloo"``:
    :func:`pgmath.llm.rloo_advantages` (rᵢ minus the mean of the other K − 1). Constant groups
    (std = 0) are among the edge cases: their advantages must be 0, not NaN. Other arguments as
    :func:`check_gae`.
    """
    reference = group_reference(estimator, normalize_std, eps)
    _check_arrays(arrays)
    fname = _name(fn)
    t0 = time.perf_counter()
    label = f"check_group_advantages({estimator!r}{'' if normalize_std or estimator != 'grpo' else ', normalize_std=False'})"

    def header() -> str:
        return f"{label}: {fname} failed"

    def body(case: GroupCase) -> None:
        r = case.rewards
        r64 = r.detach().cpu().double()

        def describe(extra=None, bad=None) -> str:
            which = _which(case.label)
            out = [f"The {which}: {r.shape[0]} group(s) of {r.shape[1]} answers, {r.dtype}"]
            for g in range(r.shape[0]):
                if bad is not None and not bad[g].any() and r.shape[0] > 2:
                    continue
                rows = [("rewards", r64[g].numpy())] + [(k, v[g]) for k, v in (extra or {}).items()]
                marks = set(np.flatnonzero(bad[g]).tolist()) if bad is not None else set()
                out.append(f"  group {g}:")
                out.append(rollout_table(rows, r.shape[1], marks).replace("    t ", "    k ", 1))
            return "\n".join(out)

        arg = r if arrays == "torch" else r.detach().cpu().numpy()
        out = _call(lambda: fn(arg), header, describe)
        got, eps_out = _call(lambda: to_numpy(out, "your advantages"), header, describe)
        if got.shape != tuple(r.shape):
            raise Mismatch("wrong shape", lambda: f"{header()}\n  your advantages have shape {got.shape}; "
                           f"expected {tuple(r.shape)}\n{describe()}")
        exp = reference(r64).numpy()
        centred = np.abs(r64.numpy() - r64.numpy().mean(1, keepdims=True))
        std = r64.numpy().std(1, ddof=1, keepdims=True)
        scale = np.abs(exp) + (centred + np.abs(r64.numpy())) / (std + eps if normalize_std and estimator == "grpo" else 1.0)
        rt, at = _tolerances(rtol, atol, max(eps_out, output_eps(r.dtype)), 8)
        bad = _bad(got, exp, scale, rt, at)
        if not bad.any():
            return

        def render() -> str:
            lines = [f"{label}: {fname} disagrees with pgmath.llm on {int(bad.sum())} of {bad.size} entries:"]
            for g, k in np.argwhere(bad)[:6]:
                row = r64[g].numpy()
                std_g = float(row.std(ddof=1))
                lines.append(
                    f"  group {g}, answer {k}: expected {fmt(exp[g, k])}, got {fmt(got[g, k])}; the group's "
                    f"mean is {fmt(row.mean())} and its standard deviation {fmt(std_g)}"
                    + (" (a constant group: every advantage is 0)" if std_g == 0 else "")
                )
            lines.append(describe({"expected": exp, "got": got}, bad))
            diag = _diagnosis("group", case, got, exp, (estimator, normalize_std, eps))
            if diag:
                lines.append(diag)
            lines.append(tolerance_line(rt, at))
            return "\n".join(lines)

        g0, k0 = np.argwhere(bad)[0]
        raise Mismatch(f"group advantage mismatch at group {g0}, answer {k0}", render)

    strat = strategy if strategy is not None else reward_groups(dtypes=(dtype,), devices=(device,)).map(GroupCase)
    calls, edges = _edge_and_property(strat, body, group_edge_cases(dtype, device), max_examples=max_examples,
                                      seed=seed, edge_cases=edge_cases)
    ref = "pgmath.llm.group_advantages" if estimator == "grpo" else "pgmath.llm.rloo_advantages"
    return CheckReport(label, fname, ref, "pgmath", calls, edges, time.perf_counter() - t0)

