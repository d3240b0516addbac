"""Causality (reward-to-go) and the γᵗ weight, on a symbolic two-step decision tree.

Tree: s₀ → a₀ ∈ {0, 1} (π(·|s₀) = softmax(θ₀, θ₁)), reward r₀(a₀); then s₁ ∈ {A, B} with
fixed rational P(s₁|a₀); then a₁ ∈ {0, 1} (π(·|s₁) = softmax of that state's two logits),
reward r₁(s₁, a₁); end. J(θ) = E[r₀ + γ r₁]. All six rewards, all six logits and γ are symbols.

Statements (Williams 1992; Sutton & Barto 2018, §13.3; Peters & Schaal 2008):

1. Causality: E[∇log π(a₁|s₁) r₀] = 0 — a reward that happened before an action carries no
   information about the gradient of that action's log-probability (the reward is fixed given
   the history, and the score has conditional mean 0).
2. Reward-to-go: ∇J = E[Σₜ γᵗ ∇log π(aₜ|sₜ) Gₜ], Gₜ = Σ_{t'≥t} γ^{t'−t} r_{t'}; without the γᵗ
   weight it is not ∇J (the weight the source article omits).
3. Whole-trajectory form (the log-derivative trick on p_θ(τ)):
   ∇J = E[(Σₜ ∇log π(aₜ|sₜ)) (Σₜ γᵗ rₜ)].

Wrong claims are rejected: ``vanishing_pairs=((0, 1),)`` (claims the *future* reward r₁ does not
correlate with ∇log π(a₀)), ``time_weight=lambda t, g: 1`` (drops γᵗ).

The computation is exact arithmetic in the rational-function field over the rewards, γ and
xₖ = exp θₖ (∂/∂θₖ = xₖ ∂/∂xₖ; ∇log π = ∇π / π).

Numeric claim — the code: the tree as a :class:`pgmath.mdp.TabularMDP` (states s₀, A, B, end);
its 8 trajectories as one batch of :class:`pgmath.mdp.Episodes`; ``impl``
(pgmath.estimators.policy_gradient.episode_weights, ``impl(mdp, pi, episodes, estimator)``)
gives the weights wₜ of the "reward_to_go" (γᵗGₜ) and "reinforce" (G₀) estimators, and their
exact mean Σ_τ p(τ) ∇θ Σₜ wₜ log π(aₜ|sₜ) (summed over the trajectories, weights held fixed)
must equal the lambdified ∇J at random logits, rewards and γ. Tests:
tests/test_proofs.py; the estimator area checks the same facts by Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch
from sympy.polys.fields import field

from pgmath.estimators.policy_gradient import episode_weights
from pgmath.mdp import Episodes, TabularMDP

from .core import (
    Claim,
    Comparison,
    ProofResult,
    agree,
    identity,
    lambdify,
    log_softmax,
    numpy_rng,
    run_module,
)

TITLE = "causality / reward-to-go"
STATEMENT = "E[∇log π(a₁|s₁) r₀] = 0;  ∇J = E[Σₜ γᵗ ∇log π(aₜ|sₜ) Gₜ]"
IMPL = "pgmath.estimators.policy_gradient.episode_weights"
SEED = 20248
END = 3  # the terminal state of the tree MDP (0 = s₀, 1 = A, 2 = B)

R = sp.Rational
#: P(s₁ | a₀) over s₁ ∈ {A, B}
TRANSITIONS = ((R(1, 3), R(2, 3)), (R(3, 4), R(1, 4)))


def discount_weight(t: int, gamma: Any) -> Any:
    """γᵗ: the weight of the time-t term in the discounted policy gradient."""
    return gamma**t


def tree_mdp(rewards: np.ndarray, gamma: float) -> TabularMDP:
    """The tree as a TabularMDP; ``rewards`` = (r0_0, r0_1, r1_A0, r1_A1, r1_B0, r1_B1)."""
    P = np.zeros((4, 2, 4))
    for a0 in range(2):
        P[0, a0, 1:3] = [float(p) for p in TRANSITIONS[a0]]
    P[1:, :, END] = 1.0
    R = np.zeros((4, 2))
    R[:3] = rewards.reshape(3, 2)
    return TabularMDP(P, R, gamma, [1.0, 0.0, 0.0, 0.0], [False, False, False, True])


def tree_episodes(mdp: TabularMDP, pi: torch.Tensor) -> tuple[Episodes, torch.Tensor]:
    """All 8 trajectories (a₀, s₁, a₁) as one ``[T = 2, N = 8]`` batch, and their probabilities."""
    rows = [(a0, s1, a1) for a0 in range(2) for s1 in (1, 2) for a1 in range(2)]
    states = torch.tensor([[0, s1] for _, s1, _ in rows]).T
    actions = torch.tensor([[a0, a1] for a0, _, a1 in rows]).T
    next_states = torch.tensor([[s1, END] for _, s1, _ in rows]).T
    log_pi = torch.log(pi)
    ep = Episodes(
        states=states,
        actions=actions,
        rewards=mdp.R[states, actions],
        next_states=next_states,
        terminated=next_states == END,
        truncated=torch.zeros(2, 8, dtype=torch.bool),
        log_probs=log_pi[states, actions],
        valid=torch.ones(2, 8, dtype=torch.bool),
        lengths=torch.full((8,), 2),
    )
    prob = torch.stack([pi[0, a0] * mdp.P[0, a0, s1] * pi[s1, a1] for a0, s1, a1 in rows])
    return ep, prob


def _expected_gradient(theta: torch.Tensor, ep: Episodes, weights: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """Σ_τ p(τ) ∇θ Σₜ wₜ(τ) log πθ(aₜ|sₜ): the exact mean of the estimator (weights held fixed)."""
    th = theta.detach().clone().requires_grad_(True)
    log_pi = log_softmax(th)[ep.states, ep.actions]  # [T, N]
    (grad,) = torch.autograd.grad((prob.detach() * (weights * log_pi).sum(0)).sum(), th)
    return grad


def _numeric(names: Sequence[sp.Symbol], rnames: Sequence[sp.Symbol], gname: sp.Symbol, grad: Sequence[Any], impl: Callable[..., Any]) -> Claim:
    """Σ_τ p(τ) ∇θ Σₜ wₜ log π (w from impl) == the lambdified ∇J, for reward_to_go and reinforce."""
    fn = lambdify([names, rnames, gname], [g.as_expr() for g in grad])

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        for i in range(8):
            gamma = float(rng.uniform(0.2, 1.0)) if i else 1.0
            rewards = 2.0 * rng.standard_normal(6)
            logits = np.zeros((4, 2))
            logits[:3] = 1.5 * rng.standard_normal((3, 2))
            want = np.zeros((4, 2))
            want[:3] = fn(np.exp(logits[:3].reshape(6)), rewards, gamma).reshape(3, 2)
            mdp = tree_mdp(rewards, gamma)
            theta = torch.from_numpy(logits)
            pi = mdp.policy(theta)
            ep, prob = tree_episodes(mdp, pi)
            for estimator in ("reward_to_go", "reinforce"):
                w = torch.as_tensor(impl(mdp, pi, ep, estimator)).detach()
                yield f"point {i}, γ = {gamma:.3f}, {estimator}", _expected_gradient(theta, ep, w, prob), want

    return agree("Σ_τ p(τ) ∇θ Σₜ impl(…)ₜ log π(aₜ|sₜ) = ∇J (reward_to_go, reinforce; 8 points)", comparisons)


def prove(
    vanishing_pairs: Sequence[tuple[int, int]] = ((1, 0),),
    time_weight: Callable[[int, Any], Any] = discount_weight,
    *,
    impl: Callable[..., Any] = episode_weights,
) -> ProofResult:
    """``vanishing_pairs``: claimed (t, t') with E[∇log π(aₜ|sₜ) r_{t'}] = 0 for every θ;
    ``time_weight``: the claimed w(t); ``impl``: an implementation in the signature of
    pgmath.estimators.policy_gradient.episode_weights."""
    names = [sp.Symbol(f"exp(theta_{i})") for i in range(6)]
    rnames = [sp.Symbol(f"r0_{a}") for a in range(2)] + [
        sp.Symbol(f"r1_{s}{a}") for s in "AB" for a in range(2)
    ]
    gname = sp.Symbol("gamma")
    k, *gens = field([*names, *rnames, gname], sp.QQ)
    x, rew, gamma = gens[:6], gens[6:12], gens[12]
    r0 = rew[0:2]
    r1 = [rew[2:4], rew[4:6]]

    def d_theta(f: Any, i: int) -> Any:  # ∂/∂θᵢ = xᵢ ∂/∂xᵢ, xᵢ = exp θᵢ
        return x[i] * f.diff(x[i])

    # states: 0 = s₀, 1 = A, 2 = B; logits of state s are θ_{2s}, θ_{2s+1}
    pi = [[x[2 * s + a] / (x[2 * s] + x[2 * s + 1]) for a in range(2)] for s in range(3)]

    # enumerate the 8 trajectories (a₀, s₁, a₁)
    trajectories = []
    for a0 in range(2):
        for s1 in range(2):
            for a1 in range(2):
                prob = pi[0][a0] * k(TRANSITIONS[a0][s1]) * pi[1 + s1][a1]
                trajectories.append(
                    {"p": prob, "steps": [(0, a0), (1 + s1, a1)], "r": [r0[a0], r1[s1][a1]]}
                )

    def expect(f: Callable[[dict[str, Any]], Any]) -> Any:
        return sum(tr["p"] * f(tr) for tr in trajectories)

    def score(tr: dict[str, Any], t: int, i: int) -> Any:
        s, a = tr["steps"][t]
        return d_theta(pi[s][a], i) / pi[s][a]

    objective = expect(lambda tr: tr["r"][0] + gamma * tr["r"][1])
    grad = [d_theta(objective, i) for i in range(6)]

    domains: dict[sp.Symbol, list[Any]] = {n: [R(1, 2), R(2), R(3, 7)] for n in names}
    domains[gname] = [R(1, 2), R(9, 10)]
    claims = []
    for t, t2 in vanishing_pairs:
        claims.append(
            identity(
                f"E[∇log π(a{t}|s{t}) r{t2}] = 0 for all θ, rewards, γ",
                [expect(lambda tr, t=t, t2=t2, i=i: score(tr, t, i) * tr["r"][t2]) for i in range(6)],
                [0] * 6,
                domains=domains,
            )
        )

    def reward_to_go(tr: dict[str, Any], t: int) -> Any:
        return sum(gamma ** (t2 - t) * tr["r"][t2] for t2 in range(t, 2))

    claims.append(
        identity(
            "∇J = E[Σₜ w(t) ∇log π(aₜ|sₜ) Gₜ] with the claimed w(t)",
            grad,
            [
                expect(
                    lambda tr, i=i: sum(
                        time_weight(t, gamma) * score(tr, t, i) * reward_to_go(tr, t) for t in range(2)
                    )
                )
                for i in range(6)
            ],
            domains=domains,
        )
    )
    claims.append(
        identity(
            "∇J = E[∇log p_θ(τ) Σₜ γᵗ rₜ] (log-derivative trick on trajectories)",
            grad,
            [
                expect(
                    lambda tr, i=i: sum(score(tr, t, i) for t in range(2))
                    * (tr["r"][0] + gamma * tr["r"][1])
                )
                for i in range(6)
            ],
            domains=domains,
        )
    )
    claims.append(_numeric(names, rnames, gname, grad, impl))
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=tuple(claims),
        method="sympy rational-function field over rewards, γ, exp θ: exact expectations over 8 paths; "
        "pgmath's estimator weights, exact mean, vs lambdified ∇J",
    )


if __name__ == "__main__":
    run_module(prove())
