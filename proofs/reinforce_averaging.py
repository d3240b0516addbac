"""REINFORCE: the per-episode sum is unbiased; dividing by the episode length is not.

The source article averages the per-step terms of an episode, ĝ = (1/T) Σₜ ∇log π(aₜ|sₜ) Gₜ.
Because the episode length T is random and correlated with the returns, E[ĝ] is not a constant
multiple of ∇J — it can even point downhill. (Dividing by a *constant*, e.g. the number of
episodes or a fixed horizon, only rescales the step and is harmless.)

Episode (undiscounted): in s₀ choose "stop" (probability 1 − p) and receive 1, episode length 1;
or "go" (probability p = σ(θ)) and receive 0, then one forced step in s₁ (a single action, no
parameter) with reward R, episode length 2. J(θ) = (1 − p) + pR, ∇J = p(1 − p)(R − 1).

Statement: E[w(T) Σₜ ∇log π(aₜ|sₜ) Gₜ] = c ∇J for a constant c > 0 that depends on neither θ nor
R — true for every constant weight w, false for w(T) = 1/T: then
E[ĝ] = p(1 − p)(R/2 − 1), which for 1 < R < 2 is negative while ∇J is positive (the details
show the witness). ``length_weight`` is the claimed weight.

Numeric claim — the code: ``impl`` (pgmath.policy_gradient_loss) takes the mean over all entries
of a fixed-size ``[T, B]`` rollout, i.e. the per-episode sums divided by the constant T·B — a
constant weight, so unbiased up to that factor. With T = 2, B = 2 episodes padded with
log-probability 0 and return 0, and exact expectations over the 4 joint outcomes:
E[−T·B ∇θ impl(log π, G)] = B ∇J, at random θ and R. Dividing each episode by its own length
(a ``mask``-selected mean over one episode) is the 1/T weight this proof rejects.
See docs/formulas/policy-gradient-loss.md and docs/errata.md; tests: tests/test_proofs.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import sympy as sp
import torch

import pgmath

from .core import (
    Claim,
    Comparison,
    ProofResult,
    agree,
    gradient,
    lambdify,
    numpy_rng,
    run_module,
    to_text,
)

TITLE = "REINFORCE per-episode sum vs 1/T average"
STATEMENT = "E[w(T) Σₜ ∇log π(aₜ|sₜ) Gₜ] ∝ ∇J (constant factor) iff w does not depend on T here"
IMPL = "pgmath.policy_gradient_loss"
SEED = 20245


def constant_weight(length: int) -> Any:
    return sp.Integer(1)


def article_average(length: int) -> Any:
    """WRONG (the source article, §3.1 step 4): divide by the episode length."""
    return sp.Rational(1, length)


def _episode(theta: torch.Tensor, go: bool, reward: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(log π(aₜ|sₜ), Gₜ) ``[2]`` of one episode, padded to T = 2 with log π = 0 and G = 0."""
    zero = torch.zeros((), dtype=theta.dtype)
    if go:  # t=0: go (log σ(θ)), G₀ = R; t=1: the forced action (log 1 = 0), G₁ = R
        return torch.stack([torch.nn.functional.logsigmoid(theta), zero]), torch.tensor([reward, reward], dtype=theta.dtype)
    return torch.stack([torch.nn.functional.logsigmoid(-theta), zero]), torch.tensor([1.0, 0.0], dtype=theta.dtype)


def _expected_minus_grad(impl: Callable[..., Any], theta: float, reward: float) -> float:
    """E[−T·B ∂impl/∂θ] over the 4 joint outcomes of a batch of B = 2 episodes (T = 2)."""
    p = 1.0 / (1.0 + torch.exp(torch.tensor(-theta, dtype=torch.float64)))
    total = torch.zeros((), dtype=torch.float64)
    for outcome in itertools.product((False, True), repeat=2):  # (go?) per episode
        th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        parts = [_episode(th, go, reward) for go in outcome]
        log_probs = torch.stack([lp for lp, _ in parts], dim=1)  # [T, B]
        returns = torch.stack([g for _, g in parts], dim=1)
        grad = gradient(impl(log_probs, returns), th)
        prob = torch.prod(torch.stack([p if go else 1 - p for go in outcome]))
        total = total + prob * (-4.0 * grad)
    return float(total)


def _numeric(theta: sp.Symbol, big_r: sp.Symbol, grad: sp.Expr, impl: Callable[..., Any]) -> Claim:
    """E[−T·B ∇impl] == B ∇J (lambdified) at 12 random (θ, R)."""
    fn = lambdify([theta, big_r], [2 * grad])

    def comparisons() -> Iterator[Comparison]:
        rng = numpy_rng(SEED)
        for i in range(12):
            th, r = float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))
            yield f"point {i}: θ = {th:.3f}, R = {r:.3f}", _expected_minus_grad(impl, th, r), fn(th, r)[0]

    return agree("E[−T·B ∇θ impl(log π, G)] = B ∇J (fixed [T, B] = [2, 2] rollout, 12 points)", comparisons)


def prove(
    length_weight: Callable[[int], Any] = constant_weight,
    *,
    impl: Callable[..., Any] = pgmath.policy_gradient_loss,
) -> ProofResult:
    """``length_weight``: the claimed per-episode weight w(T); ``impl``: a loss in the signature of
    pgmath.policy_gradient_loss (a mean over a fixed-size rollout: weight 1/(T·B))."""
    theta = sp.Symbol("theta", real=True)
    big_r = sp.Symbol("R", real=True)
    p = 1 / (1 + sp.exp(-theta))  # π(go | s₀)
    objective = (1 - p) * 1 + p * big_r
    grad = sp.diff(objective, theta)
    score_go = sp.diff(sp.log(p), theta)
    score_stop = sp.diff(sp.log(1 - p), theta)
    # episodes: (probability, length, Σₜ score · Gₜ)
    episodes = [
        (1 - p, 1, score_stop * 1),  # t=0: G₀ = 1
        (p, 2, score_go * big_r),  # t=0: G₀ = R; t=1: forced action, score 0
    ]
    mean = sum(prob * length_weight(length) * term for prob, length, term in episodes)
    ratio = sp.simplify(sp.factor(mean / grad))
    constant = not (ratio.free_symbols & {theta, big_r})
    positive = bool(constant and ratio.is_positive)
    witness = ""
    if not constant:
        point = {theta: 0, big_r: sp.Rational(3, 2)}
        witness = (
            f"; at θ = 0, R = 3/2: ∇J = {sp.simplify(grad.subs(point))}, "
            f"E[estimate] = {sp.simplify(mean.subs(point))}"
        )
    claims = (
        Claim(
            "E[estimate] / ∇J is a positive constant (free of θ and R)",
            positive,
            f"E[estimate] / ∇J = {to_text(ratio)}{witness}",
        ),
        _numeric(theta, big_r, grad, impl),
    )
    return ProofResult(
        name=TITLE,
        statement=STATEMENT,
        claims=claims,
        method="sympy: exact expectation over the two episodes, ratio to ∇J simplified; "
        "autograd of impl, exact expectation, vs lambdified ∇J",
        data={"ratio": to_text(ratio)},
    )


if __name__ == "__main__":
    run_module(prove())
