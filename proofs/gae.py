"""Generalized advantage estimation on a symbolic length-4 rollout, with pgmath's episode ends.

Symbols: rewards r₀…r₃, values Vₜ = V(sₜ), next values V'ₜ = V(sₜ₊₁) (independent of Vₜ₊₁: at a
truncation V'ₜ is the value of the real final observation, not of the next episode's first),
terminated flags τₜ (sₜ₊₁ terminal) and truncated flags κₜ (episode cut after step t), γ and λ:

    δₜ = rₜ + γ (1 − τₜ) V'ₜ − Vₜ
    Âₜ = δₜ + γλ (1 − τₜ)(1 − κₜ) Âₜ₊₁  (t < T − 1),   Â_{T−1} = δ_{T−1}     (recursion, pgmath.gae)
    Âₜ = Σₖ (γλ)ᵏ (Π_{j<k} (1 − τₜ₊ⱼ)(1 − κₜ₊ⱼ)) δₜ₊ₖ                       (series, Schulman et al. 2016 eq. 16)

The rollout's end stops the trace but bootstraps (δ_{T−1} uses V'_{T−1}). Statements, for every
0/1 pattern of the flags (decided exactly on the multilinear form, :func:`~.core.flag_reduce`):

1. the recursion equals the series;
2. λ = 0 gives Âₜ = δₜ (the TD error of pgmath.td_errors);
3. λ = 1 telescopes to Âₜ = Gₜ − Vₜ with Gₜ the bootstrapped return of pgmath.discounted_returns
   (bootstrapping from V'ₜ at a truncation and at the rollout's end) — for a consistent critic,
   V'ₜ = Vₜ₊₁ wherever the episode goes on (the difference is γ(1−τₜ)(1−κₜ)(V'ₜ − Vₜ₊₁) otherwise);
4. Âₜ + Vₜ = G^λₜ, the λ-return of pgmath.lambda_returns in its recursive form
   G^λₜ = rₜ + γ(1 − τₜ)[(1 − λcₜ)V'ₜ + λcₜG^λₜ₊₁], cₜ = (1 − κₜ)[t < T − 1] (consistent critic);
5. with no episode end in the rollout, Âₜ + Vₜ is the forward-view λ-return
   (1 − λ) Σ_{n=1}^{N−1} λⁿ⁻¹ Gₜ⁽ⁿ⁾ + λᴺ⁻¹ Gₜ⁽ᴺ⁾ (N = T − t, Gₜ⁽ⁿ⁾ the n-step bootstrapped
   return; Sutton & Barto 2018, §12.1).

Numeric claims tie the proof to the code: ``impl`` (pgmath.gae), ``td_impl`` (pgmath.td_errors)
and ``lambda_returns_impl`` (pgmath.lambda_returns) are called as
``impl(rewards, values, next_values, terminated, truncated, gamma=, lam=)`` on float64 ``[T]``,
``[T, 256]`` and ``[T, 16, 16]`` rollouts with bool flags covering all 256 flag patterns of T = 4
(truncated or terminated at the last step included) and must equal the lambdified series (δ,
series + V) within 1e-10.

The claimed step of the backward recursion is the input
``step(r, v, v_next, term, trunc, last, a_next, gamma, lam)`` (flags as 0/1, ``last`` = 1 at
t = T − 1; the signature of the steps in pgmath.specs). Wrong steps are rejected, e.g.
``article_step`` — the source article's ``running_advantage = rewards[t] + gamma *
running_advantage * masks[t] - values[t]``, which never forms δₜ and has no λ —,
``lambda_on_wrong_term`` (λδₜ + γ(1−τ)(1−κ)Âₜ₊₁), ``missing_gamma`` and
``trace_crosses_truncation`` (the trace cut at terminations only).

Implementations: pgmath.gae / pgmath.gae_reference / pgmath.lambda_returns / pgmath.td_errors;
tests: tests/test_advantages.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sympy as sp

import pgmath

from .core import Claim, Comparison, ProofResult, agree, flag_reduce, identity, lambdify, run_module
from .returns import Rollout, bootstrapped_returns, rollout_points, rollout_symbols

TITLE = "GAE(γ, λ)"
STATEMENT = "recursion = Σ(γλ)ᵏΠ(1−τ)(1−κ)δₜ₊ₖ;  λ=0 → δₜ;  λ=1 → Gₜ − Vₜ;  A + V = λ-return"
IMPL = "pgmath.gae"
IMPLS = {"impl": "pgmath.gae", "td_impl": "pgmath.td_errors", "lambda_returns_impl": "pgmath.lambda_returns"}
T = 4

Step = Callable[[Any, Any, Any, Any, Any, Any, Any, Any, Any], Any]


def gae_step(r: Any, v: Any, v_next: Any, term: Any, trunc: Any, last: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """Âₜ = δₜ + γλ(1 − τₜ)(1 − κₜ)(1 − lastₜ)Âₜ₊₁ with δₜ = rₜ + γ(1 − τₜ)V'ₜ − Vₜ."""
    delta = r + gamma * (1 - term) * v_next - v
    return delta + gamma * lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def article_step(r: Any, v: Any, v_next: Any, term: Any, trunc: Any, last: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """WRONG (the source article's PPO code): rₜ + γ Aₜ₊₁ maskₜ − Vₜ, maskₜ = 1 − doneₜ."""
    mask = (1 - term) * (1 - trunc) * (1 - last)
    return r + gamma * a_next * mask - v


def lambda_on_wrong_term(r: Any, v: Any, v_next: Any, term: Any, trunc: Any, last: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """WRONG: λ multiplies δₜ instead of the carried advantage."""
    delta = r + gamma * (1 - term) * v_next - v
    return lam * delta + gamma * (1 - term) * (1 - trunc) * (1 - last) * a_next


def missing_gamma(r: Any, v: Any, v_next: Any, term: Any, trunc: Any, last: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """WRONG: the carried advantage decays by λ only."""
    delta = r + gamma * (1 - term) * v_next - v
    return delta + lam * (1 - term) * (1 - trunc) * (1 - last) * a_next


def trace_crosses_truncation(r: Any, v: Any, v_next: Any, term: Any, trunc: Any, last: Any, a_next: Any, gamma: Any, lam: Any) -> Any:
    """WRONG: the trace is cut at terminations only, so it leaks into the next episode."""
    delta = r + gamma * (1 - term) * v_next - v
    return delta + gamma * lam * (1 - term) * (1 - last) * a_next


def run_steps(
    step: Step,
    rewards: Sequence[Any],
    values: Sequence[Any],
    next_values: Sequence[Any],
    terminated: Sequence[Any],
    truncated: Sequence[Any],
    gamma: Any,
    lam: Any,
) -> list[Any]:
    """Âₜ = step(rₜ, Vₜ, V'ₜ, τₜ, κₜ, lastₜ, Âₜ₊₁, γ, λ) for t = T−1 … 0 (Â after the rollout: 0)."""
    n = len(rewards)
    adv: list[Any] = [0] * n
    a_next: Any = sp.Integer(0)
    # backward in time: t = T-1 … 0
    for t in reversed(range(n)):
        last = sp.Integer(1 if t == n - 1 else 0)
        a_next = step(rewards[t], values[t], next_values[t], terminated[t], truncated[t], last, a_next, gamma, lam)
        adv[t] = a_next
    return adv


def td_errors(ro: Rollout) -> list[Any]:
    """δₜ = rₜ + γ(1 − τₜ)V'ₜ − Vₜ."""
    return [
        r + ro.gamma * (1 - tau) * nv - v
        for r, v, nv, tau in zip(ro.rewards, ro.values, ro.next_values, ro.terminated)
    ]


def gae_series(ro: Rollout) -> list[Any]:
    """Âₜ = Σₖ (γλ)ᵏ (Π_{j<k} (1 − τₜ₊ⱼ)(1 − κₜ₊ⱼ)) δₜ₊ₖ."""
    delta = td_errors(ro)
    goes_on = [(1 - tau) * (1 - kap) for tau, kap in zip(ro.terminated, ro.truncated)]
    n = len(delta)
    return [
        sum((ro.gamma * ro.lam) ** k * sp.Mul(*goes_on[t : t + k]) * delta[t + k] for k in range(n - t))
        for t in range(n)
    ]


def consistent_next_values(ro: Rollout) -> list[Any]:
    """V'ₜ = Vₜ₊₁ where the episode goes on after step t; free (V'ₜ) where it ends or at t = T−1.

    Written as V'ₜ = Vₜ₊₁ + endₜ (V'ₜ − Vₜ₊₁) with endₜ = 1 − (1 − τₜ)(1 − κₜ), exact on 0/1 flags.
    """
    n = len(ro.rewards)
    out = []
    for t in range(n - 1):
        end = 1 - (1 - ro.terminated[t]) * (1 - ro.truncated[t])
        out.append(ro.values[t + 1] + end * (ro.next_values[t] - ro.values[t + 1]))
    return [*out, ro.next_values[n - 1]]


def _lambda_return_recursive(ro: Rollout, next_values: Sequence[Any], lam: Any) -> list[Any]:
    """G^λₜ = rₜ + γ(1 − τₜ)[(1 − λcₜ)V'ₜ + λcₜG^λₜ₊₁], cₜ = (1 − κₜ)[t < T − 1]."""
    n = len(ro.rewards)
    out: list[Any] = [0] * n
    following: Any = sp.Integer(0)
    # backward in time: t = T-1 … 0
    for t in reversed(range(n)):
        c = (1 - ro.truncated[t]) if t < n - 1 else 0
        following = ro.rewards[t] + ro.gamma * (1 - ro.terminated[t]) * (
            (1 - lam * c) * next_values[t] + lam * c * following
        )
        out[t] = following
    return out


def _lambda_return_forward(ro: Rollout, next_values: Sequence[Any]) -> list[Any]:
    """(1 − λ) Σ_{n<N} λⁿ⁻¹ Gₜ⁽ⁿ⁾ + λᴺ⁻¹ Gₜ⁽ᴺ⁾, Gₜ⁽ⁿ⁾ = Σ_{k<n} γᵏ rₜ₊ₖ + γⁿ V'ₜ₊ₙ₋₁ (no episode end)."""
    r, g, lam = ro.rewards, ro.gamma, ro.lam
    n_steps = len(r)

    def n_step(t: int, n: int) -> Any:
        return sum(g**k * r[t + k] for k in range(n)) + g**n * next_values[t + n - 1]

    return [
        (1 - lam) * sum(lam ** (n - 1) * n_step(t, n) for n in range(1, n_steps - t))
        + lam ** (n_steps - t - 1) * n_step(t, n_steps - t)
        for t in range(n_steps)
    ]


def _numeric(
    ro: Rollout, gae_closed: list[Any], delta: list[Any], impl: Callable[..., Any],
    td_impl: Callable[..., Any], lambda_returns_impl: Callable[..., Any],
) -> list[Claim]:
    """The implementations against the lambdified series, δ and series + V."""
    args = [ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, ro.gamma, ro.lam]
    adv_fn = lambdify(args, gae_closed)
    td_fn = lambdify(args, delta)
    ret_fn = lambdify(args, [a + v for a, v in zip(gae_closed, ro.values)])

    def comparisons(which: str) -> Callable[[], Iterator[Comparison]]:
        def run() -> Iterator[Comparison]:
            for p in rollout_points():
                f, t = p.floats(), p.tensors()
                closed_args = (*f.values(), p.gamma, p.lam)
                if which == "gae":
                    got = impl(*t.values(), gamma=p.gamma, lam=p.lam)
                    yield p.label, got, adv_fn(*closed_args)
                elif which == "td":
                    got = td_impl(t["rewards"], t["values"], t["next_values"], t["terminated"], gamma=p.gamma)
                    yield p.label, got, td_fn(*closed_args)
                else:
                    got = lambda_returns_impl(*t.values(), gamma=p.gamma, lam=p.lam)
                    yield p.label, got, ret_fn(*closed_args)

        return run

    return [
        agree("impl(rewards, values, next_values, terminated, truncated, γ, λ) = series (12 rollouts)", comparisons("gae")),
        agree("td_impl(rewards, values, next_values, terminated, γ) = δ (12 rollouts)", comparisons("td")),
        agree("lambda_returns_impl(…) = series + V (12 rollouts)", comparisons("lambda_returns")),
    ]


def prove(
    step: Step = gae_step,
    *,
    impl: Callable[..., Any] = pgmath.gae,
    td_impl: Callable[..., Any] = pgmath.td_errors,
    lambda_returns_impl: Callable[..., Any] = pgmath.lambda_returns,
) -> ProofResult:
    """``step``: the claimed one-step recursion; ``impl``, ``td_impl``, ``lambda_returns_impl``:
    implementations in the signatures of pgmath.gae, pgmath.td_errors, pgmath.lambda_returns."""
    ro = rollout_symbols(T)
    r, v, nv, tau, kap, gamma, lam = (
        ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, ro.gamma, ro.lam,
    )
    delta = td_errors(ro)
    series = gae_series(ro)
    nv_c = consistent_next_values(ro)
    zeros = [sp.Integer(0)] * T
    no_end = [v[t + 1] for t in range(T - 1)] + [nv[T - 1]]  # V'ₜ = Vₜ₊₁ inside the rollout

    def flags(e: sp.Expr) -> sp.Expr:
        return flag_reduce(e, ro.flags)

    domains = ro.domains()
    at1 = run_steps(step, r, v, nv_c, tau, kap, gamma, sp.Integer(1))
    returns = bootstrapped_returns(r, nv_c, tau, kap, gamma)
    with_v = [a + vt for a, vt in zip(run_steps(step, r, v, nv_c, tau, kap, gamma, lam), v)]
    forward = [a + vt for a, vt in zip(run_steps(step, r, v, no_end, zeros, zeros, gamma, lam), v)]
    claims = [
        identity(
            "recursion = series Σₖ(γλ)ᵏ Π(1−τ)(1−κ) δₜ₊ₖ (t = 0…3, every flag pattern)",
            run_steps(step, r, v, nv, tau, kap, gamma, lam),
            series,
            domains=domains,
            transform=flags,
        ),
        identity("λ = 0: Âₜ = δₜ", run_steps(step, r, v, nv, tau, kap, gamma, sp.Integer(0)), delta,
                 domains=domains, transform=flags),
        identity(
            "λ = 1: Âₜ = Gₜ − Vₜ (G of discounted_returns, consistent V')",
            at1,
            [g - vt for g, vt in zip(returns, v)],
            domains=domains,
            transform=flags,
        ),
        identity(
            "Âₜ + Vₜ = recursive λ-return rₜ + γ(1−τ)[(1−λc)V' + λcG^λₜ₊₁] (consistent V')",
            with_v,
            _lambda_return_recursive(ro, nv_c, lam),
            domains=domains,
            transform=flags,
        ),
        identity(
            "Âₜ + Vₜ = forward λ-return (1−λ)Σλⁿ⁻¹G⁽ⁿ⁾ + λᴺ⁻¹G⁽ᴺ⁾ (no episode end)",
            forward,
            _lambda_return_forward(ro, no_end),
            domains=domains,
        ),
        *_numeric(ro, series, delta, impl, td_impl, lambda_returns_impl),
    ]
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: polynomial identities in r, V, V', flags, γ, λ (T = 4; 0/1 flags by multilinear "
        "reduction); impl vs lambdified series in float64",
    )


if __name__ == "__main__":
    run_module(prove())
