"""pgmath.llm.logprobs: the alignment and the temperature of token log-probabilities and
entropies, by hand; the harness checks on pgmath's functions and on TRL / verl / Hugging Face
through their adapters (each skipped when the library is absent)."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from pgmath.llm.logprobs import (
    token_entropy,
    token_entropy_reference,
    token_log_probs,
    token_log_probs_reference,
)
from pgmath.specs import SPECS
from pgmath.testing import check_token_entropy, check_token_log_probs

F64 = torch.float64


def test_position_t_reads_the_logits_one_position_earlier():
    """logits[:, t−1] predicts tokens[:, t] (the Hugging Face causal-LM convention)."""
    logits = torch.tensor([[[0.0, math.log(3.0)],     # predicts tokens[1]: p(1) = 3/4
                            [math.log(4.0), 0.0],     # predicts tokens[2]: p(0) = 4/5
                            [5.0, -5.0]]], dtype=F64)  # predicts a token after the end: unused
    tokens = torch.tensor([[1, 1, 0]])
    mask = torch.tensor([[False, True, True]])
    want = torch.tensor([[0.0, math.log(3 / 4), math.log(4 / 5)]], dtype=F64)
    for fn in (token_log_probs, token_log_probs_reference):
        torch.testing.assert_close(fn(logits, tokens, mask), want, rtol=0, atol=1e-15)
    # the off-by-one reading (logits[:, t] for tokens[:, t], the spec's wrong variant) differs here
    wrong = SPECS["token_log_probs"].variant("logprobs_unshifted").fn(logits, tokens, mask)
    assert not torch.allclose(wrong, want)


# --- temperature ----------------------------------------------------------------------------


def test_temperature_gives_the_log_probs_of_the_sampling_distribution():
    """At T = 0.6 the log-probs are those of softmax(z / T), the distribution the sampler drew
    from: the raw log-probs (huggingface/trl#4159) and log_softmax(z) / T (google/tunix#1387)
    are both off, and the sampler's frequencies agree with exp(log-prob)."""
    z = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]], dtype=F64)
    tokens = torch.tensor([[0, 0]])
    T = 0.6
    want = math.log(math.exp(2 / T) / (math.exp(2 / T) + math.exp(1 / T) + 1.0))
    assert float(token_log_probs(z, tokens, temperature=T)[0, 1]) == pytest.approx(want, abs=1e-15)
    raw = float(SPECS["token_log_probs"].variant("logprobs_ignore_temperature").fn(z, tokens, temperature=T)[0, 1])
    div = float(SPECS["token_log_probs"].variant("logprobs_log_softmax_divided").fn(z, tokens, temperature=T)[0, 1])
    assert abs(raw - want) > 0.1 and abs(div - want) > 0.1
    # the sampler: 200 000 draws from softmax(z / T), seeded; a 5-sigma band (false alarm ≈ 6e-7)
    g = torch.Generator().manual_seed(0)
    draws = torch.multinomial(torch.softmax(z[0, 0] / T, -1), 200_000, replacement=True, generator=g)
    freq = float((draws == 0).double().mean())
    p = math.exp(want)
    sigma = math.sqrt(p * (1 - p) / 200_000)
    assert abs(freq - p) < 5 * sigma
    assert abs(freq - math.exp(raw)) > 5 * sigma and abs(freq - math.exp(div)) > 5 * sigma  # power: both rejected


def test_entropy_at_the_sampling_temperature():
    """The entropy bonus of a policy sampled at T is H(softmax(z / T)), not H(softmax(z))
    (OpenRLHF/OpenRLHF#1319)."""
    z = torch.tensor([[[1.3, 0.0], [0.0, 0.0]]], dtype=F64)
    T = 0.5
    q = 1 / (1 + math.exp(-1.3 / T))
    want = -(q * math.log(q) + (1 - q) * math.log(1 - q))
    assert float(token_entropy(z, temperature=T)[0, 1]) == pytest.approx(want, abs=1e-15)
    at_one = SPECS["token_entropy"].variant("entropy_at_unit_temperature").fn(z, temperature=T)
    assert abs(float(at_one[0, 1]) - want) > 0.1


@pytest.mark.parametrize("bad", [0.0, -0.5, math.nan, math.inf, "hot", None])
def test_bad_temperature_is_refused_by_name(bad):
    z, tokens = torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        token_log_probs(z, tokens, temperature=bad)
    with pytest.raises(ValueError, match="temperature"):
        token_entropy(z, temperature=bad)


# --- the harness checks -----------------------------------------------------------------------


@pytest.mark.parametrize("fn", [token_log_probs, token_log_probs_reference,
                                functools.partial(token_log_probs, chunk_size=1)],
                         ids=["fast", "reference", "chunk_1"])
def test_check_token_log_probs_accepts_pgmath(fn):
    report = check_token_log_probs(fn, max_examples=30)
    assert report.examples == 60 and len(report.edge_cases) == 14  # two temperatures


@pytest.mark.parametrize("fn", [token_entropy, token_entropy_reference], ids=["fast", "reference"])
def test_check_token_entropy_accepts_pgmath(fn):
    check_token_entropy(fn, max_examples=30)


def test_check_names_the_temperature_bug_it_finds():
    bug = SPECS["token_log_probs"].variant("logprobs_ignore_temperature").fn
    check_token_log_probs(bug, temperature=1.0, max_examples=20)  # at T = 1 the bug is invisible
    with pytest.raises(AssertionError) as info:
        check_token_log_probs(bug, temperature=0.6, max_examples=20)
    msg = str(info.value)
    assert "expected" in msg and "logprobs_ignore_temperature" in msg.split("Your output reproduces")[1]


def test_check_refuses_a_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        check_token_log_probs(token_log_probs, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        check_token_entropy(token_entropy, temperature=())


def test_trl_selective_log_softmax_passes():
    pytest.importorskip("trl")
    from pgmath.testing.adapters.logprobs import trl_selective_log_softmax

    check_token_log_probs(trl_selective_log_softmax, max_examples=30)


def test_trl_entropy_from_logits_is_nan_on_a_masked_vocabulary():
    """TRL's entropy_from_logits computes −Σ exp(log p) · log p, so a −inf logit (a masked or
    padded vocabulary entry) gives 0 · (−inf) = NaN; it agrees everywhere else."""
    pytest.importorskip("trl")
    from pgmath.testing.adapters.logprobs import trl_entropy_from_logits

    check_token_entropy(trl_entropy_from_logits, max_examples=30, edge_cases=False)
    with pytest.raises(AssertionError, match="−inf logits"):
        check_token_entropy(trl_entropy_from_logits, max_examples=0)


def _verl():
    try:
        import verl.utils.torch_functional  # noqa: F401
    except Exception as exc:  # verl's package __init__ imports ray (an extra dependency)
        pytest.skip(f"verl.utils.torch_functional cannot be imported: {exc}")


def test_verl_logprobs_and_entropy_pass():
    _verl()
    from pgmath.testing.adapters.logprobs import verl_entropy_from_logits, verl_logprobs_from_logits

    check_token_log_probs(verl_logprobs_from_logits, max_examples=30)
    # verl's entropy is logsumexp(z) − Σ softmax(z) · z: 0 · (−inf) = NaN on a masked vocabulary
    check_token_entropy(verl_entropy_from_logits, max_examples=30, edge_cases=False)
    with pytest.raises(AssertionError, match="−inf logits"):
        check_token_entropy(verl_entropy_from_logits, max_examples=0)


def test_hf_causal_lm_loss_passes():
    pytest.importorskip("transformers")
    from pgmath.testing.adapters.logprobs import hf_loss_log_probs

    check_token_log_probs(hf_loss_log_probs, max_examples=15)
