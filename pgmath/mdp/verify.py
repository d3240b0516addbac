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
    "rows",
    "verify_bootstrapped_returns",
    "verify_gym_envs",
    "verify_sampler_chi_square",
    "verify_sampler_power",
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


def rows(ctx: VerifyContext) -> list[VerifyRow]:
    """The spec rows of area "mdp" (one per property), then the statistical rows."""
    a = "mdp"
    return [
        *verify_rows(SPECS, a),
        VerifyRow(a, "sampler occupancy chi-square", "(s, a, s′) at geometric τ, α = 1e-3", verify_sampler_chi_square),
        VerifyRow(a, "sampler occupancy chi-square", "power: 5% wrong dynamics rejected", verify_sampler_power),
        VerifyRow(a, "truncated returns + γ^T V", "unbiased for J (z test, α = 1e-3)", verify_bootstrapped_returns),
        VerifyRow(a, "gymnasium envs", "check_env on the registered ids", verify_gym_envs),
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
