"""pgmath.llm.logprobs: the alignment of token log-probabilities, by hand."""

from __future__ import annotations

import math

import torch

from pgmath.llm.logprobs import token_log_probs, token_log_probs_reference
from pgmath.specs import SPECS

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
