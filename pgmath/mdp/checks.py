"""The exact-MDP rows of ``pgmath verify`` (issue 3).

Each check takes the implementation under test as an argument (defaulting to pgmath's), so
tests/test_mdp_checks.py can hand it a deliberately wrong one and see the row fail.
Deterministic rows use float64 round-off tolerances; statistical rows state their level
(α = 1e-3) and use seeds derived from ``ctx.seed``.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable

import torch

from pgmath.mdp.canonical import gridworld, random_mdp, short_corridor, short_corridor_features
from pgmath.mdp.finite_differences import central_difference_gradient
from pgmath.mdp.finite_horizon import (
    backward_induction_values,
    finite_horizon,
    finite_horizon_policy,
)
from pgmath.mdp.goodness_of_fit import occupancy_chi_square
from pgmath.mdp.iterative_evaluation import iterative_policy_evaluation
from pgmath.mdp.parameterizations import LinearSoftmaxPolicy
from pgmath.mdp.sampler import sample_episodes
from pgmath.mdp.tabular import TabularMDP
from pgmath.verification import Check, Outcome, VerifyContext

__all__ = ["ALPHA", "TOL", "checks", "write_artifacts"]

TOL = 1e-10
ALPHA = 1e-3
F64 = torch.float64

#: Sutton & Barto (2018), Figure 4.1, k = ∞: v_π of the equiprobable random policy.
FIGURE_4_1 = ((0, -14, -20, -22), (-14, -18, -20, -20), (-20, -20, -18, -14), (-22, -20, -14, 0))
#: Sutton & Barto (2018), Example 13.1: P(right) ≈ 0.59 is optimal, with value ≈ -11.6.
EXAMPLE_13_1 = {"p_right": 0.59, "value": -11.6}

GradientFn = Callable[[TabularMDP, torch.Tensor], torch.Tensor]
Sampler = Callable[..., object]


def _theorem(mdp: TabularMDP, logits: torch.Tensor) -> torch.Tensor:
    return mdp.exact_policy_gradient(logits, method="theorem")  # type: ignore[return-value]


def _autograd(mdp: TabularMDP, logits: torch.Tensor) -> torch.Tensor:
    return mdp.exact_policy_gradient(logits, method="autograd")  # type: ignore[return-value]


def _cases(ctx: VerifyContext, offset: int) -> list[tuple[TabularMDP, torch.Tensor]]:
    """Random MDPs on ``ctx.device``: continuing γ ∈ {0, 0.5, 0.99}, episodic γ ∈ {0.9, 1}."""
    g = ctx.generator(offset)
    specs = [(5, 3, 0.5, 0), (8, 4, 0.99, 0), (6, 2, 1.0, 2), (4, 5, 0.0, 0), (7, 3, 0.9, 3)]
    if ctx.quick:
        specs = specs[:3]
    out = []
    for S, A, gamma, K in specs:
        mdp = random_mdp(S, A, generator=g, gamma=gamma, num_terminal=K)
        logits = 2 * torch.randn(S, A, generator=g, device=g.device, dtype=F64)
        out.append((mdp, logits))
    return out


def _outcome(err: float, tol: float, what: str = "max |err|") -> Outcome:
    return Outcome(err <= tol, f"{what} = {err:.1e}", {"max_abs_error": err, "tol": tol})


def check_theorem_vs_autograd(ctx: VerifyContext, gradient_fn: GradientFn = _theorem) -> Outcome:
    """Σₛ d(s) π(a|s) A(s, a) == autograd through the linear solve of J, to 1e-10."""
    err = 0.0
    for mdp, logits in _cases(ctx, 1):
        err = max(err, float((gradient_fn(mdp, logits) - _autograd(mdp, logits)).abs().max()))
    return _outcome(err, TOL)


def check_finite_differences(ctx: VerifyContext, gradient_fn: GradientFn = _theorem) -> Outcome:
    """The exact gradient == central finite differences (h = 1e-5) to 1e-6 (1 + max|∇J|)."""
    worst = 0.0
    for mdp, logits in _cases(ctx, 2):
        exact = gradient_fn(mdp, logits)
        fd = central_difference_gradient(lambda x, m=mdp: m.objective(x), logits)
        worst = max(worst, float((exact - fd).abs().max()) / (1 + float(exact.abs().max())))
    return _outcome(worst, 1e-6, "max |err| / (1 + max|∇J|)")


def check_linear_softmax(ctx: VerifyContext, method: str = "theorem") -> Outcome:
    """General parameterization: Σₛ d Σₐ ∇π Q == autograd == finite differences (linear softmax)."""
    g = ctx.generator(3)
    err_ad = err_fd = 0.0
    for mdp, _ in _cases(ctx, 4):
        S, A = mdp.num_states, mdp.num_actions
        policy = LinearSoftmaxPolicy(torch.randn(S, A, 3, generator=g, device=g.device, dtype=F64))
        theta = torch.randn(3, generator=g, device=g.device, dtype=F64)
        grad = mdp.exact_policy_gradient(policy, theta, method=method)
        assert isinstance(grad, torch.Tensor)
        ad = mdp.exact_policy_gradient(policy, theta, method="autograd")
        fd = central_difference_gradient(lambda th, m=mdp, p=policy: m.objective(p, th), theta)
        err_ad = max(err_ad, float((grad - ad).abs().max()))
        err_fd = max(err_fd, float((grad - fd).abs().max()) / (1 + float(grad.abs().max())))
    passed = err_ad <= TOL and err_fd <= 1e-6
    return Outcome(passed, f"vs autograd {err_ad:.1e}, vs FD {err_fd:.1e}", {"autograd": err_ad, "fd_rel": err_fd})


def check_solve_vs_iterative(ctx: VerifyContext, values_fn: Callable | None = None) -> Outcome:
    """Linear solve (I - γP_π)V = r_π == iterative policy evaluation (S&B §4.1), to 1e-9."""
    err = 0.0
    for mdp, logits in _cases(ctx, 5):
        pi = mdp.policy(logits)
        V = values_fn(mdp, pi) if values_fn is not None else mdp.state_values(pi)
        err = max(err, float((V - iterative_policy_evaluation(mdp, pi)).abs().max()))
    return _outcome(err, 1e-9)


def short_corridor_optimum(device: torch.device | str = "cpu") -> tuple[float, float]:
    """(p*, J*) of Example 13.1 found by maximizing the library's J over P(right) = σ(θ)."""
    from scipy.optimize import minimize_scalar

    mdp = short_corridor(device=device)
    policy = LinearSoftmaxPolicy(short_corridor_features(1, device=device))

    def neg_J(x: float) -> float:
        return -float(mdp.objective(policy, torch.tensor([x], dtype=F64, device=device)))

    res = minimize_scalar(neg_J, bounds=(-10, 10), method="bounded", options={"xatol": 1e-10})
    return 1 / (1 + math.exp(-float(res.x))), -float(res.fun)


def check_example_13_1(ctx: VerifyContext, optimum_fn: Callable = short_corridor_optimum) -> Outcome:
    """The library's optimum of the short corridor == the published p* ≈ 0.59, J* ≈ -11.6."""
    p, J = optimum_fn(ctx.device)
    ok = abs(p - EXAMPLE_13_1["p_right"]) <= 0.005 and abs(J - EXAMPLE_13_1["value"]) <= 0.06
    return Outcome(ok, f"p* = {p:.4f}, J* = {J:.4f} (book 0.59, -11.6)", {"p_star": p, "J_star": J})


def check_figure_4_1(ctx: VerifyContext, mdp_fn: Callable = gridworld) -> Outcome:
    """V of the equiprobable policy on the 4 × 4 grid == the table of Figure 4.1, to 1e-9."""
    mdp = mdp_fn(device=ctx.device)
    pi = torch.full((16, 4), 0.25, dtype=F64, device=ctx.device)
    V = mdp.state_values(pi).reshape(4, 4).cpu()
    err = float((V - torch.tensor(FIGURE_4_1, dtype=F64)).abs().max())
    return _outcome(err, 1e-9)


def check_finite_horizon(ctx: VerifyContext) -> Outcome:
    """Solve of the time-expanded MDP == the backward-induction loop, to 1e-10."""
    g = ctx.generator(6)
    err = 0.0
    for gamma, K in [(0.9, 0), (1.0, 1)]:
        mdp = random_mdp(5, 3, generator=g, gamma=gamma, num_terminal=K)
        H = 6
        pi_t = torch.softmax(torch.randn(H, 5, 3, generator=g, device=g.device, dtype=F64), -1)
        V = finite_horizon(mdp, H).state_values(finite_horizon_policy(pi_t, H))[:-1].reshape(H, 5)
        err = max(err, float((V - backward_induction_values(mdp, pi_t, H)[:H]).abs().max()))
    return _outcome(err, TOL)


def _sampler_case(ctx: VerifyContext) -> tuple[TabularMDP, torch.Tensor]:
    g = ctx.generator(7)
    mdp = random_mdp(6, 3, generator=g, gamma=0.9, num_terminal=2)
    return mdp, mdp.policy(torch.randn(6, 3, generator=g, device=g.device, dtype=F64))


def _num_episodes(ctx: VerifyContext) -> int:
    return ctx.samples or 40_000  # ~0.1 s even in --quick mode


def check_sampler_chi_square(ctx: VerifyContext, sampler: Sampler = sample_episodes) -> Outcome:
    """(s, a, s') at a geometric time ~ (1-γ) d(s, a) P(s'|s, a): Pearson χ², reject at α = 1e-3."""
    mdp, pi = _sampler_case(ctx)
    T = 40
    ep = sampler(mdp, pi, _num_episodes(ctx), T, generator=ctx.generator(8))
    res = occupancy_chi_square(ep, mdp, pi, max_steps=T, gamma=0.8, generator=ctx.generator(9))  # type: ignore[arg-type]
    return Outcome(
        res.p_value > ALPHA, f"χ²({res.dof}) = {res.statistic:.1f}, p = {res.p_value:.3f}",
        {"p_value": res.p_value, "dof": res.dof, "alpha": ALPHA},
    )


def check_sampler_power(ctx: VerifyContext) -> Outcome:
    """The same test rejects a sampler whose dynamics are 5% wrong (power at α = 1e-3, N = 40 000 fixed)."""
    mdp, pi = _sampler_case(ctx)
    live = ~mdp.terminal
    P = mdp.P.clone()
    P[live] = 0.95 * P[live] + 0.05 / mdp.num_states
    wrong = TabularMDP(P, mdp.R, mdp.gamma, mdp.mu0, mdp.terminal)
    T = 40
    ep = sample_episodes(wrong, pi, 40_000, T, generator=ctx.generator(10))
    res = occupancy_chi_square(ep, mdp, pi, max_steps=T, gamma=0.8, generator=ctx.generator(11))
    return Outcome(res.p_value < ALPHA, f"wrong sampler: p = {res.p_value:.1e}", {"p_value": res.p_value})


def check_bootstrapped_returns(ctx: VerifyContext) -> Outcome:
    """E[Σ_{t<T} γᵗ rₜ + γ^T V(s_T)] == J for a cut at T = 5 (two-sided z test, α = 1e-3)."""
    from scipy.stats import norm

    g = ctx.generator(12)
    mdp = random_mdp(6, 3, generator=g, gamma=0.9)
    pi = mdp.policy(torch.randn(6, 3, generator=g, device=g.device, dtype=F64))
    V = mdp.state_values(pi)
    J = float(mdp.mu0 @ V)
    n = ctx.samples or (20_000 if ctx.quick else 100_000)
    G = sample_episodes(mdp, pi, n, 5, generator=ctx.generator(13)).returns(0.9, final_values=V)
    z = (float(G.mean()) - J) / (float(G.std()) / math.sqrt(n))
    p = 2 * float(norm.sf(abs(z)))
    return Outcome(p > ALPHA, f"z = {z:+.2f}, p = {p:.3f}", {"z": z, "p_value": p, "J": J})


def check_gym_envs(ctx: VerifyContext) -> Outcome:
    """Registered envs pass gymnasium.utils.env_checker.check_env."""
    import gymnasium
    from gymnasium.utils.env_checker import check_env

    from pgmath.mdp.envs import register_envs

    register_envs()
    mdp = random_mdp(5, 3, generator=torch.Generator().manual_seed(ctx.seed), num_terminal=1)
    made = [
        gymnasium.make("pgmath/ShortCorridor-v0"),
        gymnasium.make("pgmath/GridWorld-v0"),
        gymnasium.make("pgmath/Tabular-v0", mdp=mdp),
    ]
    for env in made:
        check_env(env.unwrapped)
    return Outcome(True, f"{len(made)} envs pass check_env", {})


def checks(ctx: VerifyContext) -> list[Check]:
    a = "mdp"
    return [
        Check(a, "exact ∇J (tabular softmax)", "theorem d·π·A == autograd through solve, 1e-10", check_theorem_vs_autograd),
        Check(a, "exact ∇J (tabular softmax)", "== central finite differences", check_finite_differences),
        Check(a, "exact ∇J (linear softmax)", "Σ d Σ ∇π Q == autograd == finite differences", check_linear_softmax),
        Check(a, "V^π (linear solve)", "== iterative policy evaluation (S&B §4.1)", check_solve_vs_iterative),
        Check(a, "S&B Ex. 13.1 optimum", "maximize J: p* ≈ 0.59, J* ≈ -11.6", check_example_13_1),
        Check(a, "S&B Fig. 4.1 values", "4×4 grid, random policy, γ = 1: table to 1e-9", check_figure_4_1),
        Check(a, "finite-horizon MDP", "time-expanded solve == backward induction", check_finite_horizon),
        Check(a, "sampler occupancy chi-square", "(s, a, s′) at geometric τ, α = 1e-3", check_sampler_chi_square),
        Check(a, "sampler occupancy chi-square", "power: 5% wrong dynamics rejected", check_sampler_power),
        Check(a, "truncated returns + γ^T V", "unbiased for J (z test, α = 1e-3)", check_bootstrapped_returns),
        Check(a, "gymnasium envs", "check_env on the registered ids", check_gym_envs),
    ]


def write_artifacts(ctx: VerifyContext, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Write mdp-short-corridor.json/.png (J(p) with the optimum) and mdp-figure-4-1.json."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mdp = short_corridor()
    policy = LinearSoftmaxPolicy(short_corridor_features(1))
    ps = [i / 200 for i in range(4, 197)]
    Js = [float(mdp.objective(policy, torch.tensor([math.log(p / (1 - p))], dtype=F64))) for p in ps]
    p_star, J_star = short_corridor_optimum()
    paths = []
    sc_json = out_dir / "mdp-short-corridor.json"
    sc_json.write_text(json.dumps({"p_right": ps, "J": Js, "p_star": p_star, "J_star": J_star, "book": EXAMPLE_13_1}))
    paths.append(sc_json)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ps, Js, label="J(p) (pgmath, exact)")
    ax.plot([p_star], [J_star], "o", label=f"optimum p* = {p_star:.3f}, J* = {J_star:.2f}")
    ax.set_ylim(-100, 0)
    ax.set_xlabel("probability of right action")
    ax.set_ylabel("J = v(start)")
    ax.set_title("Short corridor (Sutton & Barto Example 13.1)")
    ax.legend(loc="lower center")
    fig.tight_layout()
    png = out_dir / "mdp-short-corridor.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    paths.append(png)
    V = gridworld().state_values(torch.full((16, 4), 0.25, dtype=F64)).reshape(4, 4)
    grid_json = out_dir / "mdp-figure-4-1.json"
    grid_json.write_text(json.dumps({"values": V.tolist(), "book": FIGURE_4_1}))
    paths.append(grid_json)
    return paths
