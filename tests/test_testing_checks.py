"""The checks accept pgmath's own implementations and explain a mismatch readably.

Power (that every catalogued bug is rejected) is in tests/test_testing_mutants.py; this file
shows the checks do not reject correct code (no false alarms: the runs are derandomized, so a
pass here is a pass every time), that messages name the step, the environment and the episode
end, and that the runs are reproducible.
"""

from __future__ import annotations

import pytest
import torch

import pgmath
import pgmath.llm as llm
from pgmath.testing import (
    CheckOptions,
    check_gae,
    check_group_advantages,
    check_kl_estimator,
    check_ppo_loss,
    check_returns,
    make_rollout,
)
from pgmath.testing.mutants import by_name

gae_no_truncation_bootstrap = by_name("gae_no_truncation_bootstrap").fn


def test_references_pass_every_check():
    reports = [
        check_gae(pgmath.gae),
        check_gae(pgmath.gae_reference),
        check_returns(pgmath.discounted_returns),
        check_ppo_loss(pgmath.ppo_clip_loss),
        check_ppo_loss(pgmath.ppo_clip_loss, clip_eps=0.1, clip_eps_high=0.3, dual_clip=3.0),
        check_group_advantages(llm.group_advantages),
        check_group_advantages(lambda r: llm.group_advantages(r, normalize_std=False), normalize_std=False),
        check_group_advantages(llm.rloo_advantages, estimator="rloo"),
    ]
    for est in ("k1", "k2", "k3"):
        reports.append(check_kl_estimator(lambda a, b, e=est: pgmath.kl_estimate(a, b, e), est))
    for r in reports:
        assert r.examples >= 100, r
        assert r.edge_cases, r
        assert "agrees with" in str(r)


def test_ppo_loss_without_mask_and_in_the_rlax_convention():
    check_ppo_loss(lambda lp, old, adv, *, clip_eps: pgmath.ppo_clip_loss(lp, old, adv, clip_eps=clip_eps),
                   masked=False, max_examples=40)

    def rlax_loss(prob_ratios_t, adv_t, epsilon):
        adv_t = adv_t.detach()  # rlax.clipped_surrogate_pg_loss(use_stop_gradient=True)
        clipped = torch.clamp(prob_ratios_t, 1 - epsilon, 1 + epsilon)
        return -torch.mean(torch.minimum(prob_ratios_t * adv_t, clipped * adv_t))

    check_ppo_loss(rlax_loss, convention="rlax", arrays="torch", max_examples=40)  # a torch stand-in
    with pytest.raises(ValueError, match="symmetric"):
        check_ppo_loss(rlax_loss, convention="rlax", dual_clip=3.0)


def test_kl_estimator_may_return_the_mean():
    check_kl_estimator(lambda a, b: pgmath.kl_estimate(a, b, "k3").mean(), "k3", max_examples=40)
    with pytest.raises(AssertionError, match="mean estimate"):
        check_kl_estimator(lambda a, b: pgmath.kl_estimate(a, b, "k1").mean(), "k3", max_examples=40)


def test_message_names_step_env_and_truncation_bootstrap():
    """The issue's example: 't=…, env=1: expected …, got …; the episode was truncated …'."""
    case = make_rollout(
        [[0.5, 1.0], [0.25, -1.0], [1.0, 0.5], [0.0, 2.0]],
        [[1.0, 0.5], [2.0, 1.5], [0.5, 1.0], [1.5, 0.25], [0.75, 1.25]],
        [[3.0, 4.0], [3.5, 4.5], [3.25, 4.25], [3.75, 4.75]],
        [[0, 0], [0, 0], [0, 2], [0, 0]],
        gamma=0.9, lam=0.8, label="truncation in env 1",
    )
    from hypothesis import strategies as st

    with pytest.raises(AssertionError) as info:
        check_gae(gae_no_truncation_bootstrap, max_examples=1, strategy=st.just(case), edge_cases=False)
    msg = str(info.value)
    assert "t=2, env=1: expected" in msg
    assert "the episode was truncated here, so the bootstrap uses next_values[2] = 4.25" in msg
    assert "not values[3], which is the reset observation's" in msg
    assert "t=3, env=1" not in msg  # the next episode is unaffected
    assert "environment 1:" in msg and "truncated" in msg
    assert "gae_no_truncation_bootstrap" in msg.split("Your output reproduces")[1]


def test_message_explains_a_new_episode():
    case = make_rollout(
        [[1.0], [2.0], [0.5]], [[0.5], [1.0], [0.25], [0.75]], [[3.0], [4.0], [5.0]], [[0], [1], [0]],
        gamma=0.9, lam=0.8,
    )
    from hypothesis import strategies as st

    def wrong_after_reset(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        adv = pgmath.gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
        adv[2] += 1.0
        return adv

    with pytest.raises(AssertionError) as info:
        check_gae(wrong_after_reset, max_examples=1, strategy=st.just(case), edge_cases=False)
    msg = str(info.value)
    assert "t=2, env=0: expected" in msg
    assert "a new episode starts at t=2 (the previous one was terminated at t=1)" in msg


def test_the_counterexample_is_shrunk_and_reproducible():
    def fail():
        with pytest.raises(AssertionError) as info:
            by_name("gae_no_truncation_bootstrap").run_check()
        return str(info.value)

    first, second = fail(), fail()
    assert first == second  # derandomized: the same counterexample every run
    table = first.split("The counterexample (shrunk by Hypothesis)")[1]
    assert "T=1" in table or "T=2" in table  # shrunk to (almost) one step


def test_edge_cases_alone_and_seeded_runs():
    r = check_gae(pgmath.gae, max_examples=0)
    assert r.examples == 0 and "truncated at the last step" in r.edge_cases
    r = check_gae(pgmath.gae, max_examples=20, seed=1234, edge_cases=False)
    assert r.examples >= 20 and r.edge_cases == ()
    with pytest.raises(AssertionError, match="edge case 'truncated at the first step'"):
        check_gae(gae_no_truncation_bootstrap, max_examples=0)


def test_ppo_all_masked_may_raise_or_return_a_finite_loss():
    def zero_when_empty(log_probs, old_log_probs, advantages, *, clip_eps, mask):
        if not bool(mask.any()):
            return log_probs.sum() * 0.0
        return pgmath.ppo_clip_loss(log_probs, old_log_probs, advantages, clip_eps=clip_eps, mask=mask)[0]

    check_ppo_loss(zero_when_empty, max_examples=20)


def test_group_check_rejects_k_equal_one_references_and_bad_estimator():
    with pytest.raises(ValueError, match="estimator"):
        check_group_advantages(llm.group_advantages, estimator="ppo")
    with pytest.raises(ValueError, match="estimator"):
        check_kl_estimator(lambda a, b: a - b, "k4")


def test_checks_run_on_the_device(device):
    """Generated inputs on ``device`` (CUDA when present); the reference runs on the CPU."""
    check_gae(pgmath.gae, device=device, max_examples=15)
    check_gae(pgmath.gae, convention="pgmath", arrays="torch", device=device, max_examples=0)
    check_ppo_loss(pgmath.ppo_clip_loss, device=device, max_examples=15)
    check_kl_estimator(lambda a, b: pgmath.kl_estimate(a, b, "k3"), "k3", device=device, max_examples=15)
    check_group_advantages(llm.group_advantages, device=device, max_examples=15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_inputs_are_judged_in_their_precision(dtype):
    check_gae(pgmath.gae, dtype=dtype, max_examples=30)
    check_returns(pgmath.discounted_returns, dtype=dtype, max_examples=30)
    check_ppo_loss(pgmath.ppo_clip_loss, dtype=dtype, max_examples=30)
    check_kl_estimator(lambda a, b: pgmath.kl_estimate(a, b, "k3"), "k3", dtype=dtype, max_examples=30)


def test_options_object_and_keywords_are_the_same_settings():
    """``options=CheckOptions(...)`` and the same fields as keywords run the same check; keywords
    override the object; unknown keywords and bad values are refused."""
    by_kw = check_gae(pgmath.gae, max_examples=7, seed=5, edge_cases=False)
    by_obj = check_gae(pgmath.gae, options=CheckOptions(max_examples=7, seed=5, edge_cases=False))
    assert 0 < by_kw.examples == by_obj.examples <= 7 and by_kw.edge_cases == by_obj.edge_cases == ()
    mixed = check_gae(pgmath.gae, options=CheckOptions(max_examples=7), max_examples=0)
    assert mixed.examples == 0 and mixed.edge_cases  # the keyword won; the object's edge_cases kept
    fails = []
    for kw in ({"max_examples": 10}, {"options": CheckOptions(max_examples=10)}):
        with pytest.raises(AssertionError) as info:
            check_gae(gae_no_truncation_bootstrap, edge_cases=False, **kw)
        fails.append(str(info.value))
    assert fails[0] == fails[1]
    with pytest.raises(TypeError, match="max_exemples"):
        check_gae(pgmath.gae, max_exemples=3)
    with pytest.raises(ValueError, match="arrays"):
        CheckOptions(arrays="jax")


def test_plugin_object_applies_the_session_options():
    from pgmath.testing.plugin import PgmathChecks

    checks = PgmathChecks(max_examples=4, seed=1)
    report = checks.gae(pgmath.gae, edge_cases=False)
    assert 0 < report.examples <= 4
    own = checks.gae(pgmath.gae, options=CheckOptions(max_examples=0))  # the call's own options win
    assert own.examples == 0
    # the fixture's name works too (docs/verify-your-implementation.md once used it; issue 12)
    assert checks.check_gae(pgmath.gae, edge_cases=False).examples <= 4
    with pytest.raises(AttributeError):
        checks.check_nothing  # noqa: B018
