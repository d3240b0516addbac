"""The LQR rows of ``pgmath verify --area lqr``.

The exact quantities (C(K), ∇C(K)) are specs (:mod:`pgmath.specs.lqr`): one row per property
(:func:`pgmath.specs.verify_rows`). The rows written here are statistical:

* **sampler** — the mean discounted cost Σ_{t<T} γᵗ cₜ of sampled trajectories equals the exact
  finite-horizon cost C_T(K) (z-test, α = 10⁻³);
* **unbiased** — REINFORCE, reward-to-go, baseline and GAE (λ = 0.5, exact finite-horizon
  critic) pass Hotelling's T² (:func:`pgmath.stats.unbiasedness_test`, α = 10⁻³) against the
  exact finite-horizon gradient ∇C_T(K); each row states its minimum detectable bias at power
  0.9 (:func:`pgmath.stats.min_detectable_bias`);
* **detected** — the deliberately biased rules (γᵗ weight dropped, the score of the u = +Kx
  convention, GAE λ = 0.5 with a wrong critic) are rejected (p < α);
* **long horizon** — GAE over T = 60 steps against the *infinite-horizon* ∇C(K): the truncation
  bias ‖∇C_T − ∇C‖/‖∇C‖ (exact, ≈ 3 · 10⁻⁶) is stated and required to be ≤ 10⁻³ × the row's minimum
  detectable bias, so the comparison with ∇C is legitimate;
* **gymnasium** — ``check_env`` on ``pgmath/LQR-v0`` (skipped, i.e. passed with a note, without
  gymnasium).

Set-up: :func:`pgmath.lqr.example_system` (n = m = 2, γ = 0.8, σ = 1) at the gain
:func:`pgmath.lqr.example_gain`, horizon T = 8, 1 200 000 trajectories (100 000 with ``--quick``; the T = 60 row 40 000 / 10 000;
``--samples`` overrides). Truncation: the unbiased/detected rows compare with the exact ∇C_T, so
no truncation bias enters. False alarms: 6 rows test a true hypothesis at α = 10⁻³ each, so a
fresh seed flags one with probability ≤ 0.6 % (Bonferroni); with the default seed the rows are
deterministic.

Checked by: tests/test_lqr.py::test_verify_rows_pass and
tests/test_lqr.py::test_biased_estimators_are_rejected.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pgmath.lqr.estimators import (
    BIASED_LQR_ESTIMATORS,
    UNBIASED_LQR_ESTIMATORS,
    lqr_gradient_samples,
)
from pgmath.lqr.examples import example_gain, example_system
from pgmath.lqr.system import LQR, LQRTrajectories
from pgmath.specs import SPECS, verify_rows
from pgmath.stats import min_detectable_bias, unbiasedness_test
from pgmath.verification import Outcome, VerifyContext, VerifyRow

__all__ = ["ALPHA", "HORIZON", "LONG_HORIZON", "POWER", "rows", "verify_estimator", "verify_long_horizon",
           "verify_sampler_cost"]

AREA = "lqr"
ALPHA = 1e-3
POWER = 0.9
HORIZON = 8
LONG_HORIZON = 60
GAE_LAM = 0.5
#: trajectories of the T = 8 rows: REINFORCE's variance needs ~10⁶ for a 5 % detectable bias along ∇C
TRAJECTORIES = 1_200_000
QUICK_TRAJECTORIES = 100_000
#: trajectories of the T = 60 row (GAE's variance is small)
LONG_TRAJECTORIES = 40_000

Sampler = Callable[..., LQRTrajectories]


@dataclass
class _Data:
    system: LQR
    K: torch.Tensor
    traj: LQRTrajectories
    exact: torch.Tensor  # ∇C_T


def _trajectories(ctx: VerifyContext) -> int:
    if ctx.samples is not None:
        if ctx.samples < 10:
            raise ValueError(f"samples must be >= 10, got {ctx.samples}")
        return int(ctx.samples)
    return QUICK_TRAJECTORIES if ctx.quick else TRAJECTORIES


@functools.lru_cache(maxsize=2)
def _data(ctx: VerifyContext) -> _Data:
    system, K = example_system(device=ctx.device), example_gain(ctx.device)
    traj = system.sample(K, _trajectories(ctx), HORIZON, generator=ctx.generator(900))
    return _Data(system, K, traj, system.finite_horizon_gradient(K, HORIZON))


def verify_sampler_cost(ctx: VerifyContext, sampler: Sampler | None = None) -> Outcome:
    """z-test: mean of Σ_{t<T} γᵗ cₜ over the sampled trajectories == C_T(K) (α = 10⁻³).

    ``sampler(system, K, n, horizon, generator=…)`` defaults to :meth:`pgmath.lqr.LQR.sample`."""
    system, K = example_system(device=ctx.device), example_gain(ctx.device)
    n = _trajectories(ctx)
    if sampler is None:
        traj = _data(ctx).traj
    else:
        traj = sampler(system, K, n, HORIZON, generator=ctx.generator(900))
    x = traj.discounted_costs(system.gamma).double().cpu()
    exact = float(system.finite_horizon_cost(K, HORIZON))
    z = (float(x.mean()) - exact) / (float(x.std()) / math.sqrt(x.numel()))
    p = math.erfc(abs(z) / math.sqrt(2))
    return Outcome(p >= ALPHA, f"mean {float(x.mean()):.4f} vs C_T = {exact:.4f}: z = {z:+.2f}, p = {p:.2g}",
                   {"z": z, "p_value": p, "exact": exact, "n": int(x.numel()), "alpha": ALPHA})


def verify_estimator(ctx: VerifyContext, estimator: str, *, expect_unbiased: bool,
                     samples_fn: Callable[..., torch.Tensor] = lqr_gradient_samples) -> Outcome:
    """Hotelling T² of ``estimator``'s samples against ∇C_T(K): passes when the verdict is the
    expected one (unbiased: p ≥ α; biased: p < α)."""
    d = _data(ctx)
    lam = GAE_LAM if "gae" in estimator or estimator == "score_sign_flipped" else 1.0
    x = samples_fn(d.system, d.K, d.traj, estimator, lam=lam)
    t = unbiasedness_test(x, d.exact, alpha=ALPHA)
    data = {"p_value": t.p_value, "statistic": t.statistic, "dof": t.dof, "n": t.n, "alpha": ALPHA,
            "relative_bias": t.relative_bias, "horizon": HORIZON, "target": "finite-horizon ∇C_T (exact)"}
    if expect_unbiased:
        mdb = min_detectable_bias(x, d.exact, alpha=ALPHA, power=POWER)
        data["min_detectable_bias"] = {"along_gradient": mdb.along_gradient, "worst_direction": mdb.worst_direction,
                                       "power": POWER}
        return Outcome(t.passed, f"{t.summary()}; {mdb.summary()}", data)
    return Outcome(not t.passed, f"p = {t.p_value:.2g} < α = {ALPHA:g}; bias {t.relative_bias:.1%}" if not t.passed
                   else f"not detected: p = {t.p_value:.2g}", data)


def verify_long_horizon(ctx: VerifyContext) -> Outcome:
    """GAE (λ = 0.5, exact critic) over T = 60 steps vs the infinite-horizon ∇C(K); the exact
    truncation bias must be ≤ 10⁻³ × the minimum detectable bias."""
    system, K = example_system(device=ctx.device), example_gain(ctx.device)
    n = max(10, _trajectories(ctx) // 5) if ctx.samples is not None else LONG_TRAJECTORIES // (4 if ctx.quick else 1)
    traj = system.sample(K, n, LONG_HORIZON, generator=ctx.generator(901))
    x = lqr_gradient_samples(system, K, traj, "gae", lam=GAE_LAM)
    exact = system.gradient(K)
    trunc = float((system.finite_horizon_gradient(K, LONG_HORIZON) - exact).norm() / exact.norm())
    t = unbiasedness_test(x, exact, alpha=ALPHA)
    mdb = min_detectable_bias(x, exact, alpha=ALPHA, power=POWER)
    ok = t.passed and trunc <= 1e-3 * mdb.worst_direction
    return Outcome(ok, f"{t.summary()}; truncation bias {trunc:.1e} ≪ detectable {mdb.worst_direction:.1%}",
                   {"p_value": t.p_value, "truncation_bias": trunc, "min_detectable_bias": mdb.worst_direction,
                    "n": n, "horizon": LONG_HORIZON, "alpha": ALPHA})


def verify_gym_env(ctx: VerifyContext) -> Outcome:
    """gymnasium's ``check_env`` on ``pgmath/LQR-v0``."""
    from pgmath.optional import missing

    if missing("gymnasium"):
        return Outcome(True, "skipped: gymnasium not installed", {"skipped": True})
    import warnings

    import gymnasium
    from gymnasium.utils.env_checker import check_env

    import pgmath.lqr.env  # noqa: F401  (registers the id)

    env = gymnasium.make("pgmath/LQR-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded Box spaces: a recommendation, not an error
        check_env(env.unwrapped, skip_render_check=True)
    return Outcome(True, "check_env passed", {})


def rows(ctx: VerifyContext) -> list[VerifyRow]:
    """The spec rows of area "lqr" and the statistical rows (see the module docstring)."""
    out = verify_rows(SPECS, AREA)
    out.append(VerifyRow(AREA, "LQR sampler", f"mean Σγᵗcₜ == C_T(K), T = {HORIZON} (z-test)", verify_sampler_cost))
    for est in UNBIASED_LQR_ESTIMATORS:  # over the unbiased rules
        out.append(VerifyRow(AREA, f"LQR {est}", f"unbiased: Hotelling T² vs exact ∇C_T, T = {HORIZON}",
                             functools.partial(verify_estimator, estimator=est, expect_unbiased=True)))
    for est in BIASED_LQR_ESTIMATORS:  # over the deliberately biased rules
        out.append(VerifyRow(AREA, f"LQR {est}", f"detected as biased: T² vs exact ∇C_T, T = {HORIZON}",
                             functools.partial(verify_estimator, estimator=est, expect_unbiased=False)))
    out.append(VerifyRow(AREA, "LQR gae", f"unbiased vs infinite-horizon ∇C, T = {LONG_HORIZON} (truncation ≪ MDB)",
                         verify_long_horizon))
    out.append(VerifyRow(AREA, "pgmath/LQR-v0", "gymnasium check_env", verify_gym_env))
    return out
