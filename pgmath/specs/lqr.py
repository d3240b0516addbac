"""Specs of the exact LQR cost and gradient of :mod:`pgmath.lqr` (verify area ``"lqr"``).

    C(K)  = tr((Q + KᵀRK) Σ_K) + σ² tr R / (1 − γ)
    ∇C(K) = 2 ((R + γ BᵀP_K B) K − γ BᵀP_K A) Σ_K
    P_K = Q + KᵀRK + γ A_Kᵀ P_K A_K,   Σ_K = Σ₀ + γσ²/(1 − γ) BBᵀ + γ A_K Σ_K A_Kᵀ,   A_K = A − BK

for x' = Ax + Bu, u = −Kx + σε (derivation: docs/lqr/index.md). Each spec's function is a method
of :class:`pgmath.lqr.LQR` called unbound (``LQR.cost(system, K)``); the references sum the
series of expected per-step costs term by term (:mod:`pgmath.lqr.reference`; the gradient's is
autograd through that loop). Properties compare an implementation with: that series, the value
form tr(P_KΣ₀) + … with P_K from SciPy's LAPACK Lyapunov solver, the scalar closed form written
by hand, central finite differences, autograd through both Lyapunov solvers, and Fazel et al.'s
published formula in the case it covers (γ = 1, σ = 0).

Tolerances: :data:`TOL` = 1e-10 relative to max(1, |value|) (float64); finite differences:
:data:`FD_TOL` = 1e-6 relative. The wrong variants are off by ≥ 1e-3 relative on the suites.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from pgmath.lqr import (
    LQR,
    lqr_cost_reference,
    lqr_gradient_reference,
    scalar_cost,
    scalar_gradient,
    solve_discrete_lyapunov,
)
from pgmath.mdp.finite_differences import central_difference_gradient
from pgmath.specs.spec import BadInput, Call, Property, Spec, WrongVariant, max_abs_error
from pgmath.verification import Outcome, VerifyContext

__all__ = ["FAMILY", "FD_TOL", "TOL", "lqr_suite", "random_lqr"]

F64 = torch.float64
TOL = 1e-10
FD_TOL = 1e-6

#: (n, m, γ, σ) of the random systems; quick runs use the first three.
_CASES = ((2, 1, 0.9, 0.5), (3, 2, 1.0, 0.0), (1, 1, 0.5, 1.0), (3, 1, 0.95, 0.3), (4, 3, 0.8, 0.0))


def random_lqr(n: int, m: int, gamma: float, sigma: float, *, generator: torch.Generator,
               radius: float = 0.8) -> tuple[LQR, torch.Tensor]:
    """A random system (A scaled to spectral radius ``radius``, Q, R, Σ₀ positive definite) and a
    stabilising gain K whose entries are multiples of 1/8 (exact in float16 and bfloat16)."""
    kw = {"generator": generator, "dtype": F64, "device": generator.device}
    A = torch.randn(n, n, **kw)
    A = radius * A / torch.linalg.eigvals(A).abs().max()
    B = 0.5 * torch.randn(n, m, **kw)
    Mq, Ms = torch.randn(n, n, **kw), torch.randn(n, n, **kw)
    Q = Mq @ Mq.mT / n + 0.1 * torch.eye(n, dtype=F64, device=A.device)
    S0 = Ms @ Ms.mT / n + 0.1 * torch.eye(n, dtype=F64, device=A.device)
    R = torch.diag(0.5 + torch.rand(m, **kw))
    system = LQR(A, B, Q, R, S0, gamma=gamma, sigma=sigma)
    K = torch.round(8 * 0.3 * torch.randn(m, n, **kw)) / 8
    if system.spectral_radius(K) >= 0.97:
        K = torch.zeros_like(K)
    return system, K


def lqr_suite(ctx: VerifyContext, offset: int) -> list[tuple[LQR, torch.Tensor]]:
    """Random systems with stabilising gains on ``ctx.device`` (seed ``ctx.seed + offset``)."""
    g = ctx.generator(offset)
    return [random_lqr(*case, generator=g) for case in (_CASES[:3] if ctx.quick else _CASES)]


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return max_abs_error(got, want) / max(1.0, float(torch.as_tensor(want).abs().max()))


def _within(err: float, tol: float, what: str = "max rel. err") -> Outcome:
    return Outcome(err <= tol, f"{what} = {err:.1e}", {"error": err, "tol": tol})


def _scipy_value_matrix(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """P_K from scipy.linalg.solve_discrete_lyapunov (LAPACK), an independent solver."""
    from scipy.linalg import solve_discrete_lyapunov as scipy_lyapunov

    M = (math.sqrt(system.gamma) * (system.A - system.B @ K)).cpu().numpy()
    W = (system.Q + K.mT @ system.R @ K).cpu().numpy()
    return torch.as_tensor(scipy_lyapunov(M.T, W), dtype=F64, device=system.device)


def _scipy_state_covariance(system: LQR, K: torch.Tensor) -> torch.Tensor:
    from scipy.linalg import solve_discrete_lyapunov as scipy_lyapunov

    M = (math.sqrt(system.gamma) * (system.A - system.B @ K)).cpu().numpy()
    return torch.as_tensor(scipy_lyapunov(M, system.initial_covariance().cpu().numpy()), dtype=F64,
                           device=system.device)


_SCALARS = ((1.2, 0.7, 1.0, 0.5, 2.0, 0.9, 0.4, 0.8), (0.5, 1.0, 2.0, 1.0, 1.0, 1.0, 0.0, -0.3),
            (-0.9, 0.4, 0.3, 2.0, 0.5, 0.6, 1.5, -0.5))


def _scalar_check(impl: Callable, ctx: VerifyContext, closed: Callable[..., float]) -> Outcome:
    err = 0.0
    for a, b, q, r, s0, gamma, sigma, k in _SCALARS:
        system = LQR([[a]], [[b]], [[q]], [[r]], [[s0]], gamma=gamma, sigma=sigma, device=ctx.device)
        got = float(impl(system, torch.tensor([[k]], dtype=F64, device=ctx.device)).reshape(()))
        want = closed(a, b, q, r, s0, gamma, sigma, k)
        err = max(err, abs(got - want) / max(1.0, abs(want)))
    return _within(err, TOL)


# ---------------------------------------------------------------------------------------------
# bad inputs


def _bad_inputs() -> tuple[BadInput, ...]:
    def system(d, **kw):
        return LQR([[1.1, 0.2], [0.0, 0.9]], [[0.0], [1.0]], torch.eye(2, dtype=F64), [[1.0]],
                   torch.eye(2, dtype=F64), device=d, **{"gamma": 0.9, "sigma": 0.5, **kw})

    def gain(d, *values):
        return torch.tensor([values], dtype=F64, device=d)

    nan_A = [[float("nan"), 0.0], [0.0, 0.5]]
    return (
        BadInput("an unstable K (ρ(√γ(A − BK)) ≥ 1)", lambda f, d: f(system(d), gain(d, 0.0, 0.0)), "K"),
        BadInput("K of the wrong shape", lambda f, d: f(system(d), torch.zeros(2, 2, dtype=F64, device=d)), "K"),
        BadInput("NaN in K", lambda f, d: f(system(d), gain(d, float("nan"), 1.0)), "K"),
        BadInput("non-finite A", lambda f, d: f(LQR(nan_A, [[0.0], [1.0]], torch.eye(2), [[1.0]], torch.eye(2),
                                                    device=d), gain(d, 0.0, 0.0)), "A"),
        BadInput("B of the wrong shape", lambda f, d: f(LQR(torch.eye(2), [[0.0, 1.0, 0.0]], torch.eye(2), [[1.0]],
                                                            torch.eye(2), device=d), gain(d, 0.0, 0.0)), "B"),
        BadInput("sigma < 0", lambda f, d: f(system(d, sigma=-0.1), gain(d, 0.5, 1.0)), "sigma"),
        BadInput("sigma > 0 with gamma = 1 (infinite cost)", lambda f, d: f(system(d, gamma=1.0), gain(d, 0.5, 1.0)),
                 "gamma"),
    )


def _inputs():
    """Calls (system, K) on random systems: n ∈ 1..3, m ∈ 1..2, γ ∈ {0.5, 0.9, 1}, σ ∈ {0, 0.5, 1}
    (σ = 0 when γ = 1), K multiples of 1/8."""
    from hypothesis import strategies as st

    def build(t: tuple[int, int, float, float, int]) -> Call:
        n, m, gamma, sigma, seed = t
        system, K = random_lqr(n, m, gamma, 0.0 if gamma == 1.0 else sigma,
                               generator=torch.Generator().manual_seed(seed))
        return Call((system, K))

    return st.tuples(st.integers(1, 3), st.integers(1, 2), st.sampled_from((0.5, 0.9, 1.0)),
                     st.sampled_from((0.0, 0.5, 1.0)), st.integers(0, 2**16)).map(build)


# ---------------------------------------------------------------------------------------------
# C(K)


def _cost_series(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for system, K in lqr_suite(ctx, 1):
        err = max(err, _rel(impl(system, K), lqr_cost_reference(system, K)))
    return _within(err, TOL)


def _cost_value_form(impl: Callable, ctx: VerifyContext) -> Outcome:
    """C = tr(P_K Σ₀) + γσ²/(1 − γ) tr(BᵀP_K B) + σ² tr R/(1 − γ), P_K by SciPy."""
    err = 0.0
    for system, K in lqr_suite(ctx, 2):
        P = _scipy_value_matrix(system, K)
        c = system.gamma * system.sigma**2 / (1 - system.gamma) if system.sigma > 0 else 0.0
        want = torch.trace(P @ system.Sigma0) + c * torch.trace(system.B.mT @ P @ system.B) + system.noise_cost
        err = max(err, _rel(impl(system, K), want))
    return _within(err, TOL)


def cost_without_noise_cost(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """E[uᵀRu] taken as xᵀKᵀRKx: the noise's own cost σ² tr R / (1 − γ) left out."""
    return system.cost(K) - system.noise_cost


def cost_noise_from_t0(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """Σ_K with σ²/(1 − γ) BBᵀ: the policy noise counted as already in x₀ (off by one step)."""
    K = system.validate_gain(K)
    M = math.sqrt(system.gamma) * (system.A - system.B @ K)
    W = system.Sigma0 + (system.sigma**2 / (1 - system.gamma) if system.sigma > 0 else 0.0) * system.B @ system.B.mT
    return torch.trace((system.Q + K.mT @ system.R @ K) @ solve_discrete_lyapunov(M, W)) + system.noise_cost


def cost_sigma_missing_noise(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """Σ_K from Σ₀ alone (the noiseless Σ_K of Fazel et al.) with σ > 0."""
    return system.replace(sigma=0.0).cost(K) + system.noise_cost


def _plus_K_parts(system: LQR, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P and Σ of the closed loop A + BK (the u = +Kx convention), without a stability check."""
    M = math.sqrt(system.gamma) * (system.A + system.B @ K)
    P = solve_discrete_lyapunov(M.mT, system.Q + K.mT @ system.R @ K)
    return P, solve_discrete_lyapunov(M, system.initial_covariance())


def cost_plus_K(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """The formula written for u = +Kx (closed loop A + BK): C(−K)."""
    K = K.to(F64)
    _, S = _plus_K_parts(system, K)
    return torch.trace((system.Q + K.mT @ system.R @ K) @ S) + system.noise_cost


LQR_COST = Spec(
    name="lqr_cost",
    title="LQR cost C(K)",
    area="lqr",
    formula="C(K) = E Σₜ γᵗ (xₜᵀQxₜ + uₜᵀRuₜ) = tr((Q + KᵀRK) Σ_K) + σ² tr R/(1 − γ), "
            "Σ_K = Σ₀ + γσ²/(1 − γ) BBᵀ + γ(A − BK)Σ_K(A − BK)ᵀ",
    source="Fazel, Ge, Kakade & Mesbahi (ICML 2018), §2 (C(K) = tr(P_K Σ₀), γ = 1, σ = 0); "
           "the discounted, noisy form derived in docs/lqr/index.md",
    function=LQR.cost,
    reference=lqr_cost_reference,
    implementations={"kronecker": LQR.cost, "doubling": functools.partial(LQR.cost, method="doubling"),
                     "reference": lqr_cost_reference},
    properties=(
        Property("series", "== Σₜ γᵗ E[cₜ] summed term by term (second-moment recursion)", _cost_series),
        Property("value_form", "== tr(P_KΣ₀) + γσ²/(1−γ) tr(BᵀP_KB) + σ² tr R/(1−γ), P_K by SciPy",
                 _cost_value_form),
        Property("scalar", "n = m = 1: C(k) = (q + rk²) w/(1 − γ(a − bk)²) + σ²r/(1 − γ)",
                 lambda impl, ctx: _scalar_check(impl, ctx, scalar_cost)),
    ),
    wrong_variants=(
        WrongVariant("cost_without_noise_cost", "the policy noise's own cost σ² tr R/(1 − γ) left out",
                     "derivation", cost_without_noise_cost),
        WrongVariant("cost_noise_from_t0", "Σ_K's noise term σ²/(1 − γ) BBᵀ instead of γσ²/(1 − γ) BBᵀ "
                     "(noise counted in x₀)", "derivation", cost_noise_from_t0),
        WrongVariant("cost_sigma_missing_noise", "Σ_K without the noise term (Fazel et al.'s noiseless Σ_K) "
                     "used with σ > 0", "derivation (Fazel et al. 2018, §2, applied to a noisy policy)",
                     cost_sigma_missing_noise),
        WrongVariant("cost_plus_K", "gain read in the u = +Kx convention: C(−K)",
                     "derivation (Fazel et al. 2018 write u = −Kx; Bertsekas writes u = Lx)", cost_plus_K),
    ),
    bad_inputs=_bad_inputs(),
    inputs=_inputs,
    tolerance=1e-9,
    doc="docs/lqr/index.md",
)

# ---------------------------------------------------------------------------------------------
# ∇C(K)


def _autograd(system: LQR, K: torch.Tensor, method: str) -> torch.Tensor:
    K = K.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(system.cost(K, method=method), K)
    return g


def _grad_autograd(method: str) -> Callable[[Callable, VerifyContext], Outcome]:
    def run(impl: Callable, ctx: VerifyContext) -> Outcome:
        err = 0.0
        for system, K in lqr_suite(ctx, 3):
            err = max(err, _rel(impl(system, K), _autograd(system, K, method)))
        return _within(err, TOL)

    return run


def _grad_finite_differences(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for system, K in lqr_suite(ctx, 4):
        fd = central_difference_gradient(lambda k, s=system: s.cost(k), K)
        err = max(err, max_abs_error(impl(system, K), fd) / (1.0 + float(fd.abs().max())))
    return _within(err, FD_TOL, "max |err| / (1 + max |∇C|)")


def _grad_fazel(impl: Callable, ctx: VerifyContext) -> Outcome:
    """γ = 1, σ = 0: ∇C = 2((R + BᵀP_KB)K − BᵀP_KA)Σ_K (Fazel et al. Lemma 1), P_K, Σ_K by SciPy."""
    err = 0.0
    for system, K in lqr_suite(ctx, 5):
        system = system.replace(gamma=1.0, sigma=0.0)
        if system.spectral_radius(K) >= 1:
            continue
        P, S = _scipy_value_matrix(system, K), _scipy_state_covariance(system, K)
        A, B, R = system.A, system.B, system.R
        err = max(err, _rel(impl(system, K), 2 * ((R + B.mT @ P @ B) @ K - B.mT @ P @ A) @ S))
    return _within(err, TOL)


def _grad_series(impl: Callable, ctx: VerifyContext) -> Outcome:
    err = 0.0
    for system, K in lqr_suite(ctx, 6):
        err = max(err, _rel(impl(system, K), lqr_gradient_reference(system, K)))
    return _within(err, TOL)


def gradient_fazel_undiscounted(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """2((R + BᵀP_KB)K − BᵀP_KA)Σ_K with the discounted P_K, Σ_K: Fazel's γ = 1 formula used with γ < 1."""
    P, S = system.value_matrix(K), system.state_covariance(K)
    A, B, R = system.A, system.B, system.R
    return 2 * ((R + B.mT @ P @ B) @ K - B.mT @ P @ A) @ S


def gradient_sigma_missing_noise(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """Σ_K without the noise term γσ²/(1 − γ) BBᵀ (the noiseless Σ_K) with σ > 0."""
    return system.replace(sigma=0.0).gradient(K)


def gradient_of_negative_cost(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """∇(−C): the ascent direction of J = −C returned as ∇C."""
    return -system.gradient(K)


def gradient_plus_K(system: LQR, K: torch.Tensor) -> torch.Tensor:
    """The formula written for u = +Kx (closed loop A + BK, +γBᵀPA): ∂C(−K)/∂K = −∇C(−K)."""
    K = K.to(F64)
    P, S = _plus_K_parts(system, K)
    g, A, B, R = system.gamma, system.A, system.B, system.R
    return 2 * ((R + g * B.mT @ P @ B) @ K + g * B.mT @ P @ A) @ S


LQR_GRADIENT = Spec(
    name="lqr_gradient",
    title="LQR gradient ∇C(K)",
    area="lqr",
    formula="∇C(K) = 2((R + γBᵀP_KB)K − γBᵀP_KA)Σ_K,  P_K = Q + KᵀRK + γ(A − BK)ᵀP_K(A − BK)",
    source="Fazel, Ge, Kakade & Mesbahi (ICML 2018), Lemma 1 (γ = 1, σ = 0); discounted, noisy "
           "form derived in docs/lqr/index.md",
    function=LQR.gradient,
    reference=lqr_gradient_reference,
    implementations={"kronecker": LQR.gradient, "doubling": functools.partial(LQR.gradient, method="doubling"),
                     "reference": lqr_gradient_reference},
    properties=(
        Property("finite_differences", "== central finite differences of C (h = 1e-5)", _grad_finite_differences),
        Property("autograd_kronecker", "== autograd through the Kronecker Lyapunov solve of C",
                 _grad_autograd("kronecker")),
        Property("autograd_doubling", "== autograd through the doubling Lyapunov iteration of C",
                 _grad_autograd("doubling")),
        Property("series", "== autograd through the series Σₜ γᵗ E[cₜ]", _grad_series),
        Property("fazel", "γ = 1, σ = 0: == Fazel et al. Lemma 1, P_K and Σ_K by SciPy", _grad_fazel),
        Property("scalar", "n = m = 1: C'(k) = 2w(rk − γb(a − bk)p)/(1 − γ(a − bk)²)",
                 lambda impl, ctx: _scalar_check(impl, ctx, scalar_gradient)),
    ),
    wrong_variants=(
        WrongVariant("gradient_fazel_undiscounted", "Fazel et al.'s undiscounted formula (no γ on BᵀP_K) used "
                     "with γ < 1", "Fazel et al. (ICML 2018), Lemma 1, applied to a discounted cost",
                     gradient_fazel_undiscounted),
        WrongVariant("gradient_sigma_missing_noise", "Σ_K missing the noise term γσ²/(1 − γ) BBᵀ", "derivation",
                     gradient_sigma_missing_noise),
        WrongVariant("gradient_of_negative_cost", "∇(−C) returned (reward-ascent sign)", "derivation",
                     gradient_of_negative_cost),
        WrongVariant("gradient_plus_K", "K sign convention u = +Kx: −∇C(−K)",
                     "derivation (u = −Kx in Fazel et al. 2018, u = Lx in Bertsekas)", gradient_plus_K),
    ),
    bad_inputs=_bad_inputs(),
    inputs=_inputs,
    tolerance=1e-8,
    doc="docs/lqr/index.md",
)

FAMILY: tuple[Spec, ...] = (LQR_COST, LQR_GRADIENT)
