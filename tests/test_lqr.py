"""pgmath.lqr: the exact LQR oracle (closed forms, finite differences, autograd through the
Lyapunov solves), the sampler, the Gaussian-policy estimators, the gymnasium env, bad input.

Statistical tests use fixed seeds and α = 10⁻³; each states the power it has (the minimum
detectable bias at power 0.9, asserted below a bound) and is shown rejecting a biased variant.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pgmath.lqr import (
    BIASED_LQR_ESTIMATORS,
    LQR,
    UNBIASED_LQR_ESTIMATORS,
    example_gain,
    example_system,
    lqr_cost_reference,
    lqr_gradient_reference,
    lqr_gradient_samples,
    scalar_cost,
    scalar_gradient,
    solve_discrete_lyapunov,
)
from pgmath.mdp import central_difference_gradient
from pgmath.specs import SPECS
from pgmath.specs.lqr import random_lqr
from pgmath.stats import min_detectable_bias, unbiasedness_test

F64 = torch.float64
ALPHA = 1e-3
CASES = [(2, 1, 0.9, 0.5), (3, 2, 1.0, 0.0), (1, 1, 0.5, 1.0), (3, 3, 0.95, 0.3)]


def _case(i: int):
    return random_lqr(*CASES[i], generator=torch.Generator().manual_seed(10 + i))


@pytest.mark.parametrize("method", ["kronecker", "doubling"])
def test_lyapunov_solvers_agree_with_scipy(method):
    from scipy.linalg import solve_discrete_lyapunov as scipy_lyapunov

    g = torch.Generator().manual_seed(0)
    M = torch.randn(4, 4, generator=g, dtype=F64)
    M = 0.9 * M / torch.linalg.eigvals(M).abs().max()
    W = torch.randn(4, 4, generator=g, dtype=F64)
    W = W @ W.T
    X = solve_discrete_lyapunov(M, W, method=method)
    assert torch.allclose(X, torch.as_tensor(scipy_lyapunov(M.numpy(), W.numpy())), atol=1e-10, rtol=0)
    assert float((X - M @ X @ M.T - W).abs().max()) <= 1e-10


@pytest.mark.parametrize("i", range(len(CASES)))
def test_cost_matches_the_series(i):
    system, K = _case(i)
    for method in ("kronecker", "doubling"):
        assert abs(float(system.cost(K, method=method) - lqr_cost_reference(system, K))) <= 1e-10 * max(
            1.0, float(system.cost(K)))


@pytest.mark.parametrize("i", range(len(CASES)))
def test_gradient_closed_form_autograd_and_finite_differences(i):
    system, K = _case(i)
    g = system.gradient(K)
    scale = max(1.0, float(g.abs().max()))
    for method in ("kronecker", "doubling"):
        Kg = K.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(system.cost(Kg, method=method), Kg)
        assert float((g - auto).abs().max()) <= 1e-10 * scale
    assert float((g - lqr_gradient_reference(system, K)).abs().max()) <= 1e-10 * scale
    fd = central_difference_gradient(lambda k: system.cost(k), K)
    assert float((g - fd).abs().max()) <= 1e-6 * (1 + float(fd.abs().max()))


def test_fd_check_rejects_the_undiscounted_formula():
    """The finite-difference comparison above can fail: Fazel's γ = 1 formula with γ = 0.9."""
    system, K = _case(0)
    wrong = SPECS["lqr_gradient"].variant("gradient_fazel_undiscounted").fn(system, K)
    fd = central_difference_gradient(lambda k: system.cost(k), K)
    assert float((wrong - fd).abs().max()) > 1e-3 * (1 + float(fd.abs().max()))


def test_scalar_closed_form():
    for a, b, q, r, s0, gamma, sigma, k in [(1.2, 0.7, 1.0, 0.5, 2.0, 0.9, 0.4, 0.8), (0.5, 1.0, 2.0, 1.0, 1.0, 1.0, 0.0, -0.3)]:
        system = LQR([[a]], [[b]], [[q]], [[r]], [[s0]], gamma=gamma, sigma=sigma)
        K = torch.tensor([[k]], dtype=F64)
        assert float(system.cost(K)) == pytest.approx(scalar_cost(a, b, q, r, s0, gamma, sigma, k), rel=1e-12)
        assert float(system.gradient(K)) == pytest.approx(scalar_gradient(a, b, q, r, s0, gamma, sigma, k), rel=1e-12)


def test_value_form_and_value_offset():
    system, K = example_system(), example_gain()
    P = system.value_matrix(K)
    c = system.gamma * system.sigma**2 / (1 - system.gamma)
    want = torch.trace(P @ system.Sigma0) + c * torch.trace(system.B.T @ P @ system.B) + system.noise_cost
    assert abs(float(system.cost(K) - want)) <= 1e-10
    # V(x) = xᵀPx + v averaged over x₀ ~ Σ₀ is C(K)
    assert abs(float(torch.trace(P @ system.Sigma0)) + system.value_offset(K) - float(system.cost(K))) <= 1e-10


def test_finite_horizon_gradient_equals_autograd_and_converges():
    system, K = example_system(), example_gain()
    for T in (1, 5, 40):
        Kg = K.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(system.finite_horizon_cost(Kg, T), Kg)
        assert float((system.finite_horizon_gradient(K, T) - auto).abs().max()) <= 1e-10
        P, v = system.finite_horizon_values(K, T)
        assert abs(float(torch.trace(P[0] @ system.Sigma0) + v[0] - system.finite_horizon_cost(K, T))) <= 1e-10
    far = system.finite_horizon_gradient(K, 200)
    assert float((far - system.gradient(K)).abs().max()) <= 1e-10


def test_reference_values_page_numbers():
    """The figures of docs/reference-values.md (LQR section)."""
    system, K = example_system(), example_gain()
    assert f"{float(system.cost(K)):.6f}" == "23.405311"
    assert [f"{x:.6f}" for x in system.gradient(K).flatten().tolist()] == [
        "-9.109494", "-4.879720", "0.749864", "-8.076725"]
    assert f"{scalar_cost(1.2, 0.7, 1.0, 0.5, 2.0, 0.9, 0.4, 0.8):.6f}" == REF_SCALAR_COST
    assert f"{scalar_gradient(1.2, 0.7, 1.0, 0.5, 2.0, 0.9, 0.4, 0.8):.6f}" == REF_SCALAR_GRADIENT


REF_SCALAR_COST = "6.456665"
REF_SCALAR_GRADIENT = "-3.796653"


# --------------------------------------------------------------------------------------- bad input
def _system(**kw):
    return LQR([[1.1, 0.2], [0.0, 0.9]], [[0.0], [1.0]], np.eye(2), [[1.0]], np.eye(2),
               **{"gamma": 0.9, "sigma": 0.5, **kw})


def test_unstable_gain_is_refused_naming_K():
    system = _system()
    K = torch.zeros(1, 2, dtype=F64)  # open loop: ρ(√0.9 A) = √0.9 · 1.1 > 1
    assert system.spectral_radius(K) >= 1
    for call in (system.cost, system.gradient, system.value_matrix, system.state_covariance,
                 lambda k: lqr_cost_reference(system, k)):
        with pytest.raises(ValueError, match="K"):
            call(K)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"A": [[float("nan"), 0.0], [0.0, 0.5]]}, "A"),
    ({"B": [[float("inf")], [1.0]]}, "B"),
    ({"Q": [[1.0, 0.0], [0.0, float("nan")]]}, "Q"),
    ({"A": np.eye(3)}, "B"),
    ({"B": [[0.0, 1.0, 0.0]]}, "B"),
    ({"Q": np.eye(3)}, "Q"),
    ({"R": np.eye(2)}, "R"),
    ({"R": [[0.0]]}, "R"),
    ({"Sigma0": [[1.0, 0.0], [0.0, -1.0]]}, "Sigma0"),
    ({"Q": [[1.0, 0.5], [0.0, 1.0]]}, "Q"),
])
def test_bad_matrices_are_refused_by_name(kwargs, name):
    args = {"A": [[0.5, 0.2], [0.0, 0.5]], "B": [[0.0], [1.0]], "Q": np.eye(2), "R": [[1.0]], "Sigma0": np.eye(2)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        LQR(args["A"], args["B"], args["Q"], args["R"], args["Sigma0"], gamma=0.9)


def test_bad_gain_and_scalars_are_refused_by_name():
    system = LQR([[0.5, 0.2], [0.0, 0.5]], [[0.0], [1.0]], np.eye(2), [[1.0]], np.eye(2), gamma=0.9, sigma=0.5)
    for K in (torch.zeros(2, 2, dtype=F64), torch.tensor([[float("nan"), 0.0]], dtype=F64),
              torch.zeros(1, 2, dtype=torch.long), np.zeros((1, 2))):
        with pytest.raises(ValueError, match="K"):
            system.cost(K)
    with pytest.raises(ValueError, match="sigma"):
        _system(sigma=-0.1)
    with pytest.raises(ValueError, match="gamma"):
        _system(gamma=1.0)
    with pytest.raises(ValueError, match="gamma"):
        _system(gamma=1.5)
    with pytest.raises(ValueError, match="horizon"):
        system.finite_horizon_cost(torch.zeros(1, 2, dtype=F64), 0)
    with pytest.raises(ValueError, match="generator"):
        system.sample(torch.zeros(1, 2, dtype=F64), 4, 3, generator=None)


# --------------------------------------------------------------------------------------- sampler
def test_sampler_layout_and_second_moments():
    system, K = example_system(), example_gain()
    traj = system.sample(K, 40_000, 5, generator=torch.Generator().manual_seed(1))
    assert traj.states.shape == (6, 40_000, 2) and traj.actions.shape == (5, 40_000, 2)
    assert traj.costs.shape == (5, 40_000) and traj.noise.shape == (5, 40_000, 2)
    # xₜ₊₁ = A xₜ + B uₜ exactly, uₜ = −K xₜ + σ εₜ exactly
    assert torch.allclose(traj.states[1:], traj.states[:-1] @ system.A.T + traj.actions @ system.B.T, atol=1e-12)
    assert torch.allclose(traj.actions, -traj.states[:-1] @ K.T + system.sigma * traj.noise, atol=1e-12)
    S = system.state_moments(K, 5)
    emp = torch.einsum("tni,tnj->tij", traj.states, traj.states) / 40_000
    assert float((emp - S).abs().max()) < 0.1  # ≈ 7 standard errors of the largest entry
    # the same seed gives the same trajectories
    again = system.sample(K, 40_000, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.states, traj.states)


# --------------------------------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def samples():
    system, K = example_system(), example_gain()
    T, N = 8, 60_000
    traj = system.sample(K, N, T, generator=torch.Generator().manual_seed(2))
    exact = system.finite_horizon_gradient(K, T)
    out = {e: lqr_gradient_samples(system, K, traj, e, lam=0.5 if e != "reinforce" else 1.0)
           for e in (*UNBIASED_LQR_ESTIMATORS, *BIASED_LQR_ESTIMATORS)}
    return system, K, exact, out


@pytest.mark.parametrize("estimator", UNBIASED_LQR_ESTIMATORS)
def test_estimators_unbiased_for_the_finite_horizon_gradient(samples, estimator):
    """Hotelling T² at α = 10⁻³ against the exact ∇C_T (no truncation bias: the target is the
    T-step gradient). Power: the minimum detectable bias at power 0.9 is asserted ≤ 25 %
    (REINFORCE, the noisiest) and ≤ 6 % for baseline/GAE (the biased rules are off by 16–200 %)."""
    _, _, exact, out = samples
    x = out[estimator]
    assert unbiasedness_test(x, exact, alpha=ALPHA).passed
    mdb = min_detectable_bias(x, exact, alpha=ALPHA, power=0.9)
    assert mdb.worst_direction <= (0.06 if estimator in ("baseline", "gae") else 0.25), mdb.summary()


@pytest.mark.parametrize("estimator", BIASED_LQR_ESTIMATORS)
def test_biased_estimators_are_rejected(samples, estimator):
    _, _, exact, out = samples
    assert not unbiasedness_test(out[estimator], exact, alpha=ALPHA).passed


def test_gae_with_a_wrong_critic_is_unbiased_at_lambda_one(samples):
    """The GAE bias of a wrong critic vanishes at λ = 1 (it is then a state-dependent baseline)."""
    from pgmath.lqr import perturbed_lqr_values

    system, K, exact, _ = samples
    traj = system.sample(K, 60_000, 8, generator=torch.Generator().manual_seed(3))
    x = lqr_gradient_samples(system, K, traj, "gae", lam=1.0, values=perturbed_lqr_values(system, K, 8))
    assert unbiasedness_test(x, exact, alpha=ALPHA).passed


def test_verify_rows_pass():
    from pgmath.lqr.verify import rows
    from pgmath.verification import VerifyContext, run_row

    ctx = VerifyContext(quick=True)
    results = [run_row(r, ctx) for r in rows(ctx)]
    failed = [(r.name, r.check, r.statistic, r.error) for r in results if not r.passed]
    assert not failed, failed


def test_sampler_row_rejects_a_wrong_sampler():
    """The sampler row can fail: a sampler whose costs are 5 % too high."""
    from pgmath.lqr import LQRTrajectories
    from pgmath.lqr.verify import verify_sampler_cost
    from pgmath.verification import VerifyContext

    def wrong(system, K, n, horizon, *, generator):
        t = system.sample(K, n, horizon, generator=generator)
        return LQRTrajectories(t.states, t.actions, t.noise, t.costs * 1.05)  # a 5 % cost slip

    assert not verify_sampler_cost(VerifyContext(quick=True), sampler=wrong).passed


# --------------------------------------------------------------------------------------- env
def test_env_passes_check_env():
    gymnasium = pytest.importorskip("gymnasium")
    import warnings

    from gymnasium.utils.env_checker import check_env

    import pgmath.lqr  # noqa: F401  (registers pgmath/LQR-v0)

    env = gymnasium.make("pgmath/LQR-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(ValueError, match="system"):
        gymnasium.make("pgmath/LQR-v0", system="nope")


def test_env_discounted_cost_matches_the_exact_finite_horizon_cost():
    gymnasium = pytest.importorskip("gymnasium")
    import pgmath.lqr  # noqa: F401

    system, K = example_system(), example_gain()
    env = gymnasium.make("pgmath/LQR-v0", system=system)
    rng = np.random.default_rng(0)
    Kn, T, n = K.numpy(), 8, 3000
    totals = []
    for ep in range(n):  # over episodes
        x, _ = env.reset(seed=ep)
        total = 0.0
        for t in range(T):  # over steps
            u = -Kn @ x + system.sigma * rng.standard_normal(2)
            x, r, _, _, _ = env.step(u)
            total += system.gamma**t * (-r)
        totals.append(total)
    totals = np.asarray(totals)
    z = (totals.mean() - float(system.finite_horizon_cost(K, T))) / (totals.std(ddof=1) / math.sqrt(n))
    assert abs(z) < 3.3  # two-sided α = 10⁻³
