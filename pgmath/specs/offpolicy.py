"""Specs of the off-policy targets: V-trace, Retrace(λ), Tree-backup(λ), Q(λ), per-decision IS.

    V-trace:  vₜ − V(sₜ) = min(ρ̄, ρₜ) δₜ + γ cₜ (vₜ₊₁ − V(sₜ₊₁)),  cₜ = λ min(c̄, ρₜ)
              Âₜ = min(ρ̄_pg, ρₜ)(rₜ + γ(1 − termₜ) vₜ₊₁ − V(sₜ))   (vₜ₊₁ := V(sₜ₊₁) at an episode end)
    Retrace:  Gₜ = rₜ + γ(1 − termₜ)[E_π Q(sₜ₊₁,·) + cₜ₊₁(Gₜ₊₁ − Q(sₜ₊₁, aₜ₊₁))],  cₛ = λ min(1, ρₛ)
    TB / Q(λ): the same with cₛ = λ π(aₛ|sₛ) / cₛ = λ
    PDIS:     Gₜ = ρₜ (rₜ + γ Gₜ₊₁)

Sources: Espeholt et al. (2018), "IMPALA", eq. (1), Remark 1, §4.2; Munos et al. (2016), "Safe
and Efficient Off-Policy Reinforcement Learning", eq. (3), Table 1; Precup, Sutton & Singh (2000),
"Eligibility Traces for Off-Policy Policy Evaluation"; Harutyunyan et al. (2016), "Q(λ) with
Off-Policy Corrections".

V-trace returns two tensors; its spec's signature stacks them, ``[2, T, *B]`` = (value targets,
policy-gradient advantages), so every implementation and wrong variant is one tensor-valued
function (:func:`vtrace_stacked`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from pgmath.advantages import gae_reference, lambda_returns
from pgmath.offpolicy import (
    per_decision_is_returns,
    per_decision_is_returns_reference,
    q_lambda,
    q_lambda_reference,
    retrace,
    retrace_reference,
    trace_recursion,
    trace_recursion_reference,
    tree_backup,
    tree_backup_reference,
    vtrace,
    vtrace_reference,
)
from pgmath.returns import discounted_returns_reference
from pgmath.rollouts import Rollout
from pgmath.specs.recursions import rollout_suite
from pgmath.specs.spec import (
    BadInput,
    Call,
    Property,
    Spec,
    WrongVariant,
    backends,
    max_abs_error,
    outcome_within,
)
from pgmath.verification import Outcome, VerifyContext

__all__ = [
    "FAMILY",
    "offpolicy_inputs",
    "offpolicy_suite",
    "q_targets_by_expansion",
    "vtrace_by_expansion",
    "vtrace_stacked",
    "vtrace_unstacked",
]

F64 = torch.float64

# ---------------------------------------------------------------------------------------------
# shared: rollouts with log-ratios, the direct expansions


def offpolicy_suite(ctx: VerifyContext, offset: int) -> list[tuple[torch.Tensor, Rollout]]:
    """The rollouts of :func:`~pgmath.specs.recursions.rollout_suite`, each with log-ratios
    log ρ ~ N(0, 0.8²) drawn from the same seeded generator (ratios on both sides of 1)."""
    g = ctx.generator(offset + 1000)
    out = []
    for ro in rollout_suite(ctx, offset):
        lr = 0.8 * torch.randn(ro.rewards.shape, dtype=F64, generator=g).to(ctx.device)
        out.append((lr, ro))
    return out


def _ends(ro: Rollout) -> torch.Tensor:
    """[T, N] bool: the episode ends after step t (terminated, truncated, or the rollout's end)."""
    e = (ro.terminated | ro.truncated).reshape(ro.rewards.shape[0], -1).clone()
    e[-1] = True
    return e


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def vtrace_by_expansion(log_rhos: torch.Tensor, ro: Rollout, *, gamma: float, lam: float,
                        rho_bar: float, c_bar: float, pg_rho_bar: float | None = None) -> torch.Tensor:
    """``[2, T, *B]``: vₜ = V(sₜ) + Σₖ₌ₜᵉ γᵏ⁻ᵗ (Πᵢ₌ₜᵏ⁻¹ cᵢ) min(ρ̄, ρₖ) δₖ summed term by term (e the
    episode's last step), and Âₜ from its definition with that vₜ₊₁ — Espeholt et al. eq. (1)."""
    pg_bar = rho_bar if pg_rho_bar is None else pg_rho_bar
    r, v, nv, term, lr = (_flat(x) for x in (ro.rewards, ro.values, ro.next_values, ro.terminated, log_rhos))
    ends = _ends(ro)
    T, N = r.shape
    vs = torch.zeros_like(r)
    pg = torch.zeros_like(r)
    for j in range(N):
        for t in range(T):
            total, prod, k = 0.0, 1.0, t
            while True:
                rho = float(lr[k, j].exp())
                delta = min(rho_bar, rho) * (float(r[k, j]) + gamma * (not bool(term[k, j])) * float(nv[k, j])
                                             - float(v[k, j]))
                total += gamma ** (k - t) * prod * delta
                if bool(ends[k, j]):
                    break
                prod *= lam * min(c_bar, rho)
                k += 1
            vs[t, j] = float(v[t, j]) + total
    for j in range(N):
        for t in range(T):
            v_plus = float(nv[t, j]) if bool(ends[t, j]) else float(vs[t + 1, j])
            rho = float(lr[t, j].exp())
            pg[t, j] = min(pg_bar, rho) * (float(r[t, j]) + gamma * (not bool(term[t, j])) * v_plus - float(v[t, j]))
    shape = ro.rewards.shape
    return torch.stack([vs.reshape(shape), pg.reshape(shape)])


def q_targets_by_expansion(traces: torch.Tensor, ro: Rollout, *, gamma: float) -> torch.Tensor:
    """Gₜ = Q(sₜ,aₜ) + Σₖ₌ₜᵉ γᵏ⁻ᵗ (Πⱼ₌ₜ₊₁ᵏ cⱼ) δₖ, δₖ = rₖ + γ(1 − termₖ)E_π Q(sₖ₊₁,·) − Q(sₖ,aₖ),
    summed term by term (Munos et al. 2016, eq. 3); ``ro.values`` plays Q(sₜ, aₜ) and
    ``ro.next_values`` E_π Q(sₜ₊₁, ·)."""
    r, q, nv, term, c = (_flat(x) for x in (ro.rewards, ro.values, ro.next_values, ro.terminated, traces))
    ends = _ends(ro)
    T, N = r.shape
    out = torch.zeros_like(r)
    for j in range(N):
        for t in range(T):
            total, prod, k = 0.0, 1.0, t
            while True:
                delta = float(r[k, j]) + gamma * (not bool(term[k, j])) * float(nv[k, j]) - float(q[k, j])
                total += gamma ** (k - t) * prod * delta
                if bool(ends[k, j]):
                    break
                k += 1
                prod *= float(c[k, j])
            out[t, j] = float(q[t, j]) + total
    return out.reshape(ro.rewards.shape)


def offpolicy_inputs(kind: str = "vtrace", max_T: int = 10) -> Any:
    """Hypothesis strategy of :class:`Call` s for the off-policy formulas: the realistic rollouts
    of :func:`pgmath.testing.strategies.rollouts` (every episode-end pattern) with log-ratios in
    [−2, 2] (multiples of 1/4; −inf sometimes) and, for V-trace, clip levels ρ̄, c̄, ρ̄_pg drawn
    independently (so a c clipped with ρ̄ is reachable). ``kind``: ``"vtrace"``, ``"retrace"``,
    ``"tree_backup"``, ``"q_lambda"``, ``"pdis"``."""
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from pgmath.testing.strategies import rollouts

    quarter = st.integers(-8, 8).map(lambda i: i / 4)
    bars = st.sampled_from([0.0, 0.5, 1.0, 1.5, 3.0])

    def build(args: tuple) -> Call:
        c, lr, rho_bar, c_bar, pg_bar = args
        lr_t = torch.as_tensor(lr, dtype=c.rewards.dtype)
        if kind == "vtrace":
            return Call((lr_t, *tuple(c)), {"gamma": c.gamma, "lam": c.lam, "rho_bar": rho_bar, "c_bar": c_bar,
                                         "pg_rho_bar": pg_bar})
        if kind == "retrace":
            return Call((lr_t, *tuple(c)), {"gamma": c.gamma, "lam": c.lam})
        if kind == "tree_backup":
            return Call((-lr_t.abs(), *tuple(c)), {"gamma": c.gamma, "lam": c.lam})
        if kind == "q_lambda":
            return Call(tuple(c), {"gamma": c.gamma, "lam": c.lam})
        return Call((lr_t.clamp(max=1.0), c.rewards, c.next_values, c.terminated, c.truncated),
                    {"gamma": c.gamma})

    def with_ratios(c: Rollout) -> Any:
        elems = st.one_of(quarter, st.just(-float("inf"))) if kind != "pdis" else quarter
        return st.tuples(st.just(c), arrays(np.float64, tuple(c.rewards.shape), elements=elems),
                         bars, bars, st.one_of(st.none(), bars))

    return rollouts(max_T=max_T).flatmap(with_ratios).map(build)


def _rollout_bad_inputs(f_call: Callable[..., Any], extra_kw: dict[str, Any],
                        with_ratios: bool = True) -> tuple[BadInput, ...]:
    """The bad inputs every off-policy formula refuses (``f_call(impl, lr, r, v, nv, term, trunc,
    **kw)`` puts them in its signature)."""
    def z(d):
        return torch.zeros(5, 2, dtype=F64, device=d)

    def f0(d):
        return torch.zeros(5, 2, dtype=torch.bool, device=d)

    def with_value(d, val):
        x = z(d)
        x[2, 1] = val
        return x

    kw = {"gamma": 0.9, **extra_kw}
    cases = [
        BadInput("NaN reward", lambda f, d: f_call(f, z(d), with_value(d, float("nan")), z(d), z(d), f0(d), f0(d), **kw),
                 "rewards"),
        BadInput("inf next value", lambda f, d: f_call(f, z(d), z(d), z(d), with_value(d, float("inf")), f0(d), f0(d),
                                                       **kw), "next_values"),
        BadInput("next_values shape", lambda f, d: f_call(f, z(d), z(d), z(d), z(d)[:, :1], f0(d), f0(d), **kw),
                 "next_values"),
        BadInput("gamma > 1", lambda f, d: f_call(f, z(d), z(d), z(d), z(d), f0(d), f0(d), **{**kw, "gamma": 1.5}),
                 "gamma"),
        BadInput("truncated holds 0.5", lambda f, d: f_call(f, z(d), z(d), z(d), z(d), f0(d), z(d) + 0.5, **kw),
                 "truncated"),
        BadInput("empty time axis", lambda f, d: f_call(f, z(d)[:0], z(d)[:0], z(d)[:0], z(d)[:0], f0(d)[:0], f0(d)[:0],
                                                        **kw), "rewards"),
    ]
    if with_ratios:
        cases += [
            BadInput("log-ratio NaN", lambda f, d: f_call(f, with_value(d, float("nan")), z(d), z(d), z(d), f0(d), f0(d),
                                                          **kw), "log"),
            BadInput("log-ratio +inf (μ = 0 where π > 0)",
                     lambda f, d: f_call(f, with_value(d, float("inf")), z(d), z(d), z(d), f0(d), f0(d), **kw), "log"),
            BadInput("log-ratio shape", lambda f, d: f_call(f, z(d)[:, :1], z(d), z(d), z(d), f0(d), f0(d), **kw), "log"),
        ]
    return tuple(cases)


# ---------------------------------------------------------------------------------------------
# V-trace


def vtrace_stacked(fn: Callable[..., Any]) -> Callable[..., torch.Tensor]:
    """``fn`` (V-trace's signature, returning ``(value_targets, pg_advantages)``) as one function
    returning them stacked, ``[2, T, *B]`` — the signature of the V-trace spec."""

    @functools.wraps(fn)
    def stacked(*args: Any, **kwargs: Any) -> torch.Tensor:
        vs, pg = fn(*args, **kwargs)
        return torch.stack([torch.as_tensor(vs), torch.as_tensor(pg)])

    return stacked


def vtrace_unstacked(fn: Callable[..., Any]) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """A function of the stacked V-trace signature as one returning ``(value_targets,
    pg_advantages)``, V-trace's own signature (what ``check_vtrace`` calls)."""

    @functools.wraps(fn)
    def pair(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = fn(*args, **kwargs)
        return out[0], out[1]

    return pair


def _vtrace_variant(name: str, doc: str, *, c_clip: str = "c_bar", pg_next: str = "next", use_lam: bool = True,
                    cut_truncation: bool = True, boot_truncation: bool = True, pg_clip: str = "pg",
                    weight_delta: bool = True, double_boot: bool = False) -> Callable[..., torch.Tensor]:
    """A V-trace by a plain loop with one slip (stacked signature)."""

    def fn(log_rhos, rewards, values, next_values, terminated, truncated, *, gamma, lam=1.0, rho_bar=1.0,
           c_bar=1.0, pg_rho_bar=None):
        term, trunc = terminated.bool(), truncated.bool()
        pg_bar = rho_bar if pg_rho_bar is None else pg_rho_bar
        T = rewards.shape[0]
        vs, pg = torch.empty_like(rewards), torch.empty_like(rewards)
        a_next = torch.zeros_like(rewards[0])
        for t in range(T - 1, -1, -1):
            rho = log_rhos[t].exp()
            boot_ok = ~term[t] if boot_truncation else ~(term[t] | trunc[t])
            not_term = boot_ok.to(rewards.dtype)
            cut = term[t] | trunc[t] if cut_truncation else term[t]
            goes_on = ~cut & (t < T - 1)
            td = rewards[t] + gamma * not_term * next_values[t] - values[t]
            delta = rho.clamp(max=rho_bar) * td if weight_delta else td
            c = rho.clamp(max=rho_bar if c_clip == "rho_bar" else c_bar) * (lam if use_lam else 1.0)
            a = delta + torch.where(goes_on, gamma * c * a_next, torch.zeros_like(a_next))
            if double_boot and t == T - 1:  # the carry seeded with V(s_T) as well
                a = a + torch.where(cut, torch.zeros_like(a), gamma * c * next_values[t])
            vs[t] = values[t] + a
            if pg_next == "own":  # vₜ instead of vₜ₊₁
                v_plus = vs[t]
            elif pg_next == "crosses" and t < T - 1:  # vₜ₊₁ read across the episode boundary
                v_plus = vs[t + 1]
            else:
                v_plus = torch.where(goes_on, vs[t + 1] if t < T - 1 else next_values[t], next_values[t])
            w = rho if pg_clip == "none" else rho.clamp(max=c_bar if pg_clip == "c_bar" else pg_bar)
            pg[t] = w * (rewards[t] + gamma * not_term * v_plus - values[t])
            a_next = a
        return torch.stack([vs, pg])

    fn.__name__ = name
    fn.__doc__ = doc
    return fn


#: check_vtrace settings with ρ̄ ≠ c̄, under which the clip-level mix-ups show.
_DISTINCT_CLIPS = {"rho_bar": 1.5, "c_bar": 0.7}


def _vt(name: str, bug: str, seen_in: str, options: dict[str, Any] | None = None, **slip: Any) -> WrongVariant:
    return WrongVariant(name, bug, seen_in, _vtrace_variant(name, bug, **slip), options=options or {})


VTRACE_VARIANTS: tuple[WrongVariant, ...] = (
    _vt("vtrace_c_clipped_with_rho_bar", "trace cₜ clipped at ρ̄ instead of c̄",
        "derivation (one clip level for both: the IMPALA paper's experiments use ρ̄ = c̄ = 1, hiding it)",
        options=_DISTINCT_CLIPS, c_clip="rho_bar"),
    _vt("vtrace_pg_uses_vs", "policy-gradient advantage bootstraps from vₜ instead of vₜ₊₁",
        "Espeholt et al. §4.2 (the advantage is rₜ + γvₜ₊₁ − V(sₜ)); derivation", pg_next="own"),
    _vt("vtrace_missing_lambda", "λ not applied to the trace (cₜ = min(c̄, ρₜ))", "derivation",
        use_lam=False),
    _vt("vtrace_trace_crosses_truncation", "the trace is not cut at a truncation (only at termination)",
        "rlax.vtrace has no truncation flag (discount_t = 0 only at termination); derivation",
        cut_truncation=False),
    _vt("vtrace_no_truncation_bootstrap", "truncation treated as termination: no bootstrap after a time limit",
        "the done/terminated mix-up of TorchRL's value estimators (pytorch/rl#1581, #2773)",
        boot_truncation=False),
    _vt("vtrace_pg_crosses_episode", "the advantage's vₜ₊₁ is read from the next episode at an episode end",
        "pytorch/rl#4209, fixed by pytorch/rl#4210 (TorchRL's vtrace_advantage_estimate at in-batch "
        "truncations)", pg_next="crosses"),
    _vt("vtrace_pg_unclipped", "policy-gradient weight ρₜ left unclipped (ρ̄_pg ignored)", "derivation",
        pg_clip="none"),
    _vt("vtrace_pg_clipped_with_c_bar", "policy-gradient weight clipped at c̄ instead of ρ̄", "derivation",
        options=_DISTINCT_CLIPS, pg_clip="c_bar"),
    _vt("vtrace_unweighted_td", "TD errors not weighted by min(ρ̄, ρₜ)", "derivation", weight_delta=False),
    _vt("vtrace_bootstrap_double_counted", "the rollout-end bootstrap V(s_T) used in δ_{T−1} and also as the "
        "scan's initial carry", "simonsays1980/rl-triton#4 (GAE and V-trace kernels)", double_boot=True),
)


def _vtrace_settings() -> list[dict[str, Any]]:
    return [
        {"gamma": 0.99, "lam": 1.0, "rho_bar": 1.0, "c_bar": 1.0},
        {"gamma": 0.9, "lam": 0.8, "rho_bar": 1.5, "c_bar": 0.7, "pg_rho_bar": 2.0},
        {"gamma": 1.0, "lam": 0.5, "rho_bar": 0.6, "c_bar": 1.3},
        {"gamma": 0.0, "lam": 0.9, "rho_bar": 1.0, "c_bar": 1.0},
    ]


def _vtrace_vs_reference(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for lr, ro in offpolicy_suite(ctx, 60):
        for kw in _vtrace_settings():
            want = vtrace_stacked(vtrace_reference)(lr, *ro, **kw)
            err = max(err, max_abs_error(impl(lr, *ro, **kw), want))
    return outcome_within(err)


def _vtrace_expansion(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for lr, ro in offpolicy_suite(ctx, 61)[:3]:
        for kw in _vtrace_settings()[1:3]:
            err = max(err, max_abs_error(impl(lr, *ro, **kw), vtrace_by_expansion(lr, ro, **kw)))
    return outcome_within(err)


def _vtrace_on_policy(impl: Callable, ctx: VerifyContext) -> Outcome:
    """ρ ≡ 1, ρ̄, c̄ ≥ 1: vₜ = the λ-return (pgmath.lambda_returns); at λ = 1 the advantage is
    GAE(γ, 1) = Gₜ − V(sₜ)."""
    err = 0.0
    for _, ro in offpolicy_suite(ctx, 62):
        zero = torch.zeros_like(ro.rewards)
        for gamma, lam, bar in [(0.9, 0.7, 1.0), (0.99, 1.0, 2.0), (1.0, 0.0, 1.0)]:
            out = impl(zero, *ro, gamma=gamma, lam=lam, rho_bar=bar, c_bar=bar)
            err = max(err, max_abs_error(out[0], lambda_returns(*ro, gamma=gamma, lam=lam, backend="reference")))
            if lam == 1.0:
                err = max(err, max_abs_error(out[1], gae_reference(*ro, gamma=gamma, lam=1.0)))
    return outcome_within(err)


def _vtrace_lambda0(impl: Callable, ctx: VerifyContext) -> Outcome:
    """λ = 0: vₜ = V(sₜ) + min(ρ̄, ρₜ)δₜ (one-step target), whatever the episode ends."""
    err = 0.0
    for lr, ro in offpolicy_suite(ctx, 63):
        td = ro.rewards + 0.9 * (~ro.terminated).to(F64) * ro.next_values - ro.values
        out = impl(lr, *ro, gamma=0.9, lam=0.0, rho_bar=1.2, c_bar=0.8)
        err = max(err, max_abs_error(out[0], ro.values + lr.exp().clamp(max=1.2) * td))
    return outcome_within(err)


def _vtrace_bad_inputs() -> tuple[BadInput, ...]:
    def call(f, lr, r, v, nv, term, trunc, **kw):
        return f(lr, r, v, nv, term, trunc, **kw)

    z = lambda d: torch.zeros(4, dtype=F64, device=d)  # noqa: E731
    f0 = lambda d: torch.zeros(4, dtype=torch.bool, device=d)  # noqa: E731
    return (
        *_rollout_bad_inputs(call, {"lam": 0.9}),
        BadInput("rho_bar < 0", lambda f, d: f(z(d), z(d), z(d), z(d), f0(d), f0(d), gamma=0.9, rho_bar=-1.0), "rho_bar"),
        BadInput("c_bar < 0", lambda f, d: f(z(d), z(d), z(d), z(d), f0(d), f0(d), gamma=0.9, c_bar=-0.1), "c_bar"),
        BadInput("pg_rho_bar NaN", lambda f, d: f(z(d), z(d), z(d), z(d), f0(d), f0(d), gamma=0.9,
                                                  pg_rho_bar=float("nan")), "pg_rho_bar"),
        BadInput("lam > 1", lambda f, d: f(z(d), z(d), z(d), z(d), f0(d), f0(d), gamma=0.9, lam=1.5), "lam"),
        BadInput("values NaN", lambda f, d: f(z(d), z(d), z(d) + float("nan"), z(d), f0(d), f0(d), gamma=0.9), "values"),
    )


def _vtrace_backend(name: str) -> Callable[..., torch.Tensor]:
    return vtrace_stacked(functools.partial(vtrace, backend=name))


VTRACE = Spec(
    name="vtrace",
    title="V-trace (vₜ, Âₜ)",
    area="core",
    formula=("vₜ − V(sₜ) = min(ρ̄, ρₜ)δₜ + γcₜ(vₜ₊₁ − V(sₜ₊₁)), cₜ = λ·min(c̄, ρₜ), cut at every episode end; "
             "Âₜ = min(ρ̄_pg, ρₜ)(rₜ + γ(1 − termₜ)vₜ₊₁ − V(sₜ)), vₜ₊₁ := V(sₜ₊₁) at an episode end"),
    source="Espeholt et al. (2018), IMPALA, eq. (1), Remark 1 (λ), §4.2 (advantage)",
    function=vtrace_stacked(vtrace),
    reference=vtrace_stacked(vtrace_reference),
    implementations={
        "auto": vtrace_stacked(vtrace),
        **{n: _vtrace_backend(n) for n in backends(vtrace) if n != "auto"},
        "reference": vtrace_stacked(vtrace_reference),
    },
    properties=(
        Property("fast_equals_reference", "fast scan == reference loop, float64 (ρ̄, c̄, λ, ρ̄_pg varied)",
                 _vtrace_vs_reference),
        Property("expansion", "vₜ = V + Σ γᵏ⁻ᵗ(Π cᵢ) min(ρ̄, ρₖ)δₖ and Âₜ from vₜ₊₁, summed term by term",
                 _vtrace_expansion),
        Property("on_policy", "ρ ≡ 1, ρ̄, c̄ ≥ 1: vₜ = λ-return; λ = 1: Âₜ = GAE(γ, 1)", _vtrace_on_policy),
        Property("lambda0", "λ = 0: vₜ = V(sₜ) + min(ρ̄, ρₜ)δₜ", _vtrace_lambda0),
    ),
    wrong_variants=VTRACE_VARIANTS,
    bad_inputs=_vtrace_bad_inputs(),
    inputs=functools.partial(offpolicy_inputs, "vtrace"),
    doc="docs/formulas/vtrace.md",
    proof="pgmath.proofs.vtrace",
    harness="check_vtrace",
    extra={"cpu_only": ("numba",), "proof_keyword": "impl", "harness_form": vtrace_unstacked},
)

# ---------------------------------------------------------------------------------------------
# Retrace and the Retrace-type Q targets


def _retrace_variant(name: str, doc: str, *, trace: str = "next", clip: bool = True, use_lam: bool = True,
                     cut_truncation: bool = True, boot_terminal: bool = False) -> Callable[..., torch.Tensor]:
    """A Retrace by a plain loop with one slip."""

    def fn(log_rhos, rewards, q_values, next_values, terminated, truncated, *, gamma, lam=1.0):
        term, trunc = terminated.bool(), truncated.bool()
        rho = log_rhos.exp()
        c = (rho.clamp(max=1.0) if clip else rho) * (lam if use_lam else 1.0)
        T = rewards.shape[0]
        out = torch.empty_like(rewards)
        for t in range(T - 1, -1, -1):
            not_term = torch.ones_like(rewards[t]) if boot_terminal else (~term[t]).to(rewards.dtype)
            follow = next_values[t]
            if t < T - 1:
                cut = term[t] | trunc[t] if cut_truncation else term[t]
                ct = c[t + 1] if trace == "next" else c[t]
                follow = follow + torch.where(~cut, ct * (out[t + 1] - q_values[t + 1]), torch.zeros_like(follow))
            out[t] = rewards[t] + gamma * not_term * follow
        return out

    fn.__name__ = name
    fn.__doc__ = doc
    return fn


def _rt(name: str, bug: str, seen_in: str, **slip: Any) -> WrongVariant:
    return WrongVariant(name, bug, seen_in, _retrace_variant(name, bug, **slip))


RETRACE_VARIANTS: tuple[WrongVariant, ...] = (
    _rt("retrace_trace_current_step", "trace after step t uses cₜ (the ratio of aₜ) instead of cₜ₊₁",
        "derivation (the index shift between V-trace's cₜ and Retrace's cₜ₊₁)", trace="current"),
    _rt("retrace_unclipped_trace", "trace cₛ = λρₛ not truncated at 1 (plain importance sampling)",
        "Munos et al. (2016), Table 1 (the IS row: unbounded variance)", clip=False),
    _rt("retrace_missing_lambda", "λ not applied to the trace", "derivation", use_lam=False),
    _rt("retrace_trace_crosses_truncation", "the trace is not cut at a truncation (only at termination)",
        "rlax.retrace has no truncation flag (discount_t = 0 only at termination); derivation",
        cut_truncation=False),
    _rt("retrace_bootstrap_through_termination", "E_π Q(sₜ₊₁,·) bootstrapped even when sₜ₊₁ is terminal",
        "derivation (the TD-error slip of thu-ml/tianshou#869)", boot_terminal=True),
)


def _q_settings() -> list[tuple[float, float]]:
    return [(0.99, 1.0), (0.9, 0.8), (1.0, 0.3), (0.0, 0.9)]


def _q_vs_reference(reference: Callable, kind: str) -> Callable[[Callable, VerifyContext], Outcome]:
    def run(impl: Callable, ctx: VerifyContext) -> Outcome:
        err = 0.0
        for lr, ro in offpolicy_suite(ctx, 70):
            for gamma, lam in _q_settings():
                args = _q_args(kind, lr, ro)
                err = max(err, max_abs_error(impl(*args, gamma=gamma, lam=lam),
                                             reference(*args, gamma=gamma, lam=lam)))
        return outcome_within(err)

    return run


def _q_args(kind: str, lr: torch.Tensor, ro: Rollout) -> tuple:
    if kind == "retrace":
        return (lr, *ro)
    if kind == "tree_backup":
        return (-lr.abs(), *ro)
    return tuple(ro)


def _q_traces(kind: str, lr: torch.Tensor, lam: float) -> torch.Tensor:
    if kind == "retrace":
        return lam * lr.exp().clamp(max=1.0)
    if kind == "tree_backup":
        return lam * (-lr.abs()).exp()
    return torch.full_like(lr, lam)


def _q_expansion(kind: str) -> Callable[[Callable, VerifyContext], Outcome]:
    def run(impl: Callable, ctx: VerifyContext) -> Outcome:
        err = 0.0
        for lr, ro in offpolicy_suite(ctx, 71)[:3]:
            for gamma, lam in _q_settings()[1:3]:
                want = q_targets_by_expansion(_q_traces(kind, lr, lam), ro, gamma=gamma)
                err = max(err, max_abs_error(impl(*_q_args(kind, lr, ro), gamma=gamma, lam=lam), want))
        return outcome_within(err)

    return run


def _q_lambda0(kind: str) -> Callable[[Callable, VerifyContext], Outcome]:
    """λ = 0: Gₜ = rₜ + γ(1 − termₜ)E_π Q(sₜ₊₁,·), the one-step (expected-SARSA) target."""

    def run(impl: Callable, ctx: VerifyContext) -> Outcome:
        err = 0.0
        for lr, ro in offpolicy_suite(ctx, 72):
            want = ro.rewards + 0.9 * (~ro.terminated).to(F64) * ro.next_values
            err = max(err, max_abs_error(impl(*_q_args(kind, lr, ro), gamma=0.9, lam=0.0), want))
        return outcome_within(err)

    return run


def _retrace_on_policy(impl: Callable, ctx: VerifyContext) -> Outcome:
    """π = μ (log ρ ≡ 0): Retrace(λ) = Q(λ) (Harutyunyan et al.); ρ ≤ 1 everywhere: the traces
    λ min(1, ρ) = λρ, so Retrace = the importance-sampling targets (expansion with cₛ = λρₛ)."""
    err = 0.0
    for lr, ro in offpolicy_suite(ctx, 73):
        zero = torch.zeros_like(lr)
        for gamma, lam in _q_settings():
            err = max(err, max_abs_error(impl(zero, *ro, gamma=gamma, lam=lam),
                                         q_lambda_reference(*ro, gamma=gamma, lam=lam)))
    for lr, ro in offpolicy_suite(ctx, 74)[:3]:
        low = -lr.abs()
        want = q_targets_by_expansion(0.7 * low.exp(), ro, gamma=0.9)
        err = max(err, max_abs_error(impl(low, *ro, gamma=0.9, lam=0.7), want))
    return outcome_within(err)


def _q_bad_inputs(kind: str) -> tuple[BadInput, ...]:
    def call(f, lr, r, q, nv, term, trunc, **kw):
        if kind == "q_lambda":
            return f(r, q, nv, term, trunc, **kw)
        return f(lr, r, q, nv, term, trunc, **kw)

    z = lambda d: torch.zeros(4, dtype=F64, device=d)  # noqa: E731
    f0 = lambda d: torch.zeros(4, dtype=torch.bool, device=d)  # noqa: E731
    cases = list(_rollout_bad_inputs(call, {"lam": 0.9}, with_ratios=kind != "q_lambda"))
    cases.append(BadInput("lam < 0", lambda f, d: call(f, z(d), z(d), z(d), z(d), f0(d), f0(d), gamma=0.9, lam=-0.5),
                          "lam"))
    cases.append(BadInput("q_values NaN", lambda f, d: call(f, z(d), z(d), z(d) + float("nan"), z(d), f0(d), f0(d),
                                                            gamma=0.9, lam=0.5), "q_values"))
    if kind == "tree_backup":
        cases.append(BadInput("log-probability > 0", lambda f, d: f(z(d) + 0.5, z(d), z(d), z(d), f0(d), f0(d),
                                                                     gamma=0.9), "target_log_probs"))
    return tuple(cases)


def _q_properties(kind: str, reference: Callable) -> tuple[Property, ...]:
    return (
        Property("fast_equals_reference", "fast scan == reference loop, float64", _q_vs_reference(reference, kind)),
        Property("expansion", "Gₜ = Q + Σ γᵏ⁻ᵗ(Πⱼ₌ₜ₊₁ᵏ cⱼ)δₖ summed term by term", _q_expansion(kind)),
        Property("lambda0", "λ = 0: Gₜ = rₜ + γ(1 − termₜ)E_π Q(sₜ₊₁,·)", _q_lambda0(kind)),
    )


def _q_impls(fn: Callable, reference: Callable) -> dict[str, Callable]:
    return {**backends(fn), "reference": reference}


RETRACE = Spec(
    name="retrace",
    title="Retrace(λ)",
    area="core",
    formula="Gₜ = rₜ + γ(1 − termₜ)[E_π Q(sₜ₊₁,·) + cₜ₊₁(Gₜ₊₁ − Q(sₜ₊₁,aₜ₊₁))], cₛ = λ·min(1, ρₛ), cut at every "
            "episode end",
    source="Munos, Stepleton, Harutyunyan & Bellemare (2016), eq. (3) and Table 1",
    function=retrace,
    reference=retrace_reference,
    implementations=_q_impls(retrace, retrace_reference),
    properties=(*_q_properties("retrace", retrace_reference),
                Property("on_policy", "π = μ: Retrace = Q(λ); ρ ≤ 1: Retrace = importance sampling",
                         _retrace_on_policy)),
    wrong_variants=RETRACE_VARIANTS,
    bad_inputs=_q_bad_inputs("retrace"),
    inputs=functools.partial(offpolicy_inputs, "retrace"),
    doc="docs/formulas/retrace.md",
    harness="check_retrace",
    extra={"cpu_only": ("numba",)},
)

TREE_BACKUP = Spec(
    name="tree_backup",
    title="Tree-backup(λ)",
    area="core",
    formula="Retrace's recursion with cₛ = λ·π(aₛ|sₛ)",
    source="Precup, Sutton & Singh (2000); Munos et al. (2016), Table 1",
    function=tree_backup,
    reference=tree_backup_reference,
    implementations=_q_impls(tree_backup, tree_backup_reference),
    properties=_q_properties("tree_backup", tree_backup_reference),
    bad_inputs=_q_bad_inputs("tree_backup"),
    inputs=functools.partial(offpolicy_inputs, "tree_backup"),
    doc="docs/formulas/retrace.md",
    extra={"cpu_only": ("numba",)},
)

Q_LAMBDA = Spec(
    name="q_lambda",
    title="Q(λ) with off-policy corrections",
    area="core",
    formula="Retrace's recursion with cₛ = λ",
    source="Harutyunyan, Bellemare, Stepleton & Munos (2016); Munos et al. (2016), Table 1",
    function=q_lambda,
    reference=q_lambda_reference,
    implementations=_q_impls(q_lambda, q_lambda_reference),
    properties=_q_properties("q_lambda", q_lambda_reference),
    bad_inputs=_q_bad_inputs("q_lambda"),
    inputs=functools.partial(offpolicy_inputs, "q_lambda"),
    doc="docs/formulas/retrace.md",
    extra={"cpu_only": ("numba",)},
)

# ---------------------------------------------------------------------------------------------
# per-decision importance sampling and the general recursion


def _pdis_vs_reference(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for lr, ro in offpolicy_suite(ctx, 80):
        for gamma in (0.99, 0.5, 1.0, 0.0):
            args = (lr, ro.rewards, ro.next_values, ro.terminated, ro.truncated)
            err = max(err, max_abs_error(impl(*args, gamma=gamma), per_decision_is_returns_reference(*args, gamma=gamma)))
    return outcome_within(err)


def _pdis_on_policy(impl: Callable, ctx: VerifyContext) -> Outcome:
    """ρ ≡ 1: the discounted returns bootstrapped at cuts (pgmath.discounted_returns)."""
    err = 0.0
    for _, ro in offpolicy_suite(ctx, 81):
        for gamma in (0.9, 1.0):
            want = discounted_returns_reference(ro.rewards, ro.terminated, ro.truncated, gamma=gamma,
                                                next_values=ro.next_values)
            got = impl(torch.zeros_like(ro.rewards), ro.rewards, ro.next_values, ro.terminated, ro.truncated,
                       gamma=gamma)
            err = max(err, max_abs_error(got, want))
    return outcome_within(err)


def _pdis_definition(impl: Callable, ctx: VerifyContext) -> Outcome:
    """Gₜ = Σₖ₌ₜᵉ γᵏ⁻ᵗ (Πᵢ₌ₜᵏ ρᵢ) rₖ (+ γᵉ⁺¹⁻ᵗ Πρ V(s_{e+1}) if the episode was cut), term by term."""
    err = 0.0
    for lr, ro in offpolicy_suite(ctx, 82)[:3]:
        r, nv, term, rho = (_flat(x) for x in (ro.rewards, ro.next_values, ro.terminated, lr.exp()))
        ends = _ends(ro)
        want = torch.zeros_like(r)
        for j in range(r.shape[1]):
            for t in range(r.shape[0]):
                total, prod, k = 0.0, 1.0, t
                while True:
                    prod *= float(rho[k, j])
                    total += 0.9 ** (k - t) * prod * float(r[k, j])
                    if bool(ends[k, j]):
                        total += 0.9 ** (k + 1 - t) * prod * (not bool(term[k, j])) * float(nv[k, j])
                        break
                    k += 1
                want[t, j] = total
        got = impl(lr, ro.rewards, ro.next_values, ro.terminated, ro.truncated, gamma=0.9)
        err = max(err, max_abs_error(got, want.reshape(ro.rewards.shape)))
    return outcome_within(err)


def pdis_ratio_on_bootstrap_missing(log_rhos, rewards, next_values, terminated, truncated, *, gamma):
    """Gₜ = ρₜrₜ + γ V(sₜ₊₁) at a cut: the bootstrap not weighted by ρₜ."""
    term, trunc = terminated.bool(), truncated.bool()
    T = rewards.shape[0]
    out = torch.empty_like(rewards)
    for t in range(T - 1, -1, -1):
        rho = log_rhos[t].exp()
        cut = trunc[t] | (t == T - 1)
        nt = (~term[t]).to(rewards.dtype)
        inside = rho * (rewards[t] + gamma * nt * (out[t + 1] if t < T - 1 else next_values[t]))
        at_cut = rho * rewards[t] + gamma * nt * next_values[t]
        out[t] = torch.where(cut | term[t], at_cut, inside)
    return out


def pdis_whole_trajectory_weight(log_rhos, rewards, next_values, terminated, truncated, *, gamma):
    """Every reward of the episode weighted by the ratio product of the *whole* episode."""
    term, trunc = terminated.bool(), truncated.bool()
    stop = term | trunc
    stop[-1] = True
    T = rewards.shape[0]
    plain = discounted_returns_reference(rewards, terminated, truncated, gamma=gamma, next_values=next_values)
    out = torch.empty_like(rewards)
    w = torch.ones_like(rewards[0])
    for t in range(T - 1, -1, -1):
        w = torch.where(stop[t], log_rhos[t].exp(), log_rhos[t].exp() * w)
        out[t] = w * plain[t]
    return out


PDIS = Spec(
    name="per_decision_is_returns",
    title="per-decision importance-sampling return",
    area="core",
    formula="Gₜ = ρₜ(rₜ + γGₜ₊₁) inside an episode; ρₜ(rₜ + γ(1 − termₜ)V(sₜ₊₁)) where it is cut",
    source="Precup, Sutton & Singh (2000), eq. for the per-decision IS estimator",
    function=per_decision_is_returns,
    reference=per_decision_is_returns_reference,
    implementations={**backends(per_decision_is_returns), "reference": per_decision_is_returns_reference},
    properties=(
        Property("fast_equals_reference", "fast scan == reference loop, float64", _pdis_vs_reference),
        Property("definition", "== Σ γᵏ⁻ᵗ(Πᵢ₌ₜᵏ ρᵢ)rₖ (+ bootstrap) summed term by term", _pdis_definition),
        Property("on_policy", "ρ ≡ 1: the bootstrapped discounted returns", _pdis_on_policy),
    ),
    wrong_variants=(
        WrongVariant("pdis_ratio_on_bootstrap_missing", "the bootstrap at a cut is not weighted by ρₜ", "derivation",
                     pdis_ratio_on_bootstrap_missing),
        WrongVariant("pdis_whole_trajectory_weight", "every reward weighted by the whole episode's Πρ "
                     "(ordinary, not per-decision, importance sampling)", "Precup et al. (2000): the higher-variance "
                     "estimator the per-decision one replaces; derivation", pdis_whole_trajectory_weight),
    ),
    bad_inputs=_rollout_bad_inputs(
        lambda f, lr, r, v, nv, term, trunc, **kw: f(lr, r, nv, term, trunc, **kw), {}),
    inputs=functools.partial(offpolicy_inputs, "pdis"),
    doc="docs/formulas/retrace.md",
    extra={"cpu_only": ("numba",)},
)


def _trace_vs_reference(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for lr, ro in offpolicy_suite(ctx, 90):
        for gamma in (0.99, 0.5, 1.0):
            args = (ro.rewards, lr.exp(), ro.terminated, ro.truncated)
            err = max(err, max_abs_error(impl(*args, gamma=gamma), trace_recursion_reference(*args, gamma=gamma)))
    return outcome_within(err)


def _trace_is_gae(impl: Callable, ctx: VerifyContext) -> Outcome:
    """κ ≡ λ, δ = TD errors: the recursion is GAE(γ, λ) (pgmath.gae_reference)."""
    err = 0.0
    for _, ro in offpolicy_suite(ctx, 91):
        td = ro.rewards + 0.95 * (~ro.terminated).to(F64) * ro.next_values - ro.values
        got = impl(td, torch.full_like(td, 0.8), ro.terminated, ro.truncated, gamma=0.95)
        err = max(err, max_abs_error(got, gae_reference(*ro, gamma=0.95, lam=0.8)))
    return outcome_within(err)


TRACE_RECURSION = Spec(
    name="trace_recursion",
    title="off-policy trace recursion",
    area="core",
    formula="aₜ = δₜ + γκₜaₜ₊₁ inside an episode; aₜ = δₜ where it ends at t or t = T − 1",
    source="Munos et al. (2016), eq. (3) (the general operator); Espeholt et al. (2018), eq. (1)",
    function=trace_recursion,
    reference=trace_recursion_reference,
    implementations={**backends(trace_recursion), "reference": trace_recursion_reference},
    properties=(
        Property("fast_equals_reference", "fast scan == reference loop, float64", _trace_vs_reference),
        Property("gae", "κ ≡ λ, δ = TD errors: == GAE(γ, λ)", _trace_is_gae),
    ),
    doc="docs/formulas/retrace.md",
    extra={"cpu_only": ("numba",)},
)

FAMILY: tuple[Spec, ...] = (VTRACE, RETRACE, TREE_BACKUP, Q_LAMBDA, PDIS, TRACE_RECURSION)
