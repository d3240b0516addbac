"""V-trace on a symbolic length-4 rollout, with pgmath's episode ends.

Symbols: rewards rₜ, values Vₜ = V(sₜ), next values V'ₜ = V(sₜ₊₁) (free at a truncation),
terminated flags τₜ, truncated flags κₜ, γ, and the clipped weights of each step —
wₜ = min(ρ̄, ρₜ) (the TD error's), cₜ = λ·min(c̄, ρₜ) (the trace's), uₜ = min(ρ̄_pg, ρₜ) (the
advantage's) — as free symbols (the clipping is applied numerically below):

    aₜ = wₜδₜ + γcₜ(1 − τₜ)(1 − κₜ)aₜ₊₁  (t < T − 1),  a_{T−1} = w_{T−1}δ_{T−1}    (recursion)
    vₜ = Vₜ + aₜ,  δₜ = rₜ + γ(1 − τₜ)V'ₜ − Vₜ
    vₜ − Vₜ = Σₖ γᵏ (Π_{j<k} cₜ₊ⱼ(1 − τₜ₊ⱼ)(1 − κₜ₊ⱼ)) wₜ₊ₖ δₜ₊ₖ                    (Espeholt et al. eq. 1)
    Âₜ = uₜ(rₜ + γ(1 − τₜ)v⁺ₜ − Vₜ),  v⁺ₜ = vₜ₊₁ inside the episode, V'ₜ where it ends

Statements, for every 0/1 pattern of the flags (decided exactly on the multilinear form):

1. the recursion equals the series (the n-step expansion of Espeholt et al., eq. 1);
2. on-policy (w ≡ 1, c ≡ λ): vₜ is the λ-return of pgmath.lambda_returns in its recursive form
   (consistent critic: V'ₜ = Vₜ₊₁ where the episode goes on);
3. on-policy with λ = 1 (u ≡ 1): Âₜ = Gₜ − Vₜ, the bootstrapped return of
   pgmath.discounted_returns minus the value (= GAE(γ, 1));
4. c ≡ 0 (λ = 0): vₜ = Vₜ + wₜδₜ, the one-step importance-weighted target.

Numeric claims tie the proof to the code: ``impl`` (pgmath.vtrace; its ``(value_targets,
pg_advantages)`` or the spec's stacked ``[2, T, *B]``) is called as ``impl(log_rhos, rewards,
values, next_values, terminated, truncated, gamma=, lam=, rho_bar=, c_bar=, pg_rho_bar=)`` on
float64 rollouts covering all 256 flag patterns of T = 4, log-ratios N(0, 1) and clip levels
(ρ̄, c̄, ρ̄_pg) ∈ {(1, 1, 1), (1.5, 0.7, 1.5), (0.8, 1.3, 2)}, and must equal the lambdified series
and advantage with w, c, u clipped in NumPy, within 1e-10. So a trace clipped at ρ̄, a missing λ,
an advantage from vₜ, a trace crossing a truncation, … each fail.

Implementations: pgmath.vtrace / pgmath.vtrace_reference; tests: tests/test_offpolicy.py,
tests/test_specs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch

import pgmath

from .core import (
    Claim,
    Comparison,
    ProofResult,
    agree,
    flag_reduce,
    identity,
    lambdify,
    numpy_rng,
    run_module,
)
from .gae import consistent_next_values
from .returns import Rollout, bootstrapped_returns, rollout_points, rollout_symbols

TITLE = "V-trace"
STATEMENT = "recursion = Σγᵏ(Πc)wδ;  on-policy: v = λ-return, λ=1: Â = G − V;  λ=0: v = V + wδ"
IMPL = "pgmath.vtrace"
T = 4
SEED = 20251


def weights(n: int = T) -> tuple[list[sp.Symbol], list[sp.Symbol], list[sp.Symbol]]:
    """Symbols wₜ (TD weight), cₜ (trace), uₜ (advantage weight) of ``n`` steps."""
    return (list(sp.symbols(f"w_0:{n}", real=True)), list(sp.symbols(f"c_0:{n}", real=True)),
            list(sp.symbols(f"u_0:{n}", real=True)))


def vtrace_recursion(ro: Rollout, w: Sequence[Any], c: Sequence[Any], nv: Sequence[Any]) -> list[Any]:
    """vₜ − Vₜ by the backward recursion aₜ = wₜδₜ + γcₜ(1 − τₜ)(1 − κₜ)aₜ₊₁, a_{T−1} = w_{T−1}δ_{T−1}."""
    n = len(ro.rewards)
    a: list[Any] = [0] * (n + 1)
    # backward in time: t = T-1 … 0
    for t in reversed(range(n)):
        delta = ro.rewards[t] + ro.gamma * (1 - ro.terminated[t]) * nv[t] - ro.values[t]
        goes_on = (1 - ro.terminated[t]) * (1 - ro.truncated[t]) if t < n - 1 else 0
        a[t] = w[t] * delta + ro.gamma * c[t] * goes_on * a[t + 1]
    return a[:n]


def vtrace_series(ro: Rollout, w: Sequence[Any], c: Sequence[Any]) -> list[Any]:
    """vₜ − Vₜ = Σₖ γᵏ (Π_{j<k} cₜ₊ⱼ(1 − τₜ₊ⱼ)(1 − κₜ₊ⱼ)) wₜ₊ₖ δₜ₊ₖ (Espeholt et al., eq. 1)."""
    n = len(ro.rewards)
    delta = [r + ro.gamma * (1 - tau) * nv - v
             for r, nv, tau, v in zip(ro.rewards, ro.next_values, ro.terminated, ro.values)]
    link = [c[j] * (1 - ro.terminated[j]) * (1 - ro.truncated[j]) for j in range(n)]
    return [sum(ro.gamma**k * sp.Mul(*link[t: t + k]) * w[t + k] * delta[t + k] for k in range(n - t))
            for t in range(n)]


def advantage(ro: Rollout, vs: Sequence[Any], u: Sequence[Any], nv: Sequence[Any]) -> list[Any]:
    """Âₜ = uₜ(rₜ + γ(1 − τₜ)v⁺ₜ − Vₜ), v⁺ₜ = vₜ₊₁ + endₜ(V'ₜ − vₜ₊₁) (end: τ, κ or t = T − 1)."""
    n = len(ro.rewards)
    out = []
    for t in range(n):
        if t == n - 1:
            v_plus = nv[t]
        else:
            end = 1 - (1 - ro.terminated[t]) * (1 - ro.truncated[t])
            v_plus = vs[t + 1] + end * (nv[t] - vs[t + 1])
        out.append(u[t] * (ro.rewards[t] + ro.gamma * (1 - ro.terminated[t]) * v_plus - ro.values[t]))
    return out


def _lambda_return(ro: Rollout, nv: Sequence[Any]) -> list[Any]:
    """G^λₜ = rₜ + γ(1 − τₜ)[(1 − λgₜ)V'ₜ + λgₜG^λₜ₊₁], gₜ = (1 − κₜ)[t < T − 1]."""
    n = len(ro.rewards)
    g: list[Any] = [0] * (n + 1)
    # backward in time: t = T-1 … 0
    for t in reversed(range(n)):
        go = (1 - ro.truncated[t]) if t < n - 1 else 0
        g[t] = ro.rewards[t] + ro.gamma * (1 - ro.terminated[t]) * ((1 - ro.lam * go) * nv[t] + ro.lam * go * g[t + 1])
    return g[:n]


def _pair(out: Any) -> tuple[Any, Any]:
    if isinstance(out, (tuple, list)):
        return out[0], out[1]
    return out[0], out[1]  # the spec's stacked [2, T, *B]


CLIPS = ((1.0, 1.0, None), (1.5, 0.7, None), (0.8, 1.3, 2.0))


def _numeric(ro: Rollout, w: list[sp.Symbol], c: list[sp.Symbol], u: list[sp.Symbol], series: list[Any],
             adv: list[Any], impl: Callable[..., Any]) -> Claim:
    args = [ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, w, c, u, ro.gamma]
    fn = lambdify(args, [*series, *adv])

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        for i, p in enumerate(rollout_points(SEED)):
            rho_bar, c_bar, pg_bar = CLIPS[i % len(CLIPS)]
            lr = rng.standard_normal(p.rewards.shape)
            rho = np.exp(lr)
            wn, cn = np.minimum(rho_bar, rho), p.lam * np.minimum(c_bar, rho)
            un = np.minimum(rho_bar if pg_bar is None else pg_bar, rho)
            f, t = p.floats(), p.tensors()
            closed = fn(f["rewards"], f["values"], f["next_values"], f["terminated"], f["truncated"], wn, cn, un,
                        p.gamma)
            want_vs = closed[:T] + p.values
            got = impl(torch.from_numpy(lr), *t.values(), gamma=p.gamma, lam=p.lam, rho_bar=rho_bar, c_bar=c_bar,
                       pg_rho_bar=pg_bar)
            vs, pg = _pair(got)
            label = f"{p.label}, ρ̄={rho_bar}, c̄={c_bar}, ρ̄_pg={pg_bar}"
            yield label + ": value targets", vs, want_vs
            yield label + ": advantages", pg, closed[T:]

    return agree("impl(log_rhos, …) = series + V and the advantage (12 rollouts, 3 clip settings)", comparisons)


def prove(*, impl: Callable[..., Any] = pgmath.vtrace) -> ProofResult:
    """``impl``: an implementation in the signature of pgmath.vtrace (a pair or a stacked tensor)."""
    ro = rollout_symbols(T)
    w, c, u = weights(T)
    nv_c = consistent_next_values(ro)
    ones = [sp.Integer(1)] * T
    lams = [ro.lam] * T
    zeros = [sp.Integer(0)] * T

    def flags(e: sp.Expr) -> sp.Expr:
        return flag_reduce(e, ro.flags)

    domains = ro.domains()
    series = vtrace_series(ro, w, c)
    vs_sym = [a + v for a, v in zip(series, ro.values)]
    adv = advantage(ro, vs_sym, u, ro.next_values)
    on1 = [a + v for a, v in zip(vtrace_recursion(ro, ones, ones, nv_c), ro.values)]
    returns = bootstrapped_returns(ro.rewards, nv_c, ro.terminated, ro.truncated, ro.gamma)
    delta = [r + ro.gamma * (1 - tau) * nv - v
             for r, nv, tau, v in zip(ro.rewards, ro.next_values, ro.terminated, ro.values)]
    claims = [
        identity("recursion = series Σₖ γᵏ(Π cⱼ(1−τ)(1−κ)) wₜ₊ₖδₜ₊ₖ (t = 0…3, every flag pattern)",
                 vtrace_recursion(ro, w, c, ro.next_values), series, domains=domains, transform=flags),
        identity("on-policy (w ≡ 1, c ≡ λ): vₜ = λ-return rₜ + γ(1−τ)[(1−λg)V' + λgG^λₜ₊₁] (consistent V')",
                 [a + v for a, v in zip(vtrace_recursion(ro, ones, lams, nv_c), ro.values)],
                 _lambda_return(ro, nv_c), domains=domains, transform=flags),
        identity("on-policy, λ = 1 (u ≡ 1): Âₜ = Gₜ − Vₜ (G of discounted_returns, consistent V')",
                 advantage(ro, on1, ones, nv_c), [g - v for g, v in zip(returns, ro.values)],
                 domains=domains, transform=flags),
        identity("c ≡ 0 (λ = 0): vₜ = Vₜ + wₜδₜ", vtrace_recursion(ro, w, zeros, ro.next_values),
                 [wt * d for wt, d in zip(w, delta)], domains=domains, transform=flags),
        _numeric(ro, w, c, u, series, adv, impl),
    ]
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy: polynomial identities in r, V, V', flags, γ, λ and the clipped weights w, c, u (T = 4; 0/1 "
        "flags by multilinear reduction); impl vs lambdified series in float64",
    )


if __name__ == "__main__":
    run_module(prove())
