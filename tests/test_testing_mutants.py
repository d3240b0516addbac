"""Every catalogued bug is rejected by its check (100 %), and the catalogue is documented.

The references pass the same checks (tests/test_testing_checks.py), so a rejection here is the
check's power, not a check that rejects everything. Runs are derandomized: the same examples every
time, so a rejection is never luck.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import torch

import pgmath
from pgmath.specs import wrong_variants
from pgmath.testing import CheckOptions, make_rollout
from pgmath.testing.mutants import MUTANTS, by_name, diagnose, markdown_table, with_table

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "testing" / "mutants.md"

#: The bugs the issue names, and the mutants that implement them.
ISSUE_BUGS = {
    "not bootstrapping after truncation": "gae_no_truncation_bootstrap",
    "bootstrapping through termination": "gae_bootstrap_through_termination",
    "next value off by one": "gae_next_value_off_by_one",
    "done mask applied at the wrong step": "gae_done_mask_wrong_step",
    "lambda applied to delta_t": "gae_lambda_on_delta",
    "returns computed from normalized advantages": "gae_returns_from_normalized_advantages",
    "PPO min/max swapped for negative advantages": "ppo_minmax_swapped_for_negative_advantages",
    "ratio inverted": "ppo_ratio_inverted",
    "old log-probs not detached": "ppo_old_log_probs_not_detached",
    "k3 sign error": "kl_k3_sign_error",
    "token mask shifted by one": "ppo_token_mask_shifted",
    "GRPO std of a constant group dividing by zero": "group_std_without_eps",
}

#: The catalogue before it was built from the specs: none of these may disappear.
ORIGINAL = {
    "gae_no_truncation_bootstrap", "gae_bootstrap_through_termination", "gae_reset_observation_bootstrap",
    "gae_next_value_off_by_one", "gae_lambda_on_delta", "gae_trace_crosses_truncation",
    "gae_done_mask_wrong_step", "gae_trace_missing_gamma", "gae_no_rollout_end_bootstrap",
    "gae_returns_from_normalized_advantages", "sb3_episode_starts_wrong_step", "sb3_last_step_ignores_dones",
    "sb3_trace_not_reset", "rlax_values_swapped", "rlax_trace_missing_discount", "torchrl_done_as_terminated",
    "torchrl_time_dim_confused", "returns_ignore_episode_ends", "returns_no_truncation_bootstrap",
    "returns_no_end_bootstrap", "returns_done_mask_wrong_step", "ppo_minmax_swapped_for_negative_advantages",
    "ppo_ratio_inverted", "ppo_old_log_probs_not_detached", "ppo_advantages_not_detached", "ppo_min_over_ratios",
    "ppo_surrogate_clamped", "ppo_no_pessimistic_min", "ppo_loss_sign_flipped", "ppo_mask_ignored_in_denominator",
    "ppo_token_mask_shifted", "ppo_masked_mean_nan_when_empty", "kl_k3_sign_error", "kl_k3_log_sign",
    "kl_k3_exp_then_divide", "kl_k2_missing_half", "kl_k1_reversed", "group_std_without_eps",
    "group_stats_over_batch", "group_population_std", "rloo_baseline_includes_self",
}

def test_catalogue_is_large_unique_and_covers_the_issue():
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names) and ORIGINAL <= set(names)
    for bug, name in ISSUE_BUGS.items():
        assert by_name(name).name == name, bug
    conventions = {m.convention for m in MUTANTS if m.check == "check_gae"}
    assert {"pgmath", "sb3", "rlax", "torchrl"} <= conventions
    assert {m.check for m in MUTANTS} >= {"check_gae", "check_returns", "check_ppo_loss",
                                          "check_kl_estimator", "check_group_advantages",
                                          "check_policy_loss"}
    with pytest.raises(KeyError, match="no mutant named"):
        by_name("nope")


def test_the_catalogue_is_the_specs_wrong_variants_with_a_harness():
    from_specs = [(s, v) for s, v in wrong_variants() if s.harness is not None]
    for spec, v in from_specs:
        m = by_name(v.name)
        assert (m.spec, m.check, m.convention, dict(m.options)) == (spec.name, spec.harness, v.convention, dict(v.options))
        assert (m.bug, m.seen_in) == (v.bug, v.seen_in)
        if "harness_form" not in spec.extra:
            assert m.fn is v.fn
    assert len(MUTANTS) == len(from_specs)  # nothing else: every mutant is a spec's wrong variant


def test_harness_form_hands_the_check_advantages_and_targets():
    """The λ-return variants reach check_gae as (Â, value targets): the advantages are the
    reference's, so only the value targets can reject them."""
    m = by_name("lambda_returns_plus_value_twice")
    case = make_rollout([[1.0], [2.0]], [[0.5], [0.25], [1.0]], [[3.0], [4.0]], [[0], [2]], gamma=0.9, lam=0.8)
    adv, targets = m.fn(*case, gamma=0.9, lam=0.8)
    assert torch.equal(adv, pgmath.gae_reference(*case, gamma=0.9, lam=0.8))
    assert torch.allclose(targets, adv + 2 * case.values)


#: Rejected, but not named in the message's diagnosis: the all-masked edge case has its own message.
NOT_DIAGNOSED = {"ppo_masked_mean_nan_when_empty"}
#: Mutants whose output *is* a member of the reference's family: the diagnosis names that member
#: (the simpler cause, pgmath.testing.diagnosis) instead of the catalogued bug.
NAMED_BY_FAMILY = {
    "policy_loss_dual_clip_always_on": "dual_clip=3.0",
    # issue 12: "a KL estimator with its two arguments in the other order is reported as k3 sign error"
    "kl_k3_sign_error": "k3 with its two arguments swapped",
    "kl_k1_reversed": "k1 with its two arguments swapped",
    "kl_k2_as_exact": "estimator 'k2'",
    "kl_k1_as_k2": "estimator 'k1'",
}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_mutant_is_rejected_and_named(mutant):
    with pytest.raises(AssertionError) as info:
        mutant.run_check()
    msg = str(info.value)
    assert "expected" in msg
    assert "your function raised" not in msg  # rejected for its numbers, not for crashing
    if mutant.name in NOT_DIAGNOSED:
        return
    if mutant.name in NAMED_BY_FAMILY:
        assert "Your output matches" in msg and NAMED_BY_FAMILY[mutant.name] in msg
        return
    # the message names the known bug the output reproduces, and this mutant is among them
    assert "Your output reproduces the known bug(s)" in msg
    assert mutant.name in msg.split("Your output reproduces")[1]


def _gae_output(case):
    def output(m):
        return m.fn(*case, gamma=case.gamma, lam=case.lam).numpy() if m.convention == "pgmath" else None

    return output


def test_diagnose_names_a_bug_only_where_it_explains_the_difference():
    # one step, no episode end: every pgmath-convention GAE bug that changes δ shows here
    case = make_rollout([[1.0]], [[0.5], [0.25]], [[3.0]], [[0]], gamma=0.9, lam=0.8)
    exp = np.array([[1.0 + 0.9 * 0.25 - 0.5]])
    assert diagnose("check_gae", exp, exp, _gae_output(case)) == []  # the correct answer matches no bug
    wrong = by_name("gae_no_rollout_end_bootstrap").fn(*case, gamma=0.9, lam=0.8).numpy()
    assert wrong.tolist() == [[1.0 - 0.5]]  # V(s_T) dropped
    named = diagnose("check_gae", wrong, exp, _gae_output(case))
    assert any(n.startswith("gae_no_rollout_end_bootstrap ") for n in named)
    assert diagnose("check_returns", wrong, exp, _gae_output(case)) == []  # another check's mutants


def test_diagnose_respects_the_options_of_a_mutant():
    k3 = by_name("kl_k3_sign_error")
    lp, ref = torch.tensor([-0.5, -2.0]), torch.tensor([-1.0, -0.25])
    got = k3.fn(lp, ref).numpy()
    exp = pgmath.kl_estimate(lp, ref, "k3").numpy()

    def output(m):
        return m.fn(lp, ref).numpy()

    assert any(n.startswith("kl_k3_sign_error ") for n in diagnose("check_kl_estimator", got, exp, output, {"estimator": "k3"}))
    assert diagnose("check_kl_estimator", got, exp, output, {"estimator": "k1"}) == []


def test_docs_table_is_the_catalogue():
    """docs/testing/mutants.md holds markdown_table() and the catalogue's size (rewrite it with
    ``python -m pgmath.testing.mutants docs/testing/mutants.md``)."""
    text = DOCS.read_text(encoding="utf-8")
    assert with_table(text) == text, "docs/testing/mutants.md is out of date; its table should be:\n" + markdown_table()
    rows = [line for line in text.splitlines() if re.match(r"^\|\s*`[a-z0-9_]+`\s*\|", line)]
    assert [r.split("`")[1] for r in rows] == [m.name for m in MUTANTS]
    assert f"all {len(MUTANTS)} are rejected" in text
    for m, row in zip(MUTANTS, rows):
        assert f"`{m.check}`" in row and m.bug in row, m.name


@pytest.mark.parametrize("name", ["ppo_masked_mean_nan_when_empty", "kl_k3_exp_then_divide"])
def test_some_bugs_need_the_edge_cases(name):
    """These two agree with the reference on every generated example; only an edge case (every
    entry masked; log-probabilities near −1000) exposes them — why the checks run both."""
    mutant = by_name(name)
    mutant.run_check(edge_cases=False)  # passes: the random search alone misses it
    with pytest.raises(AssertionError, match="edge case"):
        mutant.run_check(options=CheckOptions(max_examples=0))
