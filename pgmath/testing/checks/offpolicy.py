"""``check_vtrace`` and ``check_retrace``: other people's off-policy targets against pgmath's loops.

A drawn :class:`~pgmath.rollouts.Rollout` (every episode-end pattern) and log-ratios
log ρₜ = log π(aₜ|sₜ) − log μ(aₜ|sₜ) (multiples of 1/4 in [−2, 2], sometimes −inf: π(aₜ|sₜ) = 0)
are handed to the function in its calling convention, the answer is brought back to ``[T, *B]``
float64 and compared entry by entry with :func:`pgmath.vtrace_reference` /
:func:`pgmath.retrace_reference`, each entry within atol + rtol·scale, where scale is the same
recursion run on the magnitudes of its terms.

Conventions (``convention=``):

* ``"pgmath"`` — ``fn(log_rhos, rewards, values, next_values, terminated, truncated, *, gamma,
  lam, rho_bar, c_bar, pg_rho_bar)`` → ``(value_targets, pg_advantages)`` or the value targets
  alone (V-trace); ``fn(log_rhos, rewards, q_values, next_values, terminated, truncated, *,
  gamma, lam)`` → Q targets (Retrace; ``next_values[t]`` = E_π Q(sₜ₊₁, ·)). ``[T, *B]`` tensors.
* ``"rlax"`` — DeepMind rlax, one sequence per call, NumPy ``[T]`` arrays in.
  V-trace: ``fn(v_tm1, v_t, r_t, discount_t, rho_tm1, lambda_, clip_rho_threshold=ρ̄
  [, clip_pg_rho_threshold=ρ̄_pg])`` returning the errors vₜ − V(sₜ) (``rlax.vtrace``) or a
  ``VTraceOutput(errors, pg_advantage, q_estimate)`` (``rlax.vtrace_td_error_and_advantage``).
  Retrace: ``fn(q_tm1, q_t, v_t, r_t, discount_t, log_rhos, lambda_)`` returning target − Q
  (``rlax.retrace_continuous``: ``q_t``, ``log_rhos`` are ``[T−1]``, of steps 1…T−1).
  ``discount_t = γ(1 − terminated)``; rlax has no truncation flag, so a truncation inside the
  sequence is folded as for ``check_gae``: ``r_t + γ V(final obs)`` with ``discount_t = 0`` —
  exactly pgmath's convention (bootstrap, then cut the trace). rlax's trace clip c̄ is fixed
  at 1 (the check refuses another ``c_bar``), and with λ < 1 its policy-gradient advantage
  bootstraps from λvₜ₊₁ + (1 − λ)V(sₜ₊₁) instead of vₜ₊₁ (Espeholt et al. §4.2): a convention
  difference, checked as ``pg_target="lambda_mixed"`` (the rlax default; ``"vtrace"`` forces
  the paper's) and reported in the check's notes.
* ``"rlax_discrete"`` (Retrace only) — ``rlax.retrace(q_tm1 [T, A], q_t [T, A], a_tm1, a_t,
  r_t, discount_t, pi_t [T, A], mu_t [T], lambda_, eps=0)``: the adapter builds two-action tables
  whose taken actions have the drawn Q(sₜ, aₜ), ratio ρₜ and expectation E_π Q(sₜ₊₁, ·).
* ``"torchrl"`` (V-trace only) — ``torchrl.objectives.value.functional.vtrace_advantage_estimate(
  gamma, log_pi, log_mu, state_value, next_state_value, reward, done, terminated,
  rho_thresh=ρ̄, c_thresh=c̄)`` → ``(advantages, value_targets)``, batch-major ``[N, T, 1]``,
  ``done = terminated | truncated``; TorchRL clips the policy-gradient weight at ρ̄ (so
  ``pg_rho_bar`` must be ρ̄) and has no λ (the check uses λ = 1).

Checked by: ``tests/test_offpolicy.py`` (the references pass in every convention; every wrong
variant of the V-trace and Retrace specs is rejected; the messages), ``tests/test_conform.py``
(rlax and TorchRL through ``pgmath conform``).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pgmath.offpolicy import retrace_reference, trace_recursion_reference, vtrace_reference
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
from pgmath.testing.conventions import ConventionError, output_eps, to_numpy
from pgmath.testing.report import (
    Mismatch,
    env_label,
    mismatch_lines,
    rollout_description,
    tolerance_line,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pgmath.testing.checks.core import OptionFields
    from pgmath.testing.mutants import Mutant

__all__ = ["OffPolicyCase", "check_retrace", "check_vtrace", "offpolicy_cases"]

VTRACE_CONVENTIONS = ("pgmath", "rlax", "torchrl")
RETRACE_CONVENTIONS = ("pgmath", "rlax", "rlax_discrete")


@dataclass(frozen=True)
class OffPolicyCase:
    """A rollout and the log-ratios of its actions (``[T, *B]``, the rollout's dtype)."""

    rollout: Rollout
    log_rhos: torch.Tensor

    @property
    def label(self) -> str:
        return self.rollout.label


def offpolicy_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                    max_T: int = 10, truncations: bool = True) -> Any:
    """Hypothesis strategy of :class:`OffPolicyCase` s: :func:`pgmath.testing.strategies.rollouts`
    with log-ratios in [−2, 2] (multiples of 1/4) or −inf."""
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from pgmath.testing.strategies import rollouts

    elems = st.one_of(st.integers(-8, 8).map(lambda i: i / 4), st.just(-float("inf")))

    def with_ratios(ro: Rollout) -> Any:
        return arrays(np.float64, tuple(ro.rewards.shape), elements=elems).map(
            lambda lr: OffPolicyCase(ro, torch.as_tensor(lr, dtype=ro.dtype, device=ro.rewards.device)))

    return rollouts(max_T=max_T, dtypes=(dtype,), devices=(device,), truncations=truncations).flatmap(with_ratios)


def _edge_cases(dtype: torch.dtype, device: torch.device | str) -> list[OffPolicyCase]:
    """Hand-made cases: a truncation then a termination inside one sequence, ratios far from 1."""
    from pgmath.testing.strategies import make_rollout

    rewards = np.array([[1.0, -0.5], [0.25, 2.0], [-1.0, 0.5], [0.5, 1.0], [2.0, -2.0]])
    obs = np.array([[0.5, 1.0], [1.5, -1.0], [-0.5, 0.25], [2.0, 0.75], [1.0, 1.0], [0.5, -0.5]])
    final = np.array([[3.0, -2.0], [4.0, 2.5], [-3.0, 1.5], [1.25, -1.75], [0.75, 2.25]])
    kinds = np.array([[0, 2], [2, 0], [0, 1], [1, 0], [0, 0]])
    ro = make_rollout(rewards, obs, final, kinds, gamma=0.9, lam=0.8, dtype=dtype, device=device,
                      label="truncation then termination, ratios 0…e²")
    lr = torch.tensor([[2.0, -1.5], [-2.0, 0.5], [1.0, -float("inf")], [0.0, 1.5], [-0.75, 2.0]], dtype=dtype,
                      device=device)
    return [OffPolicyCase(ro, lr)]


# ---------------------------------------------------------------------------------------------
# what the reference says, in float64


@dataclass(frozen=True)
class _VTraceSettings:
    rho_bar: float
    c_bar: float
    pg_rho_bar: float | None
    lam: float | None
    pg_target: str

    def lam_of(self, case: OffPolicyCase) -> float:
        return case.rollout.lam if self.lam is None else self.lam


def _c64(case: OffPolicyCase) -> tuple[Rollout, torch.Tensor]:
    return case.rollout.to(torch.float64, "cpu"), case.log_rhos.detach().to(torch.float64).cpu()


def _vtrace_expected(case: OffPolicyCase, s: _VTraceSettings, gamma: float | None = None) -> tuple[np.ndarray, ...]:
    ro, lr = _c64(case)
    g = ro.gamma if gamma is None else gamma
    lam = s.lam_of(case)
    vs, pg = vtrace_reference(lr, *ro, gamma=g, lam=lam, rho_bar=s.rho_bar, c_bar=s.c_bar, pg_rho_bar=s.pg_rho_bar)
    if s.pg_target == "lambda_mixed":  # rlax: q = r + γ(1 − term)(λ vₜ₊₁ + (1 − λ)V(sₜ₊₁)) inside an episode
        stop = ro.terminated | ro.truncated
        stop[-1] = True
        nxt = torch.cat([lam * vs[1:] + (1 - lam) * ro.values[1:], ro.next_values[-1:]])
        v_plus = torch.where(stop, ro.next_values, nxt)
        pg_bar = s.rho_bar if s.pg_rho_bar is None else s.pg_rho_bar
        pg = lr.exp().clamp(max=pg_bar) * (ro.rewards + g * (~ro.terminated).double() * v_plus - ro.values)
    # scale: the same recursion on the magnitudes of its terms
    rho = lr.exp()
    mag = rho.clamp(max=s.rho_bar) * (ro.rewards.abs() + g * ro.next_values.abs() + ro.values.abs())
    a = trace_recursion_reference(mag, lam * rho.clamp(max=s.c_bar), ro.terminated, ro.truncated, gamma=g)
    scale_vs = a + ro.values.abs()
    nxt = torch.cat([scale_vs[1:], ro.next_values[-1:].abs()])
    pg_bar = s.rho_bar if s.pg_rho_bar is None else s.pg_rho_bar
    scale_pg = rho.clamp(max=pg_bar) * (ro.rewards.abs() + g * (nxt + ro.next_values.abs()) + ro.values.abs())
    return vs.numpy(), pg.numpy(), scale_vs.numpy(), scale_pg.numpy()


def _retrace_expected(case: OffPolicyCase, lam: float, gamma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    ro, lr = _c64(case)
    g = ro.gamma if gamma is None else gamma
    want = retrace_reference(lr, *ro, gamma=g, lam=lam)
    c = lam * lr.exp().clamp(max=1.0)
    mag = ro.rewards.abs() + g * ro.next_values.abs() + ro.values.abs()
    kappa = torch.cat([c[1:], torch.zeros_like(c[:1])])
    scale = trace_recursion_reference(mag + g * kappa * ro.values.roll(-1, 0).abs(), kappa, ro.terminated,
                                      ro.truncated, gamma=g) + ro.values.abs()
    return want.numpy(), scale.numpy()


# ---------------------------------------------------------------------------------------------
# calling the function in its convention


def _np(x: torch.Tensor) -> np.ndarray:
    t = x.detach().cpu()
    return t.numpy() if t.dtype == torch.bool else t.to(torch.float32 if t.dtype == torch.bfloat16 else t.dtype).numpy()


def _fold_truncation(ro: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
    """rlax's (r_t, discount_t): a truncation inside the sequence folded into the reward."""
    last = torch.zeros_like(ro.terminated)
    last[-1] = True
    fold = ro.truncated & ~ro.terminated & ~last
    r_t = ro.rewards + ro.gamma * fold.to(ro.dtype) * ro.next_values
    discount = ro.gamma * (~(ro.terminated | fold)).to(ro.dtype)
    return r_t, discount


def _columns(*xs: torch.Tensor) -> list[list[np.ndarray]]:
    """Per environment j: the ``[T]`` column j of every ``[T, *B]`` tensor, as NumPy arrays."""
    flat = [_np(x.reshape(x.shape[0], -1)) for x in xs]
    return [[np.ascontiguousarray(f[:, j]) for f in flat] for j in range(flat[0].shape[1])]


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _read(x: object, shape: tuple[int, ...], accepted: list[tuple[int, ...]], what: str) -> tuple[np.ndarray, float]:
    a, eps = to_numpy(x, what)
    for s in accepted:
        if tuple(a.shape) == tuple(s):
            return a.reshape(shape), eps
    raise ConventionError(f"{what} has shape {tuple(a.shape)}; expected {' or '.join(map(str, accepted))}")


@dataclass
class _Result:
    main: np.ndarray  # value targets (V-trace) or Q targets (Retrace), [T, *B]
    pg: np.ndarray | None  # V-trace policy-gradient advantages, when returned
    eps: float


def _call_vtrace(fn: Callable[..., Any], conv: str, case: OffPolicyCase, s: _VTraceSettings) -> _Result:
    ro, lr = case.rollout, case.log_rhos
    lam = s.lam_of(case)
    shape = tuple(ro.rewards.shape)
    T, B = shape[0], shape[1:]
    if conv == "pgmath":
        out = fn(lr, *ro, gamma=ro.gamma, lam=lam, rho_bar=s.rho_bar, c_bar=s.c_bar, pg_rho_bar=s.pg_rho_bar)
        if isinstance(out, (tuple, list)) and len(out) == 2:
            vs, e1 = _read(out[0], shape, [shape], "your function's value targets (first output)")
            pg, e2 = _read(out[1], shape, [shape], "your function's policy-gradient advantages (second output)")
            return _Result(vs, pg, max(e1, e2))
        vs, e1 = _read(out, shape, [shape], "your function's value targets")
        return _Result(vs, None, e1)
    if conv == "rlax":
        r_t, discount = _fold_truncation(ro)
        vss, pgs, eps = [], [], 0.0
        for j, (v, nv, r, d, rho) in enumerate(_columns(ro.values, ro.next_values, r_t, discount, lr.exp())):
            kw = {"clip_rho_threshold": s.rho_bar}
            if _accepts(fn, "clip_pg_rho_threshold"):
                kw["clip_pg_rho_threshold"] = s.rho_bar if s.pg_rho_bar is None else s.pg_rho_bar
            out = fn(v, nv, r, d, rho, lam, **kw)
            errors = getattr(out, "errors", out)
            err, e = _read(errors, (T,), [(T,)], f"your function's errors for environment {j}")
            vss.append(err + v.astype(np.float64))
            eps = max(eps, e)
            if hasattr(out, "pg_advantage"):
                a, e = _read(out.pg_advantage, (T,), [(T,)], f"your function's pg_advantage for environment {j}")
                pgs.append(a)
        vs = np.stack(vss, 1).reshape(shape)
        pg = np.stack(pgs, 1).reshape(shape) if pgs else None
        return _Result(vs, pg, eps)
    # torchrl: batch-major [N, T, 1]
    def bm(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(T, -1).transpose(0, 1).unsqueeze(-1)

    done = ro.terminated | ro.truncated
    out = fn(ro.gamma, bm(lr), torch.zeros_like(bm(lr)), bm(ro.values), bm(ro.next_values), bm(ro.rewards),
             bm(done), bm(ro.terminated), rho_thresh=s.rho_bar, c_thresh=s.c_bar)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ConventionError("your function must return (advantages, value_targets)")
    n = int(np.prod(B)) if B else 1
    adv, e1 = _read(out[0], (n, T), [(n, T, 1), (n, T)], "your function's advantages (first output)")
    vs, e2 = _read(out[1], (n, T), [(n, T, 1), (n, T)], "your function's value targets (second output)")
    return _Result(vs.T.reshape(shape), adv.T.reshape(shape), max(e1, e2))


def _call_retrace(fn: Callable[..., Any], conv: str, case: OffPolicyCase, lam: float) -> _Result:
    ro, lr = case.rollout, case.log_rhos
    shape = tuple(ro.rewards.shape)
    T = shape[0]
    if conv == "pgmath":
        out = fn(lr, *ro, gamma=ro.gamma, lam=lam)
        q, e = _read(out, shape, [shape], "your function's Q targets")
        return _Result(q, None, e)
    r_t, discount = _fold_truncation(ro)
    qs, eps = [], 0.0
    for j, (q, nv, r, d, lrj) in enumerate(_columns(ro.values, ro.next_values, r_t, discount, lr)):
        if conv == "rlax":
            out = fn(q, q[1:], nv, r, d, lrj[1:], lam)
        else:
            out = fn(*_discrete_tables(q, nv, lrj), r, d, *_discrete_probs(nv, lrj), lam,
                     **({"eps": 0.0} if _accepts(fn, "eps") else {}))
        err, e = _read(out, (T,), [(T,)], f"your function's errors for environment {j}")
        qs.append(err + q.astype(np.float64))
        eps = max(eps, e)
    return _Result(np.stack(qs, 1).reshape(shape), None, eps)


def _discrete_probs(nv: np.ndarray, lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pi_t [T, 2] and mu_t [T] of two-action tables: row i is step i+1's state; action 0 taken
    with π = ½ (0 where ρ = 0) and μ = π/ρ (½ where ρ = 0)."""
    T = nv.shape[0]
    rho = np.exp(np.concatenate([lr[1:].astype(np.float64), [0.0]]))
    p = np.where(rho > 0, 0.5, 0.0)
    mu = np.where(rho > 0, 0.5 / np.where(rho > 0, rho, 1.0), 0.5)
    pi = np.stack([p, 1 - p], 1)
    return pi.astype(nv.dtype), mu.astype(nv.dtype).reshape(T)


def _discrete_tables(q: np.ndarray, nv: np.ndarray, lr: np.ndarray) -> tuple[np.ndarray, ...]:
    """q_tm1 [T, 2], q_t [T, 2], a_tm1, a_t: Q(sₜ, aₜ) in column 0; q_t's column 1 set so that
    Σₐ π(a|sₜ₊₁)Q(sₜ₊₁, a) = E_π Q(sₜ₊₁,·) = ``nv``."""
    T = q.shape[0]
    pi, _ = _discrete_probs(nv, lr)
    q0 = np.concatenate([q[1:].astype(np.float64), [0.0]])
    q1 = (nv.astype(np.float64) - pi[:, 0] * q0) / pi[:, 1]
    q_tm1 = np.stack([q.astype(np.float64), np.zeros(T)], 1).astype(q.dtype)
    q_t = np.stack([q0, q1], 1).astype(q.dtype)
    zeros = np.zeros(T, dtype=np.int32)
    return q_tm1, q_t, zeros, zeros


# ---------------------------------------------------------------------------------------------
# the checks


def _float32_gamma_line(got: np.ndarray, expected_fn: Callable[[float], np.ndarray], gamma: float) -> str:
    """A line when ``got`` equals the reference with γ rounded to float32 (TorchRL's γ·int flags)."""
    g32 = float(np.float32(gamma))
    if g32 == gamma:
        return ""
    alt = expected_fn(g32)
    if np.allclose(got, alt, rtol=1e-9, atol=1e-9) and not np.allclose(got, expected_fn(gamma), rtol=1e-9, atol=1e-9):
        return (f"Your output matches the reference with γ rounded to float32 ({g32!r} for {gamma!r}): the discount "
                "is formed in float32 (e.g. γ·(~done).int()), a precision loss of ~1e-7 relative, not a formula error")
    return ""


def _other_pg_target_line(got: np.ndarray, case: OffPolicyCase, s: _VTraceSettings) -> str:
    """A line when the advantages follow the other ``pg_target`` convention."""
    other = "lambda_mixed" if s.pg_target == "vtrace" else "vtrace"
    alt = _vtrace_expected(case, dataclasses.replace(s, pg_target=other))[1]
    if not np.allclose(got, alt, rtol=1e-5, atol=1e-6):
        return ""
    what = {"lambda_mixed": "λvₜ₊₁ + (1 − λ)V(sₜ₊₁) (rlax's q_estimate)",
            "vtrace": "vₜ₊₁ (Espeholt et al. §4.2)"}[other]
    return (f"Your advantages match pg_target={other!r}: they bootstrap from {what} — a convention difference, "
            f"not a bug; pass pg_target={other!r} to check against it")


def _mutant_output(kind: str, case: OffPolicyCase, settings: Any, part: str) -> Callable[[Mutant], np.ndarray | None]:
    def output(m: Mutant) -> np.ndarray | None:
        if kind == "vtrace":
            res = _call_vtrace(m.fn, m.convention, case, dataclasses.replace(settings, pg_target="vtrace"))
            return res.main if part == "main" else res.pg
        return _call_retrace(m.fn, m.convention, case, settings).main

    return output


def _fail(check: str, fname: str, conv: str, case: OffPolicyCase, what: str, exp: np.ndarray, got: np.ndarray,
          bad: np.ndarray, extra: str, diag: str, rt: float, at: float) -> Mismatch:
    first = np.argwhere(bad)[0]

    def render() -> str:
        ls, envs = mismatch_lines(exp, got, bad, None)
        head = (f"{check}: {fname} (convention {conv!r}) disagrees with the reference on {int(bad.sum())} of "
                f"{bad.size} {what} (listed in the order the reverse recursion computes them):")
        shown = {"log_rhos": case.log_rhos.detach().cpu().double().numpy()}
        desc = rollout_description(case.rollout, envs, bad, {"expected": exp, "got": got}, shown, conv)
        return "\n".join([head, *ls, desc, *[x for x in (extra, diag) if x], tolerance_line(rt, at)])

    return Mismatch(f"{what} mismatch at t={first[0]}{env_label(tuple(first[1:]))}", render)


def _header(check: str, fname: str, conv: str) -> Callable[[], str]:
    return lambda: f"{check}: {fname} (convention {conv!r}) failed"


def check_vtrace(fn: Callable[..., Any], *, convention: str = "pgmath", rho_bar: float = 1.0, c_bar: float = 1.0,
                 pg_rho_bar: float | None = None, lam: float | None = None, pg_target: str | None = None,
                 options: CheckOptions | None = None, **overrides: Unpack[OptionFields]) -> CheckReport:
    """Check a V-trace implementation against :func:`pgmath.vtrace_reference`.

    Args:
      fn: the implementation, in the calling convention ``convention`` (``"pgmath"``, ``"rlax"``,
        ``"torchrl"``; see :mod:`pgmath.testing.checks.offpolicy`). Value targets are checked, and
        the policy-gradient advantages when it returns them.
      rho_bar, c_bar, pg_rho_bar: the clip levels ρ̄, c̄, ρ̄_pg (default ρ̄) of the reference, i.e.
        the settings of ``fn``.
      lam: λ (None: drawn with each rollout; TorchRL has no λ, so it is 1 there).
      pg_target: what the advantage bootstraps from inside an episode: ``"vtrace"`` (vₜ₊₁,
        Espeholt et al. §4.2) or ``"lambda_mixed"`` (λvₜ₊₁ + (1 − λ)V(sₜ₊₁), rlax's convention);
        None: the convention's (``"lambda_mixed"`` for rlax, else ``"vtrace"``).
      options, **overrides: as :func:`pgmath.testing.check_gae`.
    Returns:
      a :class:`~pgmath.testing.checks.CheckReport` (its notes name the convention differences).
    Raises:
      AssertionError: with the shrunken counterexample, on a mismatch.
    """
    opts = resolve_options(options, overrides)
    if convention not in VTRACE_CONVENTIONS:
        raise ValueError(f"convention must be one of {VTRACE_CONVENTIONS} for check_vtrace, got {convention!r}")
    notes: list[str] = []
    if convention == "rlax":
        if c_bar != 1.0:
            raise ValueError(f"c_bar must be 1 with convention 'rlax' (rlax's trace clip is fixed at 1), got {c_bar}")
        notes.append("rlax has no truncation flag: a truncation is folded into r_t + γV(final obs) with "
                     "discount_t = 0, which is pgmath's convention exactly")
    if convention == "torchrl":
        if lam not in (None, 1.0):
            raise ValueError(f"lam must be 1 with convention 'torchrl' (no λ in TorchRL's V-trace), got {lam}")
        if pg_rho_bar not in (None, rho_bar):
            raise ValueError("pg_rho_bar must equal rho_bar with convention 'torchrl' (rho_thresh clips both)")
        lam = 1.0
    if pg_target is None:
        pg_target = "lambda_mixed" if convention == "rlax" else "vtrace"
    if pg_target not in ("vtrace", "lambda_mixed"):
        raise ValueError(f"pg_target must be 'vtrace' or 'lambda_mixed', got {pg_target!r}")
    s = _VTraceSettings(rho_bar, c_bar, pg_rho_bar, lam, pg_target)
    fname = target_name(fn)
    check_settings = {"rho_bar": rho_bar, "c_bar": c_bar, "pg_rho_bar": pg_rho_bar}
    returned_pg = [False]

    def body(case: OffPolicyCase) -> None:
        res = call_user(lambda: _call_vtrace(fn, convention, case, s), _header("check_vtrace", fname, convention),
                        lambda: rollout_description(case.rollout, [], None, {}, {}, convention))
        returned_pg[0] |= res.pg is not None
        vs, pg, scale_vs, scale_pg = _vtrace_expected(case, s)
        rt, at = opts.tolerances(max(res.eps, output_eps(case.rollout.dtype)), case.rollout.T)
        for part, exp, got, scale, what in (("main", vs, res.main, scale_vs, "value targets vₜ"),
                                            ("pg", pg, res.pg, scale_pg, "policy-gradient advantages")):
            if got is None:
                continue
            bad = mismatched(got, exp, scale, rt, at)
            if bad.any():
                idx = 0 if part == "main" else 1
                f32 = _float32_gamma_line(got, lambda g, i=idx: _vtrace_expected(case, s, g)[i], case.rollout.gamma)
                if part == "pg" and not f32:
                    f32 = _other_pg_target_line(got, case, s)
                diag = diagnosis_line("check_vtrace", got, exp, _mutant_output("vtrace", case, s, part), check_settings)
                raise _fail("check_vtrace", fname, convention, case, what, exp, got, bad, f32, diag, rt, at)

    t0 = time.perf_counter()
    strat = opts.strategy if opts.strategy is not None else offpolicy_cases(opts.dtype, opts.device)
    calls, edges = run_cases(strat, body, _edge_cases(opts.dtype, opts.device), opts)
    if pg_target == "lambda_mixed" and returned_pg[0]:
        notes.append("convention difference, not a bug: with λ < 1 the policy-gradient advantage bootstraps from "
                     "λvₜ₊₁ + (1 − λ)V(sₜ₊₁) (rlax's q_estimate), pgmath's from vₜ₊₁ (Espeholt et al. §4.2); "
                     "checked against the former (pg_target='lambda_mixed')")
    return CheckReport("check_vtrace", fname, "pgmath.vtrace_reference", convention, calls, edges,
                       time.perf_counter() - t0, tuple(notes))


def check_retrace(fn: Callable[..., Any], *, convention: str = "pgmath", lam: float | None = None,
                  options: CheckOptions | None = None, **overrides: Unpack[OptionFields]) -> CheckReport:
    """Check a Retrace(λ) implementation against :func:`pgmath.retrace_reference`.

    Args:
      fn: the implementation, in the calling convention ``convention`` (``"pgmath"``, ``"rlax"``
        for ``rlax.retrace_continuous``, ``"rlax_discrete"`` for ``rlax.retrace``); it returns the
        Q targets (pgmath) or target − Q(sₜ, aₜ) (rlax).
      lam: λ (None: drawn with each rollout).
      options, **overrides: as :func:`pgmath.testing.check_gae`.
    Returns:
      a :class:`~pgmath.testing.checks.CheckReport`.
    Raises:
      AssertionError: with the shrunken counterexample, on a mismatch.
    """
    opts = resolve_options(options, overrides)
    if convention not in RETRACE_CONVENTIONS:
        raise ValueError(f"convention must be one of {RETRACE_CONVENTIONS} for check_retrace, got {convention!r}")
    notes: tuple[str, ...] = ()
    if convention != "pgmath":
        notes = ("rlax has no truncation flag: a truncation is folded into r_t + γE_πQ(final obs) with "
                 "discount_t = 0, which is pgmath's convention exactly",)
    fname = target_name(fn)

    def body(case: OffPolicyCase) -> None:
        lam_c = case.rollout.lam if lam is None else lam
        res = call_user(lambda: _call_retrace(fn, convention, case, lam_c), _header("check_retrace", fname, convention),
                        lambda: rollout_description(case.rollout, [], None, {}, {}, convention))
        exp, scale = _retrace_expected(case, lam_c)
        rt, at = opts.tolerances(max(res.eps, output_eps(case.rollout.dtype)), case.rollout.T)
        bad = mismatched(res.main, exp, scale, rt, at)
        if bad.any():
            f32 = _float32_gamma_line(res.main, lambda g: _retrace_expected(case, lam_c, g)[0], case.rollout.gamma)
            diag = diagnosis_line("check_retrace", res.main, exp, _mutant_output("retrace", case, lam_c, "main"))
            raise _fail("check_retrace", fname, convention, case, "Q targets", exp, res.main, bad, f32, diag, rt, at)

    t0 = time.perf_counter()
    strat = opts.strategy if opts.strategy is not None else offpolicy_cases(opts.dtype, opts.device)
    calls, edges = run_cases(strat, body, _edge_cases(opts.dtype, opts.device), opts)
    return CheckReport("check_retrace", fname, "pgmath.retrace_reference", convention, calls, edges,
                       time.perf_counter() - t0, notes)
