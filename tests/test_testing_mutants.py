"""Every catalogued bug is rejected by its check (100 %), and the catalogue is documented.

The references pass the same checks (tests/test_testing_checks.py), so a rejection here is the
check's power, not a check that rejects everything. Runs are derandomized: the same examples every
time, so a rejection is never luck.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from pgmath.testing import checks
from pgmath.testing.mutants import MUTANTS, by_name, diagnose

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


def test_catalogue_is_large_unique_and_covers_the_issue():
    names = [m.name for m in MUTANTS]
    assert len(names) >= 20 and len(set(names)) == len(names)
    for bug, name in ISSUE_BUGS.items():
        assert by_name(name).name == name, bug
    conventions = {m.convention for m in MUTANTS if m.check == "gae"}
    assert {"pgmath", "sb3", "rlax", "torchrl"} <= conventions
    assert {m.check for m in MUTANTS} == {"gae", "returns", "ppo_loss", "kl", "group"}
    with pytest.raises(KeyError, match="no mutant named"):
        by_name("nope")


#: Rejected, but not named in the message's diagnosis: the all-masked edge case has its own message.
NOT_DIAGNOSED = {"ppo_masked_mean_nan_when_empty"}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_mutant_is_rejected_and_named(mutant):
    with pytest.raises(AssertionError) as info:
        mutant.run_check()
    msg = str(info.value)
    assert "expected" in msg
    assert "your function raised" not in msg  # rejected for its numbers, not for crashing
    if mutant.name in NOT_DIAGNOSED:
        return
    # the message names the known bug the output reproduces, and this mutant is among them
    assert "Your output reproduces the known bug(s)" in msg
    assert mutant.name in msg.split("Your output reproduces")[1]


def test_diagnose_skips_mutants_that_agree_with_the_reference():
    import numpy as np
    import torch

    from pgmath.testing import make_rollout

    case = make_rollout([[1.0]], [[0.5], [0.25]], [[3.0]], [[0]], gamma=0.9, lam=0.8)
    exp = np.array([[1.0 + 0.9 * 0.25 - 0.5]])
    assert diagnose("gae", case, exp, exp) == []  # the correct answer matches no bug
    assert torch.is_tensor(case.rewards)


def test_docs_table_lists_every_mutant_with_its_check():
    text = DOCS.read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\|\s*`([a-z0-9_]+)`\s*\|", line)
        if m:
            rows[m.group(1)] = line
    assert set(rows) == {m.name for m in MUTANTS}
    for m in MUTANTS:
        assert f"`{m.check_name}`" in rows[m.name], m.name


def test_default_max_examples_is_bounded():
    assert 50 <= checks.DEFAULT_MAX_EXAMPLES <= 100


@pytest.mark.parametrize("name", ["ppo_masked_mean_nan_when_empty", "kl_k3_exp_then_divide"])
def test_some_bugs_need_the_edge_cases(name):
    """These two agree with the reference on every generated example; only an edge case (every
    entry masked; log-probabilities near −1000) exposes them — why the checks run both."""
    mutant = by_name(name)
    mutant.run_check(edge_cases=False)  # passes: the random search alone misses it
    with pytest.raises(AssertionError, match="edge case"):
        mutant.run_check(max_examples=0)
