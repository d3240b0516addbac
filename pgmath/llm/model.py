"""A small causal transformer in plain torch (no download, no ``transformers`` needed).

Pre-LayerNorm decoder-only transformer (Radford et al., 2019, GPT-2 layout): token and learned
position embeddings, ``n_layers`` blocks of causal multi-head self-attention and an MLP, a final
LayerNorm and an untied linear head. Outputs follow the causal-LM convention of
:func:`pgmath.llm.token_log_probs`: ``logits[:, t]`` predicts ``tokens[:, t+1]``. With
``value_head=True`` a scalar head reads the same hidden states; ``values[:, t]`` (after the shift
in :meth:`TinyCausalLM.forward`) is the value of the prefix ``tokens[:, <t]``, the state in which
token t is generated — aligned with the log-probs.

Checked by: ``tests/test_llm_train.py::test_model_is_causal_and_values_are_aligned`` (changing
a later token never changes an earlier position's output) and the smoke runs of the trainers.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyCausalLM"]


class TinyCausalLM(nn.Module):
    """Decoder-only transformer over a small vocabulary.

    Args:
      vocab: vocabulary size V.
      max_len: the longest sequence (prompt + response) it will see.
      d_model, n_layers, n_heads, d_ff: sizes.
      value_head: add a scalar value head (for PPO).
    """

    def __init__(
        self,
        vocab: int,
        max_len: int,
        *,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        d_ff: int | None = None,
        value_head: bool = False,
    ) -> None:
        super().__init__()
        self.vocab, self.max_len = vocab, max_len
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=d_ff or 4 * d_model,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.value = nn.Linear(d_model, 1) if value_head else None
        causal = torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, d]`` final hidden states (position t sees tokens[:, ≤t] only)."""
        T = tokens.shape[1]
        if T > self.max_len:
            raise ValueError(f"tokens has length {T} > max_len = {self.max_len}")
        pos = torch.arange(T, device=tokens.device)
        x = self.tok(tokens) + self.pos(pos)
        x = self.blocks(x, mask=self.causal[:T, :T], is_causal=True)
        return self.norm(x)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits [B, T, V], values [B, T] or None)``.

        ``logits[:, t]`` predicts ``tokens[:, t+1]``; ``values[:, t]`` = V(tokens[:, <t]) read from
        the hidden state at t − 1 (``values[:, 0] = 0``), aligned like the token log-probs.
        """
        h = self.hidden(tokens)
        logits = self.head(h)
        if self.value is None:
            return logits, None
        v = self.value(h).squeeze(-1)
        values = torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], dim=1)
        return logits, values
