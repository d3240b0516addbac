"""The exact Fisher information, natural gradient, NPG and TRPO step on tabular MDPs.

With d̄(s) = d(s) / Σₛ' d(s') the *normalised* discounted state occupancy
(``mdp.discounted_occupancy(pi, normalized=True)``; d̄ = (1 − γ) d without terminal states) and
ψ(s, a) = ∇_θ log π_θ(a|s) the score::

    F(θ) = Σₛ d̄(s) Σₐ π(a|s) ψ(s, a) ψ(s, a)ᵀ                   (Fisher information)
         = ∇²_θ' Σₛ d̄(s) KL(π_θ(·|s) ‖ π_θ'(·|s)) at θ' = θ
    ∇̃J = F⁺ ∇J                                                  (natural gradient, min-norm)

Tabular softmax (θ = logits [S, A]): ψ(s, a) = e_s ⊗ (e_a − π(·|s)), so F is block diagonal with
blocks d̄(s)(diag π(·|s) − π(·|s)π(·|s)ᵀ), whose null space is the constant vector of each state,
and ∇J[s, a] = d(s) π(a|s) A(s, a). Since Σₐ π A = 0, the block equation is solved by
A(s, ·) d(s)/d̄(s), so::

    ∇̃J[s, a] = L · (A^π(s, a) − (1/|A|) Σ_b A^π(s, b)),     L = Σₛ d(s)

the advantage times L up to a per-state constant (the Fisher's null space; softmax ignores it).
Without terminal states L = 1/(1 − γ): ∇̃J = A^π/(1 − γ) (Kakade 2001, Theorem 1 with the
normalised occupancy; Agarwal et al. 2021, §5.3, eq. (19)). With terminal states L is the
expected discounted episode length. With the unnormalised occupancy the factor L disappears.

NPG with step η is then θ ← θ + η ∇̃J, i.e. for the softmax π⁽ᵗ⁺¹⁾(a|s) ∝ π⁽ᵗ⁾(a|s) exp(η L A⁽ᵗ⁾(s, a)).
Agarwal, Kakade, Lee & Mahajan (JMLR 2021), Theorem 16: for rewards in [0, 1], θ⁽⁰⁾ = 0 and
any η > 0 and starting distribution ρ, V*(ρ) − V⁽ᵀ⁾(ρ) ≤ log|A|/(ηT) + 1/((1 − γ)²T)
(:func:`npg_gap_bound`; :func:`npg_iterations` runs the exact iterations).

TRPO (Schulman et al. 2015, Appendix C): x = F⁻¹∇J by conjugate gradient on the exact F (products
F v only), step s = √(2δ / xᵀFx) x so that ½ sᵀFs = δ, then backtracking until the exact mean
KL Σₛ d̄(s) KL(π_old(·|s) ‖ π_new(·|s)) ≤ δ and J improves (:func:`trpo_step`).

Sources: Kakade, "A Natural Policy Gradient" (NeurIPS 2001); Agarwal, Kakade, Lee & Mahajan,
"On the Theory of Policy Gradient Methods: Optimality, Approximation, and Distribution Shift"
(JMLR 22, 2021), §5.3, Theorem 16; Schulman, Levine, Moritz, Jordan & Abbeel, "Trust Region
Policy Optimization" (ICML 2015), §6 and Appendix C; Nocedal & Wright, *Numerical
Optimization* (2nd ed., 2006), Algorithm 5.2 (conjugate gradient).

Checked by: tests/test_mdp_natural.py (Fisher against the Hessian of the mean KL and the closed
form; natural gradient against L·A^π and the compatible least-squares fit; NPG iterates
against the multiplicative-weights closed form and the gap against Theorem 16; TRPO: CG
direction, ½ sᵀFs = δ, the exact KL met) and the specs ``fisher_information`` and
``natural_gradient`` of :mod:`pgmath.specs.mdp_offpolicy` (rows of ``pgmath verify --area mdp``).
Docs: docs/mdp/natural_gradient.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pgmath.mdp.tabular import PolicyFn, TabularMDP
from pgmath.validation import validate_float_tensor, validate_positive

__all__ = [
    "NPGRun",
    "TRPOStep",
    "conjugate_gradient",
    "fisher_information",
    "fisher_information_reference",
    "mean_kl",
    "natural_gradient",
    "natural_gradient_reference",
    "npg_gap_bound",
    "npg_iterations",
    "optimal_state_values",
    "policy_table",
    "score_jacobian",
    "trpo_step",
]


def policy_table(mdp: TabularMDP, theta: torch.Tensor, policy: PolicyFn | None = None) -> torch.Tensor:
    """π_θ ``[S, A]``: the tabular softmax of logits ``theta [S, A]``, or ``policy(theta)``."""
    if policy is None:
        return mdp.policy(theta)
    validate_float_tensor(theta, "theta")
    pi = policy(theta.to(mdp.dtype))
    if not isinstance(pi, torch.Tensor):
        raise ValueError(f"policy(theta) must return a tensor [S, A], got {type(pi).__name__}")
    return mdp.validate_policy(pi, "policy(theta)")


def _theta(mdp: TabularMDP, theta: object, policy: PolicyFn | None) -> torch.Tensor:
    validate_float_tensor(theta, "theta")
    assert isinstance(theta, torch.Tensor)
    if policy is None and tuple(theta.shape) != (mdp.num_states, mdp.num_actions):
        raise ValueError(f"theta must be logits [S, A] = {(mdp.num_states, mdp.num_actions)}, got {tuple(theta.shape)}")
    if policy is not None and not callable(policy):
        raise ValueError(f"policy must be a callable theta -> pi [S, A], got {type(policy).__name__}")
    return theta.detach().to(dtype=mdp.dtype, device=mdp.device)


def score_jacobian(mdp: TabularMDP, theta: torch.Tensor, *, policy: PolicyFn | None = None) -> torch.Tensor:
    """ψ[s, a, :] = ∇_θ log π_θ(a|s), ``[S, A, P]`` with P = θ.numel() (θ flattened row-major).

    Tabular softmax: ψ[s, a, (s', b)] = 1[s = s'](1[a = b] − π(b|s)). A callable policy: reverse-mode
    autograd of log π_θ (``torch.autograd.functional.jacobian``).
    """
    theta = _theta(mdp, theta, policy)
    S, A = mdp.num_states, mdp.num_actions
    if policy is None:
        pi = mdp.policy(theta)
        eye_s = torch.eye(S, dtype=mdp.dtype, device=mdp.device)
        eye_a = torch.eye(A, dtype=mdp.dtype, device=mdp.device)
        centred = eye_a[None, :, :] - pi[:, None, :]  # [s, a, b] = 1[a = b] − π(b|s)
        return torch.einsum("st,sab->satb", eye_s, centred).reshape(S, A, S * A)
    shape = theta.shape

    def log_pi(flat: torch.Tensor) -> torch.Tensor:
        return torch.log(policy_table(mdp, flat.reshape(shape), policy))

    return torch.autograd.functional.jacobian(log_pi, theta.reshape(-1), vectorize=True)


def fisher_information(mdp: TabularMDP, theta: torch.Tensor, *, policy: PolicyFn | None = None) -> torch.Tensor:
    """F(θ) = Σₛ d̄(s) Σₐ π(a|s) ψ(s, a) ψ(s, a)ᵀ, ``[P, P]``, d̄ the normalised discounted occupancy.

    Args:
      mdp: the MDP.
      theta: logits ``[S, A]`` of the tabular softmax (``policy=None``), or the parameters of
        ``policy``; P = θ.numel(), θ flattened row-major.
      policy: optional callable ``theta -> pi [S, A]`` (e.g. :class:`pgmath.mdp.LinearSoftmaxPolicy`).

    Returns:
      The symmetric positive semi-definite ``[P, P]`` Fisher matrix (detached).
    """
    theta = _theta(mdp, theta, policy)
    pi = policy_table(mdp, theta, policy).detach()
    d = mdp.discounted_occupancy(pi, normalized=True)
    psi = score_jacobian(mdp, theta, policy=policy).reshape(mdp.num_states * mdp.num_actions, -1)
    w = (d[:, None] * pi).reshape(-1)
    F = psi.T @ (w[:, None] * psi)
    return (F + F.T) / 2


def natural_gradient(
    mdp: TabularMDP, theta: torch.Tensor, *, policy: PolicyFn | None = None, rtol: float = 1e-12
) -> torch.Tensor:
    """∇̃J = F(θ)⁺ ∇J(θ): the minimum-norm natural gradient, shaped like ``theta``.

    F is :func:`fisher_information` (normalised occupancy d̄ = d / L, L = Σₛ d(s)) and ∇J the
    exact policy gradient. Two exact routes, neither forming F⁺ (which loses every digit once the
    policy is nearly deterministic, κ(F) ≳ 1/eps):

    * tabular softmax (``policy=None``): F is block diagonal with blocks d̄(s)(diag π − ππᵀ) and
      ∇J[s] = d(s) π ⊙ A(s, ·); since Σₐ π A = 0 the block equation is solved by L·A(s, ·), and
      the minimum-norm solution removes the block's null space (the constant vector)::

          ∇̃J[s, a] = L (A^π(s, a) − (1/|A|) Σ_b A^π(s, b))    (0 where d(s) = 0)

    * a callable policy: the compatible least-squares fit of Kakade (2001, Theorem 1),
      argmin_w Σₛ d̄(s) Σₐ π(a|s)(ψ(s, a)ᵀw − L A^π(s, a))² of minimum norm, by an SVD of the
      √(d̄π)-weighted scores (its normal equations are F w = Σₛ d(s) Σₐ π ψ A = ∇J).

    Both equal F⁺∇J formed literally (:func:`natural_gradient_reference`) where that is accurate:
    checked by the spec ``natural_gradient`` (tests/test_specs.py) and tests/test_mdp_natural.py.

    Args:
      mdp, theta, policy: as in :func:`fisher_information`.
      rtol: (callable policy) singular values of the weighted scores below ``rtol`` · σ_max are
        the Fisher's null space (σ² are F's eigenvalues).
    """
    theta = _theta(mdp, theta, policy)
    rtol = validate_positive(rtol, "rtol")
    pi = policy_table(mdp, theta, policy).detach()
    d = mdp.discounted_occupancy(pi)
    L = d.sum()
    A = mdp.advantages(pi)
    if policy is None:
        return torch.where(d[:, None] > 0, L * (A - A.mean(-1, keepdim=True)), torch.zeros_like(A))
    weight = ((d / L)[:, None] * pi).reshape(-1).sqrt()
    X = weight[:, None] * score_jacobian(mdp, theta, policy=policy).reshape(weight.numel(), -1)
    y = weight * (L * A).reshape(-1)
    U, sv, Vh = torch.linalg.svd(X, full_matrices=False)
    keep = sv > rtol * float(sv.max())
    w = Vh[keep].T @ ((U[:, keep].T @ y) / sv[keep])
    return w.reshape(theta.shape)


def fisher_information_reference(
    mdp: TabularMDP, theta: torch.Tensor, *, policy: PolicyFn | None = None
) -> torch.Tensor:
    """F(θ) by a loop over (s, a): each score ψ(s, a) = ∇_θ log π_θ(a|s) by its own backward pass,
    added as d̄(s) π(a|s) ψ ψᵀ. The reference of :func:`fisher_information`."""
    theta = _theta(mdp, theta, policy)
    pi = policy_table(mdp, theta, policy).detach()
    d = mdp.discounted_occupancy(pi, normalized=True)
    F = torch.zeros(theta.numel(), theta.numel(), dtype=mdp.dtype, device=mdp.device)
    # over states s and actions a: one backward pass for the score, one outer product
    for s in range(mdp.num_states):
        for a in range(mdp.num_actions):
            with torch.enable_grad():
                th = theta.clone().requires_grad_(True)
                (psi,) = torch.autograd.grad(torch.log(policy_table(mdp, th, policy)[s, a]), th)
            psi = psi.reshape(-1)
            F = F + d[s] * pi[s, a] * torch.outer(psi, psi)
    return F


def _policy_gradient(mdp: TabularMDP, theta: torch.Tensor, policy: PolicyFn | None) -> torch.Tensor:
    if policy is None:
        return mdp.exact_policy_gradient(theta)  # type: ignore[return-value]
    return mdp.exact_policy_gradient(policy, theta)  # type: ignore[return-value]


def natural_gradient_reference(
    mdp: TabularMDP, theta: torch.Tensor, *, policy: PolicyFn | None = None, rtol: float = 1e-12
) -> torch.Tensor:
    """F⁺∇J literally: the eigendecomposition of :func:`fisher_information` applied to the exact
    policy gradient (eigenvalues ≤ rtol · λ_max dropped: the null space, at round-off ≈ eps · λ_max). The reference of
    :func:`natural_gradient`; loses accuracy when π is nearly deterministic (κ(F) ≳ 1/eps)."""
    theta = _theta(mdp, theta, policy)
    rtol = validate_positive(rtol, "rtol")
    F = fisher_information(mdp, theta, policy=policy)
    g = _policy_gradient(mdp, theta, policy).reshape(-1).to(mdp.dtype)
    lam, U = torch.linalg.eigh(F)
    keep = lam > rtol * float(lam.abs().max())
    return (U[:, keep] @ ((U[:, keep].T @ g) / lam[keep])).reshape(theta.shape)


# ---------------------------------------------------------------------------------------------
# NPG


def optimal_state_values(mdp: TabularMDP, *, max_iterations: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(V* ``[S]``, a deterministic optimal policy ``[S, A]``) by Howard's policy iteration.

    Each iteration evaluates the greedy policy exactly (a linear solve) and stops when the greedy
    policy no longer changes (ties broken towards the current action): exact, finitely many steps.
    Needs γ < 1, or γ = 1 with every policy terminating.
    """
    S, A = mdp.num_states, mdp.num_actions
    action = torch.zeros(S, dtype=torch.long, device=mdp.device)
    for _ in range(max_iterations):
        pi = torch.nn.functional.one_hot(action, A).to(mdp.dtype)
        V = mdp.state_values(pi)
        Q = mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, V)
        best = Q.max(-1).values
        current = Q.gather(1, action[:, None]).squeeze(1)
        improve = (best > current + 1e-12 * (1 + best.abs())) & ~mdp.terminal
        if not bool(improve.any()):
            return V, pi
        action = torch.where(improve, Q.argmax(-1), action)
    raise ValueError(f"policy iteration did not converge in max_iterations = {max_iterations}")


def npg_gap_bound(mdp: TabularMDP, eta: float, steps: int) -> float:
    """Agarwal et al. (2021), Theorem 16: V*(ρ) − V⁽ᵀ⁾(ρ) ≤ log|A|/(ηT) + 1/((1 − γ)²T), T = ``steps``.

    Stated for rewards in [0, 1], γ < 1, θ⁽⁰⁾ = 0 and NPG step η (θ ← θ + η F⁺∇J, normalised
    occupancy); holds for every starting distribution ρ.
    """
    eta = validate_positive(eta, "eta")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not mdp.gamma < 1:
        raise ValueError("the bound needs gamma < 1")
    return math.log(mdp.num_actions) / (eta * steps) + 1.0 / ((1 - mdp.gamma) ** 2 * steps)


@dataclass(frozen=True)
class NPGRun:
    """Exact NPG iterations: ``thetas [T + 1, *θ]`` and ``values [T + 1]`` = J(θ⁽ᵗ⁾) = μ₀ · V⁽ᵗ⁾."""

    thetas: torch.Tensor
    values: torch.Tensor


def npg_iterations(
    mdp: TabularMDP,
    theta0: torch.Tensor,
    *,
    eta: float,
    steps: int,
    policy: PolicyFn | None = None,
    direction: Callable[..., torch.Tensor] = natural_gradient,
) -> NPGRun:
    """Run θ⁽ᵗ⁺¹⁾ = θ⁽ᵗ⁾ + η ∇̃J(θ⁽ᵗ⁾) exactly for ``steps`` iterations.

    Args:
      mdp, policy: as in :func:`natural_gradient`; theta0: θ⁽⁰⁾.
      eta: step size η > 0. steps: T ≥ 1.
      direction: ``direction(mdp, theta, policy=...)`` (default :func:`natural_gradient`; the
        tests pass wrong variants here to see the checks fail).
    """
    eta = validate_positive(eta, "eta")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    theta = _theta(mdp, theta0, policy)
    thetas, values = [theta], [float(mdp.mu0 @ mdp.state_values(policy_table(mdp, theta, policy)))]
    for _ in range(steps):
        theta = theta + eta * direction(mdp, theta, policy=policy)
        thetas.append(theta)
        values.append(float(mdp.mu0 @ mdp.state_values(policy_table(mdp, theta, policy))))
    return NPGRun(torch.stack(thetas), torch.tensor(values, dtype=mdp.dtype))


# ---------------------------------------------------------------------------------------------
# TRPO


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, max_iterations: int | None = None,
    tol: float = 1e-12,
) -> tuple[torch.Tensor, int]:
    """Solve A x = b for symmetric PSD A given only v ↦ A v (Nocedal & Wright, Algorithm 5.2).

    Starts at x = 0, so for b in the range of a singular A the iterates stay in that range and
    converge to the minimum-norm solution A⁺ b. Stops when ‖r‖ ≤ tol · ‖b‖ or after
    ``max_iterations`` (default b.numel()). Returns (x, iterations).
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = float(r @ r)
    stop = tol * float(b.norm())
    n = b.numel() if max_iterations is None else max_iterations
    for k in range(n):
        if math.sqrt(rr) <= stop:
            return x, k
        Ap = matvec(p)
        alpha = rr / float(p @ Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, n


def mean_kl(
    mdp: TabularMDP, theta_old: torch.Tensor, theta_new: torch.Tensor, *, policy: PolicyFn | None = None
) -> float:
    """Σₛ d̄_old(s) KL(π_old(·|s) ‖ π_new(·|s)), d̄_old the old policy's normalised occupancy."""
    old = policy_table(mdp, _theta(mdp, theta_old, policy), policy).detach()
    new = policy_table(mdp, _theta(mdp, theta_new, policy), policy).detach()
    d = mdp.discounted_occupancy(old, normalized=True)
    kl = torch.where(old > 0, old * (torch.log(old) - torch.log(new)), torch.zeros_like(old)).sum(-1)
    return float(d @ kl)


@dataclass(frozen=True)
class TRPOStep:
    """The outcome of :func:`trpo_step`.

    Attributes:
      theta: the new parameters. direction: x ≈ F⁻¹∇J from conjugate gradient.
      full_step: s = √(2δ / xᵀFx) x (½ sᵀFs = δ). step_fraction: the accepted fraction of it.
      quadratic_kl: ½ sᵀFs of the full step (= δ). kl: the exact mean KL of the accepted step.
      improvement: J(θ_new) − J(θ). cg_iterations: conjugate-gradient iterations used.
      cg_residual: ‖F x − ∇J‖ / ‖∇J‖.
    """

    theta: torch.Tensor
    direction: torch.Tensor
    full_step: torch.Tensor
    step_fraction: float
    quadratic_kl: float
    kl: float
    improvement: float
    cg_iterations: int
    cg_residual: float


def trpo_step(
    mdp: TabularMDP,
    theta: torch.Tensor,
    *,
    max_kl: float = 0.01,
    policy: PolicyFn | None = None,
    cg_iterations: int | None = None,
    backtrack: float = 0.5,
    max_backtracks: int = 20,
) -> TRPOStep:
    """One exact TRPO step: CG on the exact Fisher, scale to ½ sᵀFs = δ, backtrack on the exact KL.

    Args:
      mdp, theta, policy: as in :func:`natural_gradient`.
      max_kl: δ > 0, the trust region Σₛ d̄(s) KL(π_θ(·|s) ‖ π_θ'(·|s)) ≤ δ.
      cg_iterations: conjugate-gradient iterations (default P = θ.numel(): exact up to round-off).
      backtrack: factor in (0, 1) the step is shrunk by while the KL exceeds δ or J does not improve.
      max_backtracks: shrinks tried before giving up (then θ is returned unchanged, fraction 0).
    """
    max_kl = validate_positive(max_kl, "max_kl")
    if not 0 < backtrack < 1:
        raise ValueError(f"backtrack must be in (0, 1), got {backtrack!r}")
    theta = _theta(mdp, theta, policy)
    F = fisher_information(mdp, theta, policy=policy)
    g = _policy_gradient(mdp, theta, policy).reshape(-1).to(mdp.dtype)
    x, iters = conjugate_gradient(lambda v: F @ v, g, max_iterations=cg_iterations)
    residual = float((F @ x - g).norm()) / max(float(g.norm()), 1e-300)
    xFx = float(x @ (F @ x))
    scale = math.sqrt(2 * max_kl / xFx) if xFx > 0 else 0.0
    full = scale * x
    quad = 0.5 * float(full @ (F @ full))
    J0 = float(mdp.mu0 @ mdp.state_values(policy_table(mdp, theta, policy)))
    fraction = 1.0
    for _ in range(max_backtracks + 1):
        new = theta + fraction * full.reshape(theta.shape)
        kl = mean_kl(mdp, theta, new, policy=policy)
        J = float(mdp.mu0 @ mdp.state_values(policy_table(mdp, new, policy)))
        if kl <= max_kl and J > J0:
            return TRPOStep(new, x.reshape(theta.shape), full.reshape(theta.shape), fraction, quad, kl, J - J0,
                            iters, residual)
        fraction *= backtrack
    return TRPOStep(theta, x.reshape(theta.shape), full.reshape(theta.shape), 0.0, quad, 0.0, 0.0, iters, residual)

