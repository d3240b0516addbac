"""Discounted returns and the generic reverse discounted cumulative sum (symbolic T = 4).

    yₜ = xₜ + cₜ yₜ₊₁,  y_T = b                     (pgmath.discounted_cumsum with b = 0)
    yₜ = Σₖ (Π_{j<k} cₜ₊ⱼ) xₜ₊ₖ + (Π_{j≥t} cⱼ) b      (its closed form)

pgmath.discounted_returns(rewards, terminated, truncated, gamma=γ, next_values=V') is this scan
with terminated flags τₜ, truncated flags κₜ and the real next-state values V'ₜ = V(sₜ₊₁):

    Gₜ = rₜ                    if τₜ
    Gₜ = rₜ + γ V'ₜ            if κₜ or t = T − 1 (and not τₜ): bootstrap where the episode is cut
    Gₜ = rₜ + γ Gₜ₊₁           otherwise

i.e. xₜ = rₜ + γ(1 − τₜ) bₜ V'ₜ and cₜ = γ(1 − τₜ)(1 − bₜ), with bₜ = κₜ for t < T − 1 and
b_{T−1} = 1 (the rollout's end bootstraps too), so

    Gₜ = Σₖ γᵏ (Π_{j<k} (1 − τₜ₊ⱼ)(1 − κₜ₊ⱼ)) (rₜ₊ₖ + γ (1 − τₜ₊ₖ) bₜ₊ₖ V'ₜ₊ₖ)

(Sutton & Barto 2018, eq. 3.9; Pardo et al. 2018 for the bootstrap at truncation). Statements:
(1) the recursion equals its closed form for free cₜ, b; (2) the scan of discounted_returns equals
the series above for every 0/1 pattern of the flags (decided exactly on the multilinear form,
:func:`~.core.flag_reduce`); (3) without next_values (V' = 0) no bootstrap is added; (4) the
series satisfies the case definition above. Numeric claims: ``impl`` (pgmath.discounted_returns)
and ``cumsum_impl`` (pgmath.discounted_cumsum) equal the lambdified closed forms on float64
rollouts covering all 256 flag patterns of T = 4 (truncated at the last step included).

The claimed recursion step is the input ``step(x, c, y_next)``; wrong steps are rejected, e.g.
``lambda x, c, y: c * (x + y)`` (discounting the current reward) or
``lambda x, c, y: x + y`` (no discount). Implementations: pgmath.discounted_cumsum,
pgmath.discounted_returns(_reference); tests: tests/test_returns.py, tests/test_proofs.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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

TITLE = "discounted returns / cumsum"
STATEMENT = "yₜ = xₜ + cₜyₜ₊₁ ⇔ yₜ = Σₖ(Πcₜ₊ⱼ)xₜ₊ₖ + (Πc)b;  Gₜ = Σₖγᵏ Π(1−τ)(1−κ) (rₜ₊ₖ + γ(1−τ)bV')"
IMPL = "pgmath.discounted_returns"
IMPLS = {"impl": "pgmath.discounted_returns", "cumsum_impl": "pgmath.discounted_cumsum"}
T = 4
SEED = 20240

Step = Callable[[Any, Any, Any], Any]


def cumsum_step(x: Any, c: Any, y_next: Any) -> Any:
    """yₜ = xₜ + cₜ yₜ₊₁."""
    return x + c * y_next


def run_scan(step: Step, x: Sequence[Any], c: Sequence[Any], b: Any) -> list[Any]:
    """yₜ = step(xₜ, cₜ, yₜ₊₁) for t = T−1 … 0, with y_T = ``b``."""
    y: list[Any] = [0] * (len(x) + 1)
    y[len(x)] = b
    # backward in time: t = T-1 … 0
    for t in reversed(range(len(x))):
        y[t] = step(x[t], c[t], y[t + 1])
    return y[: len(x)]


# ---------------------------------------------------------------------------------------------
# the rollout: symbols, the terms of the returns scan, the closed form


@dataclass(frozen=True)
class Rollout:
    """Symbols of a length-T rollout: rₜ, V(sₜ), V'ₜ = V(sₜ₊₁), flags τₜ, κₜ, and γ, λ."""

    rewards: list[sp.Symbol]
    values: list[sp.Symbol]
    next_values: list[sp.Symbol]
    terminated: list[sp.Symbol]
    truncated: list[sp.Symbol]
    gamma: sp.Symbol
    lam: sp.Symbol

    @property
    def flags(self) -> list[sp.Symbol]:
        return [*self.terminated, *self.truncated]

    def domains(self) -> dict[sp.Symbol, list[Any]]:
        """Counterexample points: flags in {0, 1}, γ and λ in (0, 1]."""
        d: dict[sp.Symbol, list[Any]] = {f: [0, 1] for f in self.flags}
        d[self.gamma] = [sp.Rational(1, 2), sp.Rational(9, 10), 1]
        d[self.lam] = [sp.Rational(1, 3), sp.Rational(19, 20), 1]
        return d


def rollout_symbols(length: int = T) -> Rollout:
    """Fresh symbols for a rollout of ``length`` steps (all independent: V'ₜ is not Vₜ₊₁)."""
    return Rollout(
        rewards=list(sp.symbols(f"r_0:{length}", real=True)),
        values=list(sp.symbols(f"V_0:{length}", real=True)),
        next_values=list(sp.symbols(f"V'_0:{length}", real=True)),
        terminated=list(sp.symbols(f"tau_0:{length}", real=True)),
        truncated=list(sp.symbols(f"kappa_0:{length}", real=True)),
        gamma=sp.Symbol("gamma", positive=True),
        lam=sp.Symbol("lambda", positive=True),
    )


def bootstrap_flags(truncated: Sequence[Any]) -> list[Any]:
    """bₜ: 1 where the rollout cuts the episode after step t (κₜ, and always at t = T−1)."""
    return [*truncated[:-1], sp.Integer(1)]


def return_terms(
    rewards: Sequence[Any], next_values: Sequence[Any], terminated: Sequence[Any],
    truncated: Sequence[Any], gamma: Any,
) -> tuple[list[Any], list[Any]]:
    """(xₜ, cₜ) of pgmath.discounted_returns as a scan: xₜ = rₜ + γ(1−τₜ)bₜV'ₜ, cₜ = γ(1−τₜ)(1−bₜ)."""
    b = bootstrap_flags(truncated)
    x = [r + gamma * (1 - tau) * bt * nv for r, nv, tau, bt in zip(rewards, next_values, terminated, b)]
    c = [gamma * (1 - tau) * (1 - bt) for tau, bt in zip(terminated, b)]
    return x, c


def bootstrapped_returns(
    rewards: Sequence[Any], next_values: Sequence[Any], terminated: Sequence[Any],
    truncated: Sequence[Any], gamma: Any,
) -> list[Any]:
    """Gₜ = Σₖ γᵏ (Π_{j<k} (1−τₜ₊ⱼ)(1−κₜ₊ⱼ)) (rₜ₊ₖ + γ(1−τₜ₊ₖ)bₜ₊ₖV'ₜ₊ₖ), the closed form."""
    n = len(rewards)
    b = bootstrap_flags(truncated)
    goes_on = [(1 - tau) * (1 - kap) for tau, kap in zip(terminated, truncated)]
    step_value = [r + gamma * (1 - tau) * bt * nv for r, nv, tau, bt in zip(rewards, next_values, terminated, b)]
    return [
        sum(gamma**k * sp.Mul(*goes_on[t : t + k]) * step_value[t + k] for k in range(n - t)) for t in range(n)
    ]


# ---------------------------------------------------------------------------------------------
# numeric points: float64 rollouts covering every flag pattern


def flag_patterns(length: int = T) -> tuple[np.ndarray, np.ndarray]:
    """Every (terminated, truncated) pattern of a length-``length`` rollout: two bool ``[T, 4^T]``."""
    n = 4**length
    bits = (np.arange(n)[None, :] >> np.arange(2 * length)[:, None]) & 1
    return bits[:length].astype(bool), bits[length:].astype(bool)


@dataclass(frozen=True)
class RolloutPoint:
    """One numeric rollout ``[T, *B]`` (float64 values, bool flags) and its γ, λ."""

    label: str
    rewards: np.ndarray
    values: np.ndarray
    next_values: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    gamma: float
    lam: float

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "rewards": torch.from_numpy(self.rewards),
            "values": torch.from_numpy(self.values),
            "next_values": torch.from_numpy(self.next_values),
            "terminated": torch.from_numpy(self.terminated),
            "truncated": torch.from_numpy(self.truncated),
        }

    def floats(self) -> dict[str, np.ndarray]:
        """The arrays with the flags as 0/1 floats (the lambdified closed forms' inputs)."""
        return {
            "rewards": self.rewards,
            "values": self.values,
            "next_values": self.next_values,
            "terminated": self.terminated.astype(np.float64),
            "truncated": self.truncated.astype(np.float64),
        }


def rollout_points(seed: int = SEED, length: int = T) -> Iterator[RolloutPoint]:
    """12 rollouts: all 4^T flag patterns as a ``[T, 4^T]`` batch, as ``[T, 16, 16]``, and single
    ``[T]`` rollouts (one truncated at its last step, one terminated there, one with no end);
    γ, λ at the edges 0 and 1 and uniform in (0, 1). Values N(0, 1) from one seeded generator."""
    rng = numpy_rng(seed)
    term_all, trunc_all = flag_patterns(length)
    singles = {
        "truncated at the last step": (np.zeros(length, bool), np.eye(1, length, length - 1, dtype=bool)[0]),
        "terminated at the last step": (np.eye(1, length, length - 1, dtype=bool)[0], np.zeros(length, bool)),
        "no episode end": (np.zeros(length, bool), np.zeros(length, bool)),
    }
    shapes: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("all flag patterns [T, 256]", term_all, trunc_all),
        ("all flag patterns [T, 16, 16]", term_all.reshape(length, 16, 16), trunc_all.reshape(length, 16, 16)),
        *((f"[T] {k}", tm, tr) for k, (tm, tr) in singles.items()),
    ]
    edges = [(1.0, 1.0), (0.0, 0.5), (0.9, 0.0), (1.0, 0.95)]
    for i in range(12):
        name, term, trunc = shapes[i % len(shapes)]
        gamma, lam = edges[i] if i < len(edges) else (float(rng.uniform()), float(rng.uniform()))
        r, v, nv = (rng.standard_normal(term.shape) for _ in range(3))
        yield RolloutPoint(f"{name}, γ={gamma:.3g}, λ={lam:.3g}", r, v, nv, term, trunc, gamma, lam)


# ---------------------------------------------------------------------------------------------
# the proof


def _numeric_returns(ro: Rollout, closed: list[Any], impl: Callable[..., Any]) -> Claim:
    """impl(rewards, terminated, truncated, gamma=, next_values=) == the lambdified closed form."""
    args = [ro.rewards, ro.next_values, ro.terminated, ro.truncated, ro.gamma]
    with_nv = lambdify(args, closed)
    no_nv = lambdify(args, [e.subs(dict.fromkeys(ro.next_values, 0)) for e in closed])

    def comparisons() -> Iterator[Comparison]:
        for p in rollout_points():
            f, t = p.floats(), p.tensors()
            args_np = (f["rewards"], f["next_values"], f["terminated"], f["truncated"], p.gamma)
            got = impl(t["rewards"], t["terminated"], t["truncated"], gamma=p.gamma, next_values=t["next_values"])
            yield p.label, got, with_nv(*args_np)
            got = impl(t["rewards"], t["terminated"], t["truncated"], gamma=p.gamma)
            yield p.label + ", no next_values", got, no_nv(*args_np)

    return agree("impl(rewards, terminated, truncated, gamma, next_values) = closed form (12 rollouts)", comparisons)


def _numeric_cumsum(x: list[sp.Symbol], c: list[sp.Symbol], closed: list[Any], impl: Callable[..., Any]) -> Claim:
    """cumsum_impl(x, discounts) == the lambdified closed form with b = 0, discounts with zeros."""
    fn = lambdify([x, c], closed)

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED + 1)
        for shape in [(T,), (T, 5), (T, 3, 2)] * 3:
            xs = rng.standard_normal(shape)
            cs = np.where(rng.uniform(size=shape) < 0.25, 0.0, rng.uniform(size=shape))
            yield f"shape {shape}", impl(torch.from_numpy(xs), torch.from_numpy(cs)), fn(xs, cs)

    return agree("cumsum_impl(x, discounts) = closed form with b = 0 (9 random scans)", comparisons)


def prove(
    step: Step = cumsum_step,
    *,
    impl: Callable[..., Any] = pgmath.discounted_returns,
    cumsum_impl: Callable[..., Any] = pgmath.discounted_cumsum,
) -> ProofResult:
    """``step``: the claimed one-step recursion; ``impl`` / ``cumsum_impl``: implementations in the
    signatures of pgmath.discounted_returns / pgmath.discounted_cumsum, checked numerically."""
    x = list(sp.symbols(f"x_0:{T}", real=True))
    c = list(sp.symbols(f"c_0:{T}", real=True))
    b = sp.Symbol("b", real=True)
    ro = rollout_symbols(T)
    r, nv, tau, kap, gamma = ro.rewards, ro.next_values, ro.terminated, ro.truncated, ro.gamma

    closed = [
        sum(sp.Mul(*c[t : t + k]) * x[t + k] for k in range(T - t)) + sp.Mul(*c[t:]) * b
        for t in range(T)
    ]
    returns = bootstrapped_returns(r, nv, tau, kap, gamma)
    no_bootstrap = [e.subs(dict.fromkeys(nv, 0)) for e in returns]
    bt = bootstrap_flags(kap)
    following = [*returns[1:], sp.Integer(0)]
    definition = [
        tau[t] * r[t] + (1 - tau[t]) * (bt[t] * (r[t] + gamma * nv[t]) + (1 - bt[t]) * (r[t] + gamma * following[t]))
        for t in range(T)
    ]

    def flags(e: sp.Expr) -> sp.Expr:
        return flag_reduce(e, ro.flags)

    domains = ro.domains()
    claims = (
        identity("recursion = closed form (free cₜ, b)", run_scan(step, x, c, b), closed),
        identity(
            "discounted_returns scan = Σₖ γᵏ Π(1−τ)(1−κ)(rₜ₊ₖ + γ(1−τ)bV') (every flag pattern)",
            run_scan(step, *return_terms(r, nv, tau, kap, gamma), 0),
            returns,
            domains=domains,
            transform=flags,
        ),
        identity(
            "no next_values (V' = 0): Gₜ = Σₖ γᵏ Π(1−τ)(1−κ) rₜ₊ₖ",
            run_scan(step, *return_terms(r, [0] * T, tau, kap, gamma), 0),
            no_bootstrap,
            domains=domains,
            transform=flags,
        ),
        identity(
            "Gₜ = rₜ if τₜ; rₜ + γV'ₜ if κₜ or t = T−1; rₜ + γGₜ₊₁ otherwise",
            returns,
            definition,
            domains=domains,
            transform=flags,
        ),
        _numeric_returns(ro, returns, impl),
        _numeric_cumsum(x, c, [e.subs(b, 0) for e in closed], cumsum_impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: polynomial identities (T = 4; 0/1 flags by multilinear reduction); "
        "impl vs lambdified closed form in float64",
    )


if __name__ == "__main__":
    run_module(prove())
