"""token_log_probs on a Hugging Face causal LM's output, unchanged (optional extra ``[llm]``).

The model is built from a config (no download). Hugging Face computes its own causal-LM loss
from ``labels=input_ids`` by shifting inside the model (logits[:, :-1] against labels[:, 1:],
−100 ignored); our per-token log-probs, averaged over the same tokens, must give exactly that
loss — an independent check that the alignment conventions agree.
"""

from __future__ import annotations

import pytest
import torch

from pgmath.llm import aggregate_token_loss, token_log_probs

transformers = pytest.importorskip("transformers")


def _tiny_gpt2(vocab: int = 50) -> torch.nn.Module:
    cfg = transformers.GPT2Config(
        vocab_size=vocab, n_positions=32, n_embd=16, n_layer=1, n_head=2, attn_pdrop=0.0,
        embd_pdrop=0.0, resid_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    torch.manual_seed(0)  # HF initialises from the global generator
    return transformers.GPT2LMHeadModel(cfg).eval().double()


def test_token_log_probs_on_hf_gpt2_matches_hf_loss():
    model = _tiny_gpt2()
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 50, (3, 10), generator=g)
    mask = torch.zeros(3, 10, dtype=torch.bool)  # response tokens: after a 4-token prompt
    mask[:, 4:] = True
    mask[1, 8:] = False  # a shorter response (right padding)
    labels = torch.where(mask, input_ids, torch.full_like(input_ids, -100))
    with torch.no_grad():
        out = model(input_ids, labels=labels)
    lp = token_log_probs(out.logits, input_ids, mask)  # the HF logits, unchanged
    ours = aggregate_token_loss(-lp, mask, "token-mean")
    # HF's loss upcasts the logits to float32 (ForCausalLMLoss), hence 1e-6, not 1e-12
    assert float(ours) == pytest.approx(float(out.loss), rel=1e-6)
    # and per token, against HF's logits read by hand at position t − 1
    for b, t in [(0, 4), (1, 7), (2, 9)]:
        expected = torch.log_softmax(out.logits[b, t - 1], -1)[input_ids[b, t]]
        assert float(lp[b, t]) == pytest.approx(float(expected), abs=1e-12)
    # the unshifted read does not reproduce HF's loss
    wrong = torch.log_softmax(out.logits, -1).gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)
    assert abs(float(aggregate_token_loss(-wrong, mask, "token-mean")) - float(out.loss)) > 1e-3


def test_token_log_probs_on_hf_with_left_padding():
    """Left-padded batch (prompt pads first), attention mask and position ids as HF generation
    uses them: the padded row's response log-probs equal those of the same row unpadded."""
    model = _tiny_gpt2()
    g = torch.Generator().manual_seed(1)
    row = torch.randint(0, 50, (1, 7), generator=g)
    pad = 3
    ids = torch.cat([torch.zeros(1, pad, dtype=torch.long), row], 1)
    attn = torch.cat([torch.zeros(1, pad, dtype=torch.long), torch.ones(1, 7, dtype=torch.long)], 1)
    pos = (attn.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        padded = model(ids, attention_mask=attn, position_ids=pos).logits
        plain = model(row).logits
    m_pad = torch.zeros(1, 10, dtype=torch.bool)
    m_pad[:, pad + 3 :] = True
    m_plain = torch.zeros(1, 7, dtype=torch.bool)
    m_plain[:, 3:] = True
    a = token_log_probs(padded, ids, m_pad)[:, pad:]
    b = token_log_probs(plain, row, m_plain)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
