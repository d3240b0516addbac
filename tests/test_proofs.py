"""Tests of the sympy proofs (proofs/, installed as pgmath.proofs), the proofs verify suite, the
packaging of the proofs, and the documentation build.

Every proof must pass with its true statement and REJECT at least one wrong variant fed in
through its arguments — a proof that cannot fail proves nothing — and every proof tied to code
must REJECT a wrong implementation fed in as ``impl=`` (or another ``*_impl=``) while its algebra
still holds. The errata demonstrations at the end check the source article's code bugs that the
docs cite (docs/errata.md).
"""

from __future__ import annotations

import functools
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile
from typing import Any

import numpy as np
import pytest
import sympy as sp
import torch
from pgmath.proofs import (
    PROOFS,
    ProofSpec,
    gae,
    gridworld,
    kl_estimators,
    log_derivative,
    policy_gradient_theorem,
    ppo_clip,
    ppo_ratio_escape,
    reinforce_averaging,
    short_corridor,
    softmax_score,
)
from pgmath.proofs.core import identity, impl_keywords, resolve

import pgmath
import pgmath.mdp
from pgmath.estimators.policy_gradient import episode_weights
from pgmath.mdp import TabularMDP
from pgmath.specs import SPECS as FORMULA_SPECS

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPECS = {spec.key: spec for spec in PROOFS}


# ---------------------------------------------------------------------------------------------
# every proof passes with the true statement — read from one `python -m proofs --json` run, which
# also checks the runner itself (exit status 0, the table)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("proofs") / "proofs.json"
    out = subprocess.run(
        [sys.executable, "-m", "proofs", "--json", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    records = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    return {"out": out, "records": {r["key"]: r for r in records}}


@pytest.mark.parametrize("spec", PROOFS, ids=lambda s: s.key)
def test_proof_passes_with_true_statement(spec: ProofSpec, full_run: dict[str, Any]) -> None:
    record = full_run["records"].get(spec.key)
    assert record is not None, full_run["out"].stdout + full_run["out"].stderr
    assert record["passed"], json.dumps(record, indent=1, ensure_ascii=False)
    assert record["claims"] and all(c["passed"] for c in record["claims"])


def test_python_m_proofs_runs_all_and_exits_0(full_run: dict[str, Any]) -> None:
    out = full_run["out"]
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(PROOFS)}/{len(PROOFS)} proofs passed" in out.stdout
    assert "[a = b]" in out.stdout  # statements are printed verbatim, not eaten as rich markup


# ---------------------------------------------------------------------------------------------
# every proof rejects wrong variants: (proof key, keyword arguments, a rejected claim's text)
# ---------------------------------------------------------------------------------------------
WRONG_VARIANTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("log_derivative", "trick without p", {"grad_identity": lambda p, lp, th: sp.diff(lp, th)}, "∇p = p ∇log p"),
    ("log_derivative", "score averaged uniformly", {"weights": log_derivative.uniform_weights}, "E_{a∼π}"),
    ("log_derivative", "action-dependent baseline", {"baseline": lambda a, q: q[a]}, "baseline invariance"),
    ("softmax_score", "missing −π(b)", {"claimed": lambda a, b, pi: sp.KroneckerDelta(a, b)}, "score"),
    ("softmax_score", "π(a) for π(b)", {"claimed": lambda a, b, pi: sp.KroneckerDelta(a, b) - pi[a]}, "score"),
    (
        "categorical",
        "entropy sign error",
        {"entropy": lambda th, pi, lz: lz + sum(p * t for p, t in zip(pi, th))},
        "H(π)",
    ),
    ("gaussian", "entropy without ½", {"entropy_formula": lambda ls: ls + sp.log(2 * sp.pi) / 2}, "entropy"),
    (
        "gaussian",
        "KL without −½",
        {"kl_formula": lambda m1, s1, m2, s2: sp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2)},
        "KL",
    ),
    (
        "policy_gradient_theorem",
        "undiscounted (stationary) visitation",
        {"occupancy": policy_gradient_theorem.stationary_visitation},
        "∂J/∂θ",
    ),
    ("policy_gradient_theorem", "μ₀ only", {"occupancy": policy_gradient_theorem.initial_only}, "∂J/∂θ"),
    ("causality", "future reward claimed to vanish", {"vanishing_pairs": ((0, 1),)}, "E[∇log π(a0|s0) r1]"),
    ("causality", "same-step reward claimed to vanish", {"vanishing_pairs": ((1, 1),)}, "r1"),
    ("causality", "no γᵗ weight", {"time_weight": lambda t, g: 1}, "w(t)"),
    ("reinforce_averaging", "1/T averaging", {"length_weight": reinforce_averaging.article_average}, "constant"),
    ("batch_baseline", "batch mean claimed unbiased", {"claimed_factor": 1}, "claimed factor"),
    ("returns", "current reward discounted", {"step": lambda x, c, y: c * (x + y)}, "closed form"),
    ("returns", "no discount", {"step": lambda x, c, y: x + y}, "closed form"),
    ("gae", "the source article's recursion", {"step": gae.article_step}, "recursion = series"),
    ("gae", "λ on the wrong term", {"step": gae.lambda_on_wrong_term}, "recursion = series"),
    ("gae", "γ missing in the carry", {"step": gae.missing_gamma}, "λ = 1"),
    ("gae", "trace not cut at a truncation", {"step": gae.trace_crosses_truncation}, "recursion = series"),
    (
        "vtrace",
        "trace clipped with ρ̄ instead of c̄",
        {"impl": FORMULA_SPECS["vtrace"].variant("vtrace_c_clipped_with_rho_bar").fn},
        "impl(log_rhos",
    ),
    ("ppo_clip", "max instead of min", {"objective": ppo_clip.max_instead_of_min}, "ρA − L ≥ 0"),
    ("ppo_clip", "gradient never zero", {"gradient": lambda r, a, lo, hi: a}, "∂L/∂ρ"),
    ("ppo_dual_clip", "dual clip for A > 0 too", {"objective": ppo_clip.dual_clip_all_signs}, "A > 0"),
    (
        "ppo_dual_clip",
        "no dual clip",
        {"objective": lambda rho, adv, lo, hi, c: ppo_clip.clipped_surrogate(rho, adv, lo, hi)},
        "ρ > c",
    ),
    (
        "ppo_ratio_escape",
        "tabular features (no sharing)",
        {"features": ppo_ratio_escape.TABULAR_FEATURES, "theta": ppo_ratio_escape.TABULAR_THETA},
        "further out",
    ),
    ("surrogate", "old occupancy claimed exact", {"occupancy_of": "old"}, "old policy"),
    ("value_loss", "squared error without ½", {"loss": lambda v, g: (v - g) ** 2}, "V − g"),
    ("kl_estimators", "k3 with the sign flipped", {"est3": kl_estimators.k3_sign_flipped}, "f''(x) > 0"),
    ("kl_estimators", "k1 = log q − log p", {"est1": lambda lp, lq: lq - lp}, "E_p[k1]"),
    ("kl_estimators", "k2 without ½", {"est2": lambda lp, lq: (lq - lp) ** 2}, "d^2/dε^2"),
    ("short_corridor", "argmax ½", {"claimed_argmax": sp.Rational(1, 2)}, "argmax"),
    ("short_corridor", "J(p) sign error", {"claimed_objective": lambda p: (2 * p - 4) / (p * (p - 1))}, "J(p)"),
    ("short_corridor", "maximum −12", {"claimed_max": sp.Integer(-12)}, "J(p*)"),
    ("short_corridor", "corridor not reversed", {"dynamics": short_corridor.PLAIN_CORRIDOR}, "J(p)"),
    ("gridworld", "one entry off by one", {"claimed": ((0, -14, -20, -22), (-14, -17, -20, -20), (-20, -20, -18, -14), (-22, -20, -14, 0))}, "table"),
    ("gridworld", "discounted γ = 0.9", {"gamma": sp.Rational(9, 10)}, "table"),
]


@pytest.mark.parametrize(
    ("key", "label", "kwargs", "rejected"),
    WRONG_VARIANTS,
    ids=[f"{k}-{label}" for k, label, _, _ in WRONG_VARIANTS],
)
def test_proof_rejects_wrong_variant(key: str, label: str, kwargs: dict[str, Any], rejected: str) -> None:
    result = SPECS[key].load()(**kwargs)
    assert not result.passed, f"{key} accepted a wrong variant ({label})"
    failed = [c.statement for c in result.claims if not c.passed]
    assert any(rejected in s for s in failed), f"expected a rejected claim containing {rejected!r}: {failed}"


def test_every_proof_has_a_wrong_variant() -> None:
    assert {k for k, *_ in WRONG_VARIANTS} == set(SPECS)


def test_rejection_comes_with_an_exact_counterexample() -> None:
    result = softmax_score.prove(claimed=lambda a, b, pi: sp.KroneckerDelta(a, b))
    claim = result.claims[0]
    assert not claim.passed and "left - right" in claim.details and "theta_0=" in claim.details


# ---------------------------------------------------------------------------------------------
# every proof tied to code rejects a wrong implementation: the algebra still holds, the numeric
# claim (the code against the lambdified closed form) fails. Small local wrong implementations,
# each in the exact public signature of the function it replaces.
# ---------------------------------------------------------------------------------------------
def _pg_loss_sign_flipped(log_probs, advantages, mask=None):
    """WRONG: the objective instead of the loss (ascends the wrong way)."""
    return -pgmath.policy_gradient_loss(log_probs, advantages, mask)


def _pg_loss_over_valid_steps(log_probs, advantages, mask=None):
    """WRONG: padding masked out, so each batch is divided by its random number of steps."""
    return pgmath.policy_gradient_loss(log_probs, advantages, log_probs != 0)


def _log_prob_normaliser_detached(logits, actions, mask=None):
    """WRONG: log π(a) = zₐ − logsumexp(z).detach(): right values, the −π(b) of the score lost."""
    log_probs = pgmath.categorical_log_prob(logits, actions, mask)
    chosen = logits.gather(-1, actions[..., None].long()).squeeze(-1)
    return chosen - (chosen - log_probs).detach()


def _log_prob_times(factor):
    def log_prob(logits, actions, mask=None):
        return factor * pgmath.categorical_log_prob(logits, actions, mask)

    return log_prob


def _entropy_ignores_mask(logits, mask=None):
    """WRONG: the entropy over every action, masked ones included."""
    return pgmath.categorical_entropy(logits)


def _gaussian_log_prob_without_log_std(mean, log_std, actions):
    """WRONG: the −log σ term dropped."""
    return pgmath.gaussian_log_prob(mean, log_std, actions) + torch.broadcast_to(log_std, mean.shape).sum(-1)


def _gaussian_entropy_without_half(log_std):
    """WRONG: H = log σ + ½ log 2π (the ½ from E[z²] missing)."""
    return (log_std + 0.5 * math.log(2 * math.pi)).sum(-1)


def _policy_gradient_with_q(mdp, logits_or_fn, params=None, *, method="theorem"):
    """WRONG: ∂J/∂θ[s, a] = d(s) π(a|s) Q(s, a) (Q where the softmax gradient needs A = Q − V)."""
    pi = mdp.policy(logits_or_fn)
    return mdp.state_action_occupancy(pi) * mdp.action_values(pi)


def _weights_without_discount(mdp, pi, episodes, estimator, **options):
    """WRONG: the reward-to-go weights without γᵗ."""
    w = episode_weights(mdp, pi, episodes, estimator, **options)
    if estimator != "reward_to_go":
        return w
    disc = mdp.gamma ** torch.arange(w.shape[0], dtype=w.dtype)[:, None]
    return w / disc


def _normalize_with_population_std(adv, mask=None, eps=1e-8):
    """WRONG: the biased (ddof = 0) standard deviation."""
    sel = torch.ones_like(adv, dtype=torch.bool) if mask is None else mask.bool()
    x = adv[sel]
    out = (adv - x.mean()) / (x.std(unbiased=False) + eps)
    return torch.where(sel, out, torch.zeros_like(out))


def _returns_no_truncation_bootstrap(rewards, terminated, truncated, *, gamma, next_values=None, backend="auto"):
    """WRONG: truncation treated as termination (no bootstrap after a time limit)."""
    return pgmath.discounted_returns(rewards, terminated | truncated, truncated, gamma=gamma, next_values=next_values)


def _cumsum_discounting_x(x, discounts, *, backend="auto"):
    """WRONG: yₜ = cₜ xₜ + cₜ yₜ₊₁."""
    return pgmath.discounted_cumsum(x * discounts, discounts)


def _gae_ignores_truncation(rewards, values, next_values, terminated, truncated, *, gamma, lam, backend="auto"):
    """WRONG: the λ-trace is not cut at a truncation."""
    return pgmath.gae(rewards, values, next_values, terminated, torch.zeros_like(truncated), gamma=gamma, lam=lam)


def _vtrace_pg_uses_vs(log_rhos, rewards, values, next_values, terminated, truncated, *, gamma, lam=1.0,
                       rho_bar=1.0, c_bar=1.0, pg_rho_bar=None):
    """WRONG: the policy-gradient advantage bootstraps from vₜ instead of vₜ₊₁."""
    return FORMULA_SPECS["vtrace"].variant("vtrace_pg_uses_vs").fn(
        log_rhos, rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam, rho_bar=rho_bar,
        c_bar=c_bar, pg_rho_bar=pg_rho_bar)


def _td_bootstraps_terminal(rewards, values, next_values, terminated, *, gamma):
    """WRONG: δₜ = rₜ + γ V(sₜ₊₁) − V(sₜ) even where sₜ₊₁ is terminal."""
    return rewards + gamma * next_values - values


def _lambda_returns_value_twice(rewards, values, next_values, terminated, truncated, *, gamma, lam, backend="auto"):
    """WRONG: G^λ = Â + 2V."""
    return pgmath.lambda_returns(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam) + values


def _ppo_max_instead_of_min(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                            dual_clip=None, mask=None):
    """WRONG: optimistic max(ρA, clip(ρ)A)."""
    hi = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(log_probs - old_log_probs.detach())
    adv = advantages.detach()
    obj = torch.maximum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + hi) * adv)
    if dual_clip is not None:
        obj = torch.where(adv < 0, torch.maximum(obj, dual_clip * adv), obj)
    return -pgmath.masked_mean(obj, mask), {}


def _ppo_dual_clip_all_signs(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                             dual_clip=None, mask=None):
    """WRONG: max(L, cA) applied for positive advantages too."""
    hi = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(log_probs - old_log_probs.detach())
    adv = advantages.detach()
    obj = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + hi) * adv)
    if dual_clip is not None:
        obj = torch.maximum(obj, dual_clip * adv)
    return -pgmath.masked_mean(obj, mask), {}


def _ppo_clip_never_binds(log_probs, old_log_probs, advantages, *, clip_eps=0.2, clip_eps_high=None,
                          dual_clip=None, mask=None):
    """WRONG: the ratio is clipped to a range so wide that it never binds."""
    return pgmath.ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=0.999, clip_eps_high=1e9, mask=mask)


def _ppo_ratio_inverted(log_probs, old_log_probs, advantages, **kwargs):
    """WRONG: log_probs and old_log_probs swapped (ρ = π_old/π_θ, and no gradient)."""
    return pgmath.ppo_clip_loss(old_log_probs, log_probs, advantages, **kwargs)


def _value_loss_without_half(values, returns, *, old_values=None, clip_eps=None, mask=None):
    """WRONG: mean (V − R)² (the ½ dropped)."""
    return 2 * pgmath.value_loss(values, returns, old_values=old_values, clip_eps=clip_eps, mask=mask)


def _kl_k3_reversed(log_probs, ref_log_probs, estimator="k3"):
    """WRONG: k3 with the log-ratio reversed (estimates KL(q‖p) sample by sample)."""
    if estimator == "k3":
        return pgmath.kl_estimate(ref_log_probs, log_probs, "k3")
    return pgmath.kl_estimate(log_probs, ref_log_probs, estimator)


def _plain_corridor(*, dtype=torch.float64, device=None):
    """WRONG: the short corridor with nothing reversed in the middle state."""
    P = np.zeros((4, 2, 4))
    P[0, 0, 0], P[0, 1, 1], P[1, 0, 0], P[1, 1, 2], P[2, 0, 1], P[2, 1, 3] = 1, 1, 1, 1, 1, 1
    P[3, :, 3] = 1.0
    R = -np.ones((4, 2))
    R[3] = 0.0
    return TabularMDP(P, R, 1.0, [1.0, 0.0, 0.0, 0.0], [False, False, False, True], dtype=dtype, device=device)


def _corridor_features_swapped(num_params=2, *, dtype=torch.float64, device=None):
    """WRONG: the right and left features exchanged."""
    return pgmath.mdp.short_corridor_features(num_params, dtype=dtype, device=device).flip(1)


def _gridworld_ignores_gamma(rows=4, cols=4, **kwargs):
    """WRONG: the discount argument ignored (always γ = 1)."""
    return pgmath.mdp.gridworld(rows, cols, **{**kwargs, "gamma": 1.0})


#: (proof key, keyword, wrong implementation, text of the rejected numeric claim)
WRONG_IMPLS: list[tuple[str, str, Any, str]] = [
    ("log_derivative", "impl", _pg_loss_sign_flipped, "impl(log π(a), qₐ − b)"),
    ("softmax_score", "impl", _log_prob_normaliser_detached, "∂impl(logits, actions)"),
    ("categorical", "impl", _log_prob_times(1.01), "impl(logits + c"),
    ("categorical", "entropy_impl", _entropy_ignores_mask, "entropy_impl"),
    ("gaussian", "impl", _gaussian_log_prob_without_log_std, "impl(mean, log_std, actions)"),
    ("gaussian", "entropy_impl", _gaussian_entropy_without_half, "entropy_impl"),
    ("policy_gradient_theorem", "impl", _policy_gradient_with_q, "impl(mdp, logits"),
    ("causality", "impl", _weights_without_discount, "impl(…)ₜ"),
    ("reinforce_averaging", "impl", _pg_loss_over_valid_steps, "∇θ impl(log π, G)"),
    ("batch_baseline", "impl", _normalize_with_population_std, "impl(q)"),
    ("returns", "impl", _returns_no_truncation_bootstrap, "impl(rewards, terminated"),
    ("returns", "cumsum_impl", _cumsum_discounting_x, "cumsum_impl"),
    ("gae", "impl", _gae_ignores_truncation, "impl(rewards, values"),
    ("gae", "td_impl", _td_bootstraps_terminal, "td_impl"),
    ("gae", "lambda_returns_impl", _lambda_returns_value_twice, "lambda_returns_impl"),
    ("vtrace", "impl", _vtrace_pg_uses_vs, "impl(log_rhos"),
    ("ppo_clip", "impl", _ppo_max_instead_of_min, "impl: loss"),
    ("ppo_dual_clip", "impl", _ppo_dual_clip_all_signs, "impl(dual_clip=c)"),
    ("ppo_ratio_escape", "impl", _ppo_clip_never_binds, "∇θ impl"),
    ("surrogate", "impl", _ppo_ratio_inverted, "−N"),
    ("value_loss", "impl", _value_loss_without_half, "impl(values, returns"),
    ("kl_estimators", "impl", _kl_k3_reversed, "'k3'"),
    ("short_corridor", "impl", _plain_corridor, "impl()'s J"),
    ("short_corridor", "features_impl", _corridor_features_swapped, "features_impl"),
    ("gridworld", "impl", _gridworld_ignores_gamma, "impl(gamma=γ)"),
]


@pytest.mark.parametrize(
    ("key", "keyword", "wrong", "rejected"),
    WRONG_IMPLS,
    ids=[f"{k}-{kw}-{fn.__name__.strip('_')}" for k, kw, fn, _ in WRONG_IMPLS],
)
def test_proof_rejects_wrong_implementation(
    key: str, keyword: str, wrong: Any, rejected: str, full_run: dict[str, Any]
) -> None:
    assert full_run["records"][key]["passed"], f"{key} fails with the pgmath implementation"
    result = SPECS[key].load()(**{keyword: wrong})
    assert not result.passed, f"{key} accepted a wrong {keyword} ({wrong.__doc__})"
    failed = [c for c in result.claims if not c.passed]
    assert any(rejected in c.statement for c in failed), [c.statement for c in failed]
    # the code is what is wrong: every rejected claim is a numeric claim about an implementation,
    # rejected on a computed value (not because the wrong implementation crashed)
    assert all("impl" in c.statement for c in failed), [c.statement for c in failed]
    assert not any(c.details.startswith("the implementation raised") for c in failed), [c.details for c in failed]


def test_every_implementation_keyword_has_a_wrong_implementation() -> None:
    covered = {(k, kw) for k, kw, _, _ in WRONG_IMPLS}
    assert covered == {(spec.key, kw) for spec in PROOFS for kw in spec.impls}


@pytest.mark.parametrize("spec", PROOFS, ids=lambda s: s.key)
def test_impl_constants_name_the_defaults(spec: ProofSpec) -> None:
    """IMPL / IMPLS name exactly the defaults of the proof function's implementation keywords."""
    keywords = impl_keywords(spec.load())
    assert spec.impl is not None and "impl" in keywords, f"{spec.key} is tied to no pgmath function"
    assert spec.impls["impl"] == spec.impl
    assert set(spec.impls) == set(keywords)
    for keyword, dotted in spec.impls.items():
        assert dotted.startswith("pgmath."), dotted
        assert resolve(dotted) is keywords[keyword], (keyword, dotted)


def test_impl_accepts_any_callable_with_the_signature() -> None:
    """impl needs no attribute beyond being callable: a partial (no __name__) and a lambda pass."""
    assert gae.prove(impl=functools.partial(pgmath.gae, backend="reference")).passed
    assert gae.prove(td_impl=lambda r, v, nv, term, *, gamma: pgmath.td_errors(r, v, nv, term, gamma=gamma)).passed


def test_a_crashing_implementation_is_rejected_with_its_error() -> None:
    def crashes(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    result = kl_estimators.prove(impl=crashes)
    failed = [c for c in result.claims if not c.passed]
    assert failed and all("impl" in c.statement for c in failed)
    assert "RuntimeError: boom" in failed[0].details


def test_gae_step_signature_matches_the_specs() -> None:
    """The proof's steps take (r, v, v_next, term, trunc, last, a_next, gamma, lam), as the
    recursion steps of pgmath.specs do, and run on tensors as on symbols."""
    r, v, nv = (torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) for _ in range(3))
    term = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    trunc = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    got = gae.run_steps(gae.gae_step, list(r), list(v), list(nv), list(term), list(trunc), 0.9, 0.8)
    want = pgmath.gae(r, v, nv, term.bool(), trunc.bool(), gamma=0.9, lam=0.8)
    assert torch.allclose(torch.stack([torch.as_tensor(a, dtype=torch.float64) for a in got]), want)


# ---------------------------------------------------------------------------------------------
# what the proofs establish, against published numbers
# ---------------------------------------------------------------------------------------------
def test_short_corridor_matches_sutton_barto_example_13_1() -> None:
    """S&B (2018) Example 13.1: best p(right) "about 0.59", value "about −11.6"."""
    data = short_corridor.prove().data
    assert data["p_star_exact"] == "2 - sqrt(2)" and data["J_star_exact"] == "-6 - 4*sqrt(2)"
    assert round(data["p_star"], 2) == 0.59  # the book's rounding: 0.5858 → 0.59
    assert round(data["J_star"], 1) == -11.7 and abs(data["J_star"] - (-11.6)) < 0.06  # −11.657; book: ≈ −11.6
    assert data["J"] == "-2*(p - 2)/(p*(p - 1))"  # = (2p − 4)/(p(1 − p)), derived not typed


def test_gridworld_reproduces_figure_4_1() -> None:
    assert gridworld.prove().data["values"] == [list(r) for r in gridworld.FIGURE_4_1]


def test_ppo_ratio_escape_numbers() -> None:
    data = ppo_ratio_escape.prove().data
    assert 0.8 < data["rho1"] < 1.2 < data["rho2"] < data["rho2_after_step"]


def test_article_advantage_recursion_is_discounted_sum_of_r_minus_v() -> None:
    """What the article's loop computes instead of GAE: Aₜ = Σₖ γᵏ Πm (rₜ₊ₖ − Vₜ₊ₖ)."""
    g, lam = sp.symbols("gamma lambda", positive=True)
    r = list(sp.symbols("r_0:4", real=True))
    v = list(sp.symbols("V_0:5", real=True))
    m = list(sp.symbols("m_0:4", real=True))  # mₜ = 1 − terminatedₜ, no truncation
    term, trunc = [1 - mt for mt in m], [0] * 4
    got = gae.run_steps(gae.article_step, r, v[:4], v[1:], term, trunc, g, lam)
    expected = [
        sum(g**k * sp.Mul(*m[t : t + k]) * (r[t + k] - v[t + k]) for k in range(4 - t)) for t in range(4)
    ]
    assert identity("article recursion", got, expected).passed
    # and it is not GAE for any λ: at λ = 1 GAE is G − V, the article subtracts Σγᵏ V too
    gae_at_1 = gae.run_steps(gae.gae_step, r, v[:4], v[1:], term, trunc, g, sp.Integer(1))
    assert not identity("article = GAE(λ=1)", got, gae_at_1).passed


# ---------------------------------------------------------------------------------------------
# runners: python -m proofs, single modules, the verify suite
# ---------------------------------------------------------------------------------------------
def test_proof_module_runs_alone() -> None:
    out = subprocess.run([sys.executable, "-m", "proofs.gae"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "proven" in out.stdout


def test_main_exits_1_when_a_proof_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import pgmath.proofs.__main__ as cli

    def failing(spec: ProofSpec):
        return gae.prove(step=gae.article_step), 0.0

    monkeypatch.setattr(cli, "run_proof", failing)
    assert cli.main(["gae"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_verify_suite_has_one_row_per_proof() -> None:
    from pgmath.proofs import suite

    from pgmath.verification import SUITES_BY_AREA, VerifyContext, run_row

    assert SUITES_BY_AREA["proofs"] == "pgmath.proofs.suite"

    ctx = VerifyContext()
    checks = suite.rows(ctx)
    assert [c.area for c in checks] == ["proofs"] * len(PROOFS)
    assert len({c.name for c in checks}) == len(PROOFS)
    row = run_row(checks[1], ctx)  # softmax score: fast
    assert row.passed and row.statistic == "3/3 claims proven" and row.data["file"] == "proofs/softmax_score.py"
    assert row.data["impl"] == "pgmath.categorical_log_prob"


# ---------------------------------------------------------------------------------------------
# packaging: proofs/ stays at the top of the repository but installs as pgmath.proofs only
# ---------------------------------------------------------------------------------------------
def _setuptools_config() -> dict[str, Any]:
    from setuptools.config.pyprojecttoml import read_configuration

    return read_configuration(ROOT / "pyproject.toml")["tool"]["setuptools"]


def test_packaging_config_ships_proofs_as_pgmath_proofs() -> None:
    from setuptools import find_namespace_packages

    config = _setuptools_config()
    packages = config["packages"]
    assert isinstance(packages, list), "packages must be listed (find cannot rename proofs/)"
    assert not any(p == "proofs" or p.startswith("proofs.") for p in packages), packages
    assert config["package-dir"] == {"pgmath.proofs": "proofs"}
    # the list is exactly what find would discover under pgmath/, plus the mapped pgmath.proofs
    found = set(find_namespace_packages(where=str(ROOT), include=["pgmath", "pgmath.*"]))
    assert set(packages) == found | {"pgmath.proofs"}, "update [tool.setuptools] packages in pyproject.toml"


def test_wheel_installs_pgmath_proofs_and_no_top_level_proofs(tmp_path: pathlib.Path) -> None:
    """Build the wheel from a copy of the sources (the checkout stays clean) and list it."""
    pytest.importorskip("wheel")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("pgmath", "proofs"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "pytest_pgmath.py"):
        shutil.copy2(ROOT / name, src / name)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(tmp_path / "dist")],
        cwd=src, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("pgmath-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("proofs/")], "the wheel installs a top-level proofs package"
    shipped = {n.removeprefix("pgmath/proofs/") for n in names if n.startswith("pgmath/proofs/")}
    assert {f"{spec.name}.py" for spec in PROOFS} | {"__init__.py", "__main__.py", "core.py", "suite.py"} <= shipped
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    # pgmath, and the thin pytest plugin module (issue 15: it must not import the pgmath package)
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["pgmath", "pytest_pgmath"]


def test_one_process_loads_the_proofs_once_as_pgmath_proofs() -> None:
    """pgmath (verify suite, proof loading) never imports the top-level ``proofs`` package, so
    no process holds both proofs.x and pgmath.proofs.x; from a checkout ``python -m proofs``
    loads only proofs.x."""
    code = (
        "import sys, importlib;"
        "from pgmath.verification import SUITES_BY_AREA, VerifyContext;"
        "suite = importlib.import_module(SUITES_BY_AREA['proofs']);"
        "suite.rows(VerifyContext());"
        "from pgmath.proofs import PROOFS;"
        "[spec.load() for spec in PROOFS];"
        "print(sorted({m.split('.')[0] + ('.' + m.split('.')[1] if m.startswith('pgmath.') else '')"
        " for m in sys.modules if m == 'proofs' or m.startswith(('proofs.', 'pgmath.proofs'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["['pgmath.proofs']"], out.stdout
    code = "\n".join([
        "import runpy, sys",
        "sys.argv = ['proofs', 'value_loss']",
        "try:",
        "    runpy.run_module('proofs', run_name='__main__', alter_sys=True)",
        "except SystemExit:",
        "    pass",
        "print(sorted(m for m in sys.modules if m.startswith('pgmath.proofs')))",
    ])
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]"), out.stdout


# ---------------------------------------------------------------------------------------------
# errata demonstrations (docs/errata.md)
# ---------------------------------------------------------------------------------------------
def test_erratum_softmax_layer_then_categorical_probs_loses_log_prob_and_gradient() -> None:
    """The article's nn.Softmax + Categorical(probs): log-prob clamped, gradient lost."""
    logits = torch.tensor([0.0, -120.0], requires_grad=True)
    via_probs = torch.distributions.Categorical(probs=torch.softmax(logits, -1)).log_prob(torch.tensor(1))
    via_probs.backward()
    assert via_probs.item() > -20  # clamped near log(float32 eps) ≈ −15.9, true value −120
    assert torch.count_nonzero(logits.grad) == 0  # no learning signal at all

    logits2 = torch.tensor([0.0, -120.0], requires_grad=True)
    via_logits = torch.distributions.Categorical(logits=logits2).log_prob(torch.tensor(1))
    via_logits.backward()
    assert via_logits.item() == pytest.approx(-120.0, abs=1e-4)
    # ∂log π(1)/∂θ_b = [1 = b] − π(b) (proofs/softmax_score.py): ≈ (−1, 1)
    assert torch.allclose(logits2.grad, torch.tensor([-1.0, 1.0]), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# documentation
# ---------------------------------------------------------------------------------------------
MY_DOCS = [p for p in (ROOT / "docs").rglob("*.md") if p.parts[len((ROOT / "docs").parts)] not in {
    "mdp", "estimators", "agents", "llm", "testing", "benchmarks.md"
}]


def test_docs_cite_existing_proof_files() -> None:
    cited = set()
    for page in MY_DOCS:
        cited |= set(re.findall(r"proofs/[a-z_]+\.py", page.read_text(encoding="utf-8")))
    assert cited, "the docs cite no proof"
    missing = sorted(c for c in cited if not (ROOT / c).exists())
    assert not missing, f"docs cite proof files that do not exist: {missing}"
    uncited = sorted(spec.path for spec in PROOFS if spec.path not in cited)
    assert not uncited, f"proofs not cited by any page: {uncited}"


def test_docs_cite_existing_pgmath_functions() -> None:
    import pgmath

    if not hasattr(pgmath, "gae"):
        pytest.skip("the core (pgmath.gae, …) is not exported yet")
    names = set()
    for page in MY_DOCS:
        names |= set(re.findall(r"`pgmath\.([a-z_]+)`", page.read_text(encoding="utf-8")))
    missing = sorted(n for n in names if not hasattr(pgmath, n) and not (ROOT / "pgmath" / n).is_dir())
    assert not missing, f"docs name pgmath functions that do not exist: {missing}"


def test_reference_values_page_lists_the_proven_numbers() -> None:
    page = (ROOT / "docs" / "reference-values.md").read_text(encoding="utf-8")
    data = short_corridor.prove().data
    assert f"{data['p_star']:.6f}" in page and f"{data['J_star']:.6f}" in page
    for row in gridworld.FIGURE_4_1:
        assert " | ".join(str(x) for x in row) in page


def test_citation_cff_is_valid() -> None:
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    import pgmath

    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == pgmath.__version__
    # a real calendar date (YAML parses an ISO date to datetime.date), not a pinned constant
    import datetime

    released = cff["date-released"]
    assert isinstance(released, datetime.date)
    assert datetime.date.fromisoformat(str(released)) == released
    assert cff["message"] and cff["title"] and cff["authors"]


def test_mkdocs_build_strict(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "errata" / "index.html").exists()
    assert (tmp_path / "site" / "formulas" / "gae" / "index.html").exists()
