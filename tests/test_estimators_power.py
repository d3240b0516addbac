"""Empirical power of the "unbiased" rows of ``pgmath verify`` (issue 14).

For every estimator with an "unbiased" row, on that row's own episodes at the DEFAULT verify
sample size (:func:`pgmath.estimators.verify.unbiased_row_samples`, the rows' generators), the
row's test (:func:`pgmath.stats.unbiasedness_test`, Hotelling T² against the exact ∇J at
α = :data:`pgmath.estimators.verify.ALPHA` = 10⁻³) must

* accept the estimator itself (p ≥ α), and
* reject its 5 %-biased variant ĝ' = 1.05 ĝ (the estimator with every weight Ψ scaled by 1.05,
  a wrong normalisation: E[ĝ'] = ∇J + 0.05 ∇J, a 5 % bias along ∇J) (p < α).

False-alarm rate: each acceptance tests a true hypothesis at α = 10⁻³; with the 19 unbiased
rows checked here, a fresh seed would fail at least one with probability ≤ 1.9 % (Bonferroni).
Detectable bias: every row's stated minimum detectable bias along ∇J
(:func:`pgmath.stats.min_detectable_bias`, power 0.9 at α) is ≤ 5 % at the default sizes, so a
fresh seed misses the 5 % variant of one row with probability ≤ 10 % (the variant's covariance
is 1.05² times larger, which is why its minimum detectable bias, not the plain one, is checked
to be ≤ 5 %). Measured with these seeds: every plain row's p ≥ 0.2, every variant's
p ≤ 1.3·10⁻⁴, the variants' minimum detectable bias 0.9–4.9 % (largest: REINFORCE on the
linear-feature corridor, 4.9 %, and on the random MDP, 4.7 %).
The seeds are the verify suite's fixed ones, so the test is deterministic.

The set-ups with the largest default samples (the short corridor: 240 000 episodes; its linear
features: 500 000) are marked ``slow`` (≈ 15 s and 30 s; CI runs them); the random-MDP set-ups
take ≈ 10 s together.
"""

from __future__ import annotations

import pytest

from pgmath.estimators.verify import ALPHA, POWER, SETUP_KEYS, unbiased_row_samples
from pgmath.stats import min_detectable_bias, unbiasedness_test
from pgmath.verification import VerifyContext

BIAS = 0.05
SLOW = {"corridor", "corridor_linear"}
#: The unbiased rows per set-up (so that a row silently dropped from the suite fails here).
EXPECTED_LABELS = {
    "corridor": {"reinforce", "reward_to_go", "baseline", "actor_critic", "td", "gae",
                 "gae_no_discount_weight"},
    "corridor_linear": {"reinforce", "gae"},
    "random": {"reinforce", "reward_to_go", "baseline", "actor_critic", "td", "gae",
               "baseline, b = V + e", "gae, λ = 1, V + e"},
    "random_g1": {"gae", "gae_no_discount_weight"},
}


def test_every_setup_is_covered():
    assert set(SETUP_KEYS) == set(EXPECTED_LABELS)


@pytest.mark.parametrize(
    "setup", [pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k for k in EXPECTED_LABELS]
)
def test_default_size_rejects_a_five_percent_bias_and_accepts_the_estimator(setup):
    exact, samples = unbiased_row_samples(VerifyContext(), setup)
    assert set(samples) == EXPECTED_LABELS[setup]
    failures = []
    for label, x in samples.items():  # over the unbiased rows of this set-up
        biased = (1 + BIAS) * x
        plain = unbiasedness_test(x, exact, alpha=ALPHA)
        variant = unbiasedness_test(biased, exact, alpha=ALPHA)
        mdb = min_detectable_bias(biased, exact, alpha=ALPHA, power=POWER)
        if not plain.passed:
            failures.append(f"{label}: the unbiased estimator rejected, p = {plain.p_value:.2g}")
        if variant.passed:
            failures.append(f"{label}: the 5 % biased variant accepted, p = {variant.p_value:.2g}")
        if mdb.along_gradient > BIAS:
            failures.append(f"{label}: minimum detectable bias {mdb.along_gradient:.1%} > 5 %")
        # the test's own estimate of the variant's bias covers the truth
        lo, hi = variant.relative_bias_ci
        if not lo <= BIAS <= hi:
            failures.append(f"{label}: relative-bias CI [{lo:.3f}, {hi:.3f}] misses {BIAS}")
    assert not failures, failures


def test_unbiased_row_samples_rejects_an_unknown_setup():
    with pytest.raises(ValueError, match="setup"):
        unbiased_row_samples(VerifyContext(), "nope")
