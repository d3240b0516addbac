"""The exact-MDP rows of ``pgmath verify --area mdp``.

The deterministic quantities (V^π, Q^π, the discounted occupancy, the exact policy gradient, the
finite-horizon values, with the textbook numbers of Sutton & Barto Figure 4.1 and Example 13.1)
are specs (:mod:`pgmath.specs.mdp`): their rows come from :func:`pgmath.specs.verify_rows`, one per
property, and their wrong variants are tested in ``tests/test_specs.py``. The rows written here
are the statistical ones, which are not deterministic functions of an implementation: the
episode sampler's chi-square goodness of fit (and its power), the unbiasedness of truncated
returns bootstrapped with V, and gymnasium's ``check_env`` on the registered environments.

Each statistical row takes the implementation under test as an argument where there is one
(defaulting to pgmath's), so tests/test_mdp_verify.py can hand it a deliberately wrong one and
see the row fail. Statistical rows state their level (α = 1e-3) and use seeds derived from
``ctx.seed``.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable

import torch

from pgmath.mdp.canonical import (
    EXAMPLE_13_1,
    FIGURE_4_1,
    gridworld,
    random_mdp,
    short_corridor,
    short_corridor_features,
    short_corridor_optimum,
)
from pgmath.mdp.goodness_of_fit import occupancy_chi_square
from pgmath.mdp.parameterizations import LinearSoftmaxPolicy
from pgmath.mdp.sampler import sample_episodes
from pgmath.mdp.tabular import TabularMDP
from pgmath.optional import require
from pgmath.specs import SPECS, verify_rows
from pgmath.verification import Outcome, VerifyContext, VerifyRow

__all__ = [
    "ALPHA",
    "retrace_first_targets",
    "rows",
    "verify_bootstrapped_returns",
    "verify_gym_envs",
    "verify_npg_rate",
    "verify_retrace_targets_unbiased",
    "verify_sampler_chi_square",
    "verify_sampler_power",
    "verify_trpo_step",
    "verify_vtrace_targets_unbiased",
    "verify_vtrace_unclipped_rejected",
    "vtrace_first_targets",
    "write_artifacts",
]

ALPHA = 1e-3
F64 = torch.float64

Sampler = Callable[..., object]


def _sampler_case(ctx: VerifyContext) -> tuple[TabularMDP, torch.Tensor]:
    g = ctx.generator(7)
    mdp = random_mdp(6, 3, generator=g, gamma=0.9, num_terminal=2)
    return mdp, mdp.policy(torch.randn(6, 3, generator=g, device=g.device, dtype=F64))


def _num_episodes(ctx: VerifyContext) -> int:
    return ctx.samples or 40_000  # ~0.1 s even in --quick mode


def verify_sampler_chi_square(ctx: VerifyContext, sampler: Sampler = sample_episodes) -> Outcome:
    """(s, a, s') at a geometric time ~ (1-γ) d(s, a) P(s'|s, a): Pearson χ², reject at α = 1e-3."""
    mdp, pi = _sampler_case(ctx)
    T = 40
    ep = sampler(mdp, pi, _num_episodes(ctx), T, generator=ctx.generator(8))
    res = occupancy_chi_square(ep, mdp, pi, max_steps=T, gamma=0.8, generator=ctx.generator(9))  # type: ignore[arg-type]
    return Outcome(
        res.p_value > ALPHA, f"χ²({res.dof}) = {res.statistic:.1f}, p = {res.p_value:.3f}",
        {"p_value": res.p_value, "dof": res.dof, "alpha": ALPHA},
    )


def verify_sampler_power(ctx: VerifyContext) -> Outcome:
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


def verify_bootstrapped_returns(ctx: VerifyContext) -> Outcome:
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


def verify_gym_envs(ctx: VerifyContext) -> Outcome:
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


# ---------------------------------------------------------------------------------------------
# off-policy targets, NPG, TRPO (issue 16; pgmath.mdp.offpolicy, pgmath.mdp.natural)


def _offpolicy_case(ctx: VerifyContext) -> tuple[TabularMDP, torch.Tensor, torch.Tensor]:
    g = ctx.generator(40)
    mdp = random_mdp(5, 3, generator=g, gamma=0.9, num_terminal=1)
    pi = mdp.policy(1.5 * torch.randn(5, 3, generator=g, device=g.device, dtype=F64))
    mu = mdp.policy(1.5 * torch.randn(5, 3, generator=g, device=g.device, dtype=F64))
    return mdp, pi, mu


_STEPS = 4


def _episodes_under_mu(ctx: VerifyContext, mdp: TabularMDP, pi: torch.Tensor, mu: torch.Tensor, offset: int):
    ep = sample_episodes(mdp, mu, ctx.samples or 20_000, _STEPS, generator=ctx.generator(offset))
    log_rhos = torch.where(ep.valid, torch.log(pi[ep.states, ep.actions]) - torch.log(mu[ep.states, ep.actions]),
                           torch.zeros_like(ep.rewards))
    return ep, log_rhos


def vtrace_first_targets(ctx: VerifyContext, vtrace_fn: Callable[..., object] | None = None, *,
                         rho_bar: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples [N, S], exact [S]): each episode's first V-trace target (c̄ = 1, λ = 0.9) placed at its
    start state, and μ₀ ⊙ R₄V (the 4-step V-trace operator with ρ̄ = 1)."""
    from pgmath.mdp.offpolicy import vtrace_operator
    from pgmath.offpolicy import vtrace

    fn = vtrace if vtrace_fn is None else vtrace_fn
    mdp, pi, mu = _offpolicy_case(ctx)
    V = torch.randn(5, generator=ctx.generator(41), device=ctx.device, dtype=F64) * (~mdp.terminal)
    ep, log_rhos = _episodes_under_mu(ctx, mdp, pi, mu, 42)
    targets, _ = fn(log_rhos, ep.rewards, V[ep.states], V[ep.next_states], ep.terminated, ep.truncated,
                    gamma=mdp.gamma, lam=0.9, rho_bar=rho_bar, c_bar=1.0)
    x = torch.nn.functional.one_hot(ep.states[0], 5).to(F64) * targets[0][:, None]
    exact = mdp.mu0 * vtrace_operator(mdp, pi, mu, V, rho_bar=1.0, c_bar=1.0, lam=0.9, steps=_STEPS)
    return x, exact


def retrace_first_targets(ctx: VerifyContext, retrace_fn: Callable[..., object] | None = None,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples [N, S·A], exact [S·A]): each episode's first Retrace(0.9) target placed at its start
    pair, and (μ₀ μ) ⊙ R₄Q (the 4-step Retrace operator)."""
    from pgmath.mdp.offpolicy import retrace_operator
    from pgmath.offpolicy import retrace

    fn = retrace if retrace_fn is None else retrace_fn
    mdp, pi, mu = _offpolicy_case(ctx)
    Q = torch.randn(5, 3, generator=ctx.generator(43), device=ctx.device, dtype=F64) * (~mdp.terminal)[:, None]
    ep, log_rhos = _episodes_under_mu(ctx, mdp, pi, mu, 44)
    expected = (pi * Q).sum(-1)
    G = fn(log_rhos, ep.rewards, Q[ep.states, ep.actions], expected[ep.next_states], ep.terminated, ep.truncated,
           gamma=mdp.gamma, lam=0.9)
    x = torch.nn.functional.one_hot(ep.states[0] * 3 + ep.actions[0], 15).to(F64) * G[0][:, None]
    exact = (mdp.mu0[:, None] * mu * retrace_operator(mdp, pi, mu, Q, lam=0.9, steps=_STEPS)).reshape(-1)
    return x, exact


def _unbiased_outcome(x: torch.Tensor, exact: torch.Tensor) -> Outcome:
    from pgmath.stats import min_detectable_bias, unbiasedness_test

    res = unbiasedness_test(x, exact, alpha=ALPHA)
    mdb = min_detectable_bias(x, exact, alpha=ALPHA, power=0.9)
    return Outcome(res.passed, f"{res.summary()}; {mdb.summary()}",
                   {"p_value": res.p_value, "alpha": ALPHA, "min_detectable_bias": mdb.along_gradient})


def verify_vtrace_targets_unbiased(ctx: VerifyContext, vtrace_fn: Callable[..., object] | None = None) -> Outcome:
    """E[v₀ | s₀] = R₄V(s₀): Hotelling T² at α = 1e-3 on 20 000 episodes drawn under μ."""
    return _unbiased_outcome(*vtrace_first_targets(ctx, vtrace_fn))


def verify_vtrace_unclipped_rejected(ctx: VerifyContext) -> Outcome:
    """Targets with the TD weight unclipped (ρ̄ = ∞) are rejected against the ρ̄ = 1 operator (p < α)."""
    x, exact = vtrace_first_targets(ctx, rho_bar=1e12)
    out = _unbiased_outcome(x, exact)
    return Outcome(not out.passed, f"unclipped ρ: {out.statistic}", out.data)


def verify_retrace_targets_unbiased(ctx: VerifyContext, retrace_fn: Callable[..., object] | None = None) -> Outcome:
    """E[G₀ | s₀, a₀] = R₄Q(s₀, a₀): Hotelling T² at α = 1e-3 on 20 000 episodes drawn under μ."""
    return _unbiased_outcome(*retrace_first_targets(ctx, retrace_fn))


def _npg_case(ctx: VerifyContext) -> TabularMDP:
    g = ctx.generator(45)
    base = random_mdp(5, 3, generator=g, gamma=0.9)
    R = torch.rand(5, 3, generator=g, device=g.device, dtype=F64)  # rewards in [0, 1], as in Theorem 16
    return TabularMDP(base.P, R, 0.9, base.mu0)


def verify_npg_rate(ctx: VerifyContext, direction: Callable[..., torch.Tensor] | None = None) -> Outcome:
    """Exact NPG (η = 1, θ⁽⁰⁾ = 0, T = 100): iterates == π ∝ π exp(ηA/(1 − γ)) (1e-10) and
    V* − V⁽ᵀ⁾ ≤ log|A|/(ηT) + 1/((1 − γ)²T) for every T (Agarwal et al. 2021, Thm 16)."""
    from pgmath.mdp.natural import (
        natural_gradient,
        npg_gap_bound,
        npg_iterations,
        optimal_state_values,
    )

    mdp = _npg_case(ctx)
    eta, T = 1.0, 100
    run = npg_iterations(mdp, torch.zeros(5, 3, dtype=F64, device=ctx.device), eta=eta, steps=T,
                         direction=natural_gradient if direction is None else direction)
    theta, closed = torch.zeros(5, 3, dtype=F64, device=ctx.device), [float(run.values[0])]
    for _ in range(T):  # multiplicative weights on the logits, A from the library's evaluation
        theta = theta + eta * mdp.advantages(mdp.policy(theta)) / (1 - mdp.gamma)
        closed.append(float(mdp.mu0 @ mdp.state_values(mdp.policy(theta))))
    err = max(abs(a - b) for a, b in zip(run.values.tolist(), closed))
    J_star = float(mdp.mu0 @ optimal_state_values(mdp)[0])
    excess = max(J_star - float(run.values[t]) - npg_gap_bound(mdp, eta, t) for t in range(1, T + 1))
    gap10 = J_star - float(run.values[10])
    return Outcome(err <= 1e-10 and excess <= 0,
                   f"vs closed form {err:.1e}; gap(10) = {gap10:.1e} ≤ bound {npg_gap_bound(mdp, eta, 10):.1f}; "
                   f"max(gap − bound) = {excess:.2f}",
                   {"closed_form_error": err, "max_excess": excess, "gap_10": gap10})


def verify_trpo_step(ctx: VerifyContext, step_fn: Callable[..., object] | None = None) -> Outcome:
    """CG direction == F⁺∇J (1e-8), ½sᵀFs = δ (1e-12), exact mean KL ≤ δ with J improved, KL/δ → 1 (δ = 1e-6)."""
    from pgmath.mdp.natural import fisher_information, mean_kl, natural_gradient, trpo_step

    fn = trpo_step if step_fn is None else step_fn
    mdp, pi, _ = _offpolicy_case(ctx)
    theta = torch.log(pi)
    worst_dir = worst_quad = worst_ratio = 0.0
    ok = True
    for delta in (1e-2, 1e-6):
        st = fn(mdp, theta, max_kl=delta)
        F = fisher_information(mdp, theta)
        s = st.full_step.reshape(-1)  # type: ignore[attr-defined]
        quad = 0.5 * float(s @ (F @ s))
        ng = natural_gradient(mdp, theta)
        worst_dir = max(worst_dir, float((st.direction - ng).abs().max()) / (1 + float(ng.abs().max())))  # type: ignore[attr-defined]
        worst_quad = max(worst_quad, abs(quad - delta) / delta)
        ok = ok and st.kl <= delta and st.improvement > 0 and st.step_fraction > 0  # type: ignore[attr-defined]
        if delta == 1e-6:
            full_kl = mean_kl(mdp, theta, theta + st.full_step)  # type: ignore[attr-defined]
            worst_ratio = abs(full_kl / delta - 1)
    ok = ok and worst_dir <= 1e-8 and worst_quad <= 1e-9 and worst_ratio <= 1e-2
    return Outcome(ok, f"direction {worst_dir:.1e}, |½sᵀFs/δ − 1| {worst_quad:.1e}, |KL/δ − 1| (δ = 1e-6) "
                   f"{worst_ratio:.1e}", {"direction": worst_dir, "quadratic": worst_quad, "kl_ratio": worst_ratio})


def rows(ctx: VerifyContext) -> list[VerifyRow]:
    """The spec rows of area "mdp" (one per property), then the statistical rows."""
    a = "mdp"
    return [
        *verify_rows(SPECS, a),
        VerifyRow(a, "sampler occupancy chi-square", "(s, a, s′) at geometric τ, α = 1e-3", verify_sampler_chi_square),
        VerifyRow(a, "sampler occupancy chi-square", "power: 5% wrong dynamics rejected", verify_sampler_power),
        VerifyRow(a, "truncated returns + γ^T V", "unbiased for J (z test, α = 1e-3)", verify_bootstrapped_returns),
        VerifyRow(a, "gymnasium envs", "check_env on the registered ids", verify_gym_envs),
        VerifyRow(a, "V-trace targets", "unbiased for the 4-step operator (T², α = 1e-3)", verify_vtrace_targets_unbiased),
        VerifyRow(a, "V-trace targets", "power: unclipped ρ rejected", verify_vtrace_unclipped_rejected),
        VerifyRow(a, "Retrace targets", "unbiased for the 4-step operator (T², α = 1e-3)", verify_retrace_targets_unbiased),
        VerifyRow(a, "NPG vs Agarwal et al. Thm 16", "closed-form iterates; gap ≤ log|A|/(ηT) + 1/((1−γ)²T)",
                  verify_npg_rate),
        VerifyRow(a, "TRPO step (exact Fisher)", "CG = F⁺∇J, ½sᵀFs = δ, KL ≤ δ, KL/δ → 1", verify_trpo_step),
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
    require("matplotlib", extra="plots", feature="plotting")
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
