"""The core rows of ``pgmath verify`` pass, and each one fails on a deliberately wrong formula."""

from __future__ import annotations

import pytest
import torch

import pgmath
from pgmath import core_checks as cc
from pgmath.verification import VerifyContext, run_check

CTX = VerifyContext(quick=True)


@pytest.mark.parametrize("check", cc.checks(CTX), ids=lambda c: f"{c.name}|{c.check}")
def test_every_core_check_passes(check):
    result = run_check(check, CTX)
    assert result.passed, (result.statistic, result.error, result.data)


# --- deliberately wrong formulas: each must be caught -------------------------------------------


def log_prob_unnormalised(z, a):
    return z.gather(-1, a.unsqueeze(-1)).squeeze(-1)


def pg_loss_not_detached_sign(log_probs, adv, mask=None):
    return pgmath.masked_mean(log_probs * adv, mask)  # sign flipped: ascends the loss


def ppo_max_instead_of_min(lp, old, adv, *, clip_eps=0.2, clip_eps_high=None, dual_clip=None, mask=None):
    ratio = (lp - old).exp()
    hi = clip_eps if clip_eps_high is None else clip_eps_high
    obj = torch.maximum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + hi) * adv)
    return -obj.mean(), {}


def ppo_ratio_inverted(lp, old, adv, **kw):
    return pgmath.ppo_clip_loss(old, lp, adv, **kw)


def value_loss_no_half(v, R, *, old_values=None, clip_eps=None, mask=None):
    return 2 * pgmath.value_loss(v, R, old_values=old_values, clip_eps=clip_eps, mask=mask)


def kl_k3_sign_error(lp, ref, estimator):
    if estimator == "k3":
        lr = lp - ref
        return torch.expm1(lr) - lr  # uses p/q instead of q/p: estimates KL(q‖p)·… not KL(p‖q)
    return pgmath.kl_estimate(lp, ref, estimator)


def kl_k2_as_exact(lp, ref, estimator):
    return pgmath.kl_estimate(lp, ref, "k2" if estimator == "k1" else estimator)


def kl_categorical_reversed(zp, zq):
    return pgmath.kl_categorical(zq, zp)


MUTANTS = [
    (cc.check_softmax_score, log_prob_unnormalised),
    (cc.check_pg_loss_gradient, pg_loss_not_detached_sign),
    (cc.check_ppo_gradient, ppo_max_instead_of_min),
    (cc.check_ppo_gradient, ppo_ratio_inverted),
    (cc.check_value_loss_gradient, value_loss_no_half),
    (cc.check_kl_unbiased_exact, kl_k3_sign_error),
    (cc.check_kl_unbiased_exact, kl_k2_as_exact),
    (cc.check_k3_nonnegative, lambda lp, ref, est: -pgmath.kl_estimate(lp, ref, est)),
    (cc.check_k2_second_order, lambda lp, ref, est: pgmath.kl_estimate(lp, ref, "k1")),
    (cc.check_kl_categorical, kl_categorical_reversed),
]


@pytest.mark.parametrize(("check", "wrong"), MUTANTS, ids=lambda x: getattr(x, "__name__", "lambda"))
def test_check_catches_wrong_formula(check, wrong):
    try:
        passed = check(CTX, wrong).passed
    except (RuntimeError, ValueError):  # e.g. no gradient reaches the parameters: also caught
        passed = False
    assert not passed


def test_bad_input_check_catches_a_silent_function(monkeypatch):
    """If a function stopped validating, the bad-input row would fail."""
    cases = cc.bad_input_cases()
    silent = [(d, (lambda: None), a) for d, _, a in cases[:1]] + cases[1:]
    monkeypatch.setattr(cc, "bad_input_cases", lambda device="cpu": silent)
    assert not cc.check_bad_input(CTX).passed
