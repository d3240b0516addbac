"""check_policy_loss: accepts pgmath's own objectives at float32 and float64, rejects the spec's
wrong variants (tests/test_testing_mutants.py runs them all), accepts a clear refusal of constants
that require grad, and names the right cause of a mismatch (pgmath.testing.diagnosis). Also the
three harness bugs of issue 12 (the group check at eps = 0, the rlax PPO convention on the real
rlax, float32 numbers printed alike)."""

import functools

import pytest
import torch

from pgmath.llm import OBJECTIVES, POLICY_AGGREGATIONS, policy_loss
from pgmath.testing import check_group_advantages, check_policy_loss
from pgmath.testing.report import fmt_pair


def _kw(objective, aggregation):
    kw = {"objective": objective, "aggregation": aggregation}
    if aggregation == "seq-mean-token-sum-norm":
        kw["normalizer"] = 8.0
    return kw


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("aggregation", POLICY_AGGREGATIONS)
def test_reference_objectives_pass_in_float32_and_float64(objective, aggregation):
    kw = _kw(objective, aggregation)
    report = check_policy_loss(functools.partial(policy_loss, **kw), max_examples=10, **kw)
    assert report.examples == 20  # 10 at float64, 10 at float32


def test_float32_implementation_passes_a_float32_check():
    def f32(lp, old, adv, m):
        return policy_loss(lp.float(), old.float(), adv.float(), m, clip_eps_high=0.28)

    check_policy_loss(f32, clip_eps_high=0.28, dtype=torch.float32, max_examples=20)


def _message(fn, **kw) -> str:
    with pytest.raises(AssertionError) as info:
        check_policy_loss(fn, **kw)
    return str(info.value)


def test_grpo_length_normalisation_is_named_as_its_aggregation():
    """Not "mask ignored in the denominator": the loss is PPO with seq-mean-token-mean."""
    msg = _message(functools.partial(policy_loss, aggregation="seq-mean-token-mean"), max_examples=30)
    assert "Your output matches objective='ppo', aggregation='seq-mean-token-mean'" in msg
    assert "reproduces the known bug" not in msg


def test_cispo_is_named_as_cispo_not_as_a_missing_min():
    msg = _message(functools.partial(policy_loss, objective="cispo"), max_examples=30)
    assert "Your output matches objective='cispo'" in msg


def test_float32_arithmetic_is_named_as_round_off():
    def f32(lp, old, adv, m):
        return policy_loss(lp.float(), old.float(), adv.float(), m)[0].double()

    msg = _message(f32, dtype=torch.float64, max_examples=30)
    assert "float32 round-off: pass dtype=torch.float32" in msg
    first = msg.split("\n")[1]  # the two numbers are printed with enough digits to differ
    expected, got = first.split("expected ")[1].split(", got ")
    assert expected != got.split(" (diff")[0]


def test_hard_coded_dual_clip_is_caught_and_named():
    """The default check now has ratios far above the range with Â < 0 (issue 12)."""
    msg = _message(functools.partial(policy_loss, dual_clip=3.0), max_examples=0)
    assert "dual_clip=3.0" in msg


def test_swapped_arguments_are_named():
    msg = _message(lambda lp, old, adv, m: policy_loss(old, lp, adv, m), max_examples=30)
    assert "with log_probs and old_log_probs swapped" in msg


def test_a_clear_refusal_of_constants_that_require_grad_conforms():
    def guarded(lp, old, adv, m):
        if old.requires_grad or adv.requires_grad:
            raise ValueError("old_log_probs and advantages must be detached")
        return policy_loss(lp, old, adv, m)

    report = check_policy_loss(guarded, max_examples=10)
    assert report.notes and "refuses" in report.notes[0]


def test_gradient_into_a_constant_is_rejected():
    def leaky(lp, old, adv, m):
        loss, _ = policy_loss(lp, old, adv, m)
        return loss + 0.0 * old.sum() + 1e-3 * torch.where(m, adv, 0).sum()

    msg = _message(leaky, max_examples=10)
    assert "∂loss/∂advantages" in msg and "constant" in msg


def test_values_only_check_of_a_loss_without_graph():
    def numpy_like(lp, old, adv, m):
        return policy_loss(lp.detach(), old, adv, m)[0]

    check_policy_loss(numpy_like, gradients=False, max_examples=10)
    with pytest.raises(AssertionError):
        check_policy_loss(numpy_like, max_examples=10)  # its gradient is 0, the reference's is not


def test_all_masked_nan_is_rejected():
    def nan_when_empty(lp, old, adv, m):
        if not bool(m.any()):
            return (lp * 0).sum() / m.sum()
        return policy_loss(lp, old, adv, m)

    msg = _message(nan_when_empty, max_examples=0)
    assert "every token masked" in msg


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="objective"):
        check_policy_loss(policy_loss, objective="grpo")
    with pytest.raises(ValueError, match="dual_clip"):
        check_policy_loss(policy_loss, objective="gspo", dual_clip=3.0)


# --- the three harness bugs of issue 12 -----------------------------------------------------


def test_group_check_accepts_the_reference_at_eps_zero():
    from pgmath import llm

    check_group_advantages(functools.partial(llm.group_advantages, eps=0.0), eps=0.0, max_examples=20)


def test_rlax_convention_runs_the_real_rlax():
    rlax = pytest.importorskip("rlax")
    from pgmath.testing import check_ppo_loss

    check_ppo_loss(rlax.clipped_surrogate_pg_loss, convention="rlax", max_examples=10)


def test_numbers_that_differ_print_differently():
    assert fmt_pair(0.031557100001, 0.0315571).split(", got ")[0] != "expected 0.0315571"
    assert fmt_pair(1.0, 1.0) == "expected 1, got 1 (diff 0)"


# --- the older checks name the right cause too (issue 12) ------------------------------------


def _as_ppo_check(**kw):
    """A loss in check_ppo_loss's convention computing pgmath.llm.policy_loss with ``kw``."""

    def fn(lp, old, adv, *, clip_eps, mask=None):
        if lp.dim() == 1:
            lp, old, adv = lp[None], old[None], adv[None]
            mask = None if mask is None else mask[None]
        m = torch.ones_like(lp, dtype=torch.bool) if mask is None else mask
        return policy_loss(lp, old, adv, m, clip_eps=clip_eps, **kw)[0]

    return fn


def test_check_ppo_loss_names_a_grpo_length_normalisation_not_a_mask_bug():
    from pgmath.testing import check_ppo_loss

    with pytest.raises(AssertionError) as info:
        check_ppo_loss(_as_ppo_check(aggregation="seq-mean-token-mean"), max_examples=60)
    assert "matches objective='ppo', aggregation='seq-mean-token-mean'" in str(info.value)
    assert "ppo_mask_ignored_in_denominator" not in str(info.value)


def test_check_ppo_loss_names_cispo_not_a_missing_min():
    from pgmath.testing import check_ppo_loss

    with pytest.raises(AssertionError) as info:
        check_ppo_loss(_as_ppo_check(objective="cispo"), max_examples=60)
    assert "matches objective='cispo'" in str(info.value)
    assert "ppo_no_pessimistic_min" not in str(info.value)


def test_check_kl_estimator_names_swapped_arguments_not_a_sign_error():
    import pgmath
    from pgmath.testing import check_kl_estimator

    with pytest.raises(AssertionError) as info:
        check_kl_estimator(lambda lp, ref: pgmath.kl_estimate(ref, lp, "k3"), "k3", max_examples=30)
    assert "k3 with its two arguments swapped" in str(info.value)
    assert "kl_k3_sign_error" not in str(info.value)
