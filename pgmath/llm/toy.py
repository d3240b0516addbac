"""The verifiable toy task: output the digits of the prompt in sorted order.

A prompt is n digits d₁ … dₙ ∈ {0, …, D−1} followed by a separator; the answer is the same
digits sorted ascending followed by an end token. Token ids: digits 0 … D−1, ``SEP = D``,
``EOS = D + 1``, ``PAD = D + 2``. The response has at most n + 2 tokens and stops at the first
EOS.

The checker (the reward) gives partial credit so that a policy starting from chance gets a
learning signal, and full credit only for the exact answer:

    score = (#{i < n : responseᵢ = sorted(d)ᵢ}) / max(n, len)      len = response length before EOS
    success = (response == sorted(d) + [EOS])                     (score = 1 exactly then)

A uniform policy over the D + 3 tokens scores ≈ 1/(D+3) per position and succeeds with
probability ≈ (D+3)^−(n+1)
(near 0).

Checked by: ``tests/test_llm_train.py::test_sort_checker``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SortTask"]


@dataclass(frozen=True)
class SortTask:
    """Sort n digits drawn from {0, …, D−1}."""

    n_digits: int = 3
    n_values: int = 10

    @property
    def sep(self) -> int:
        return self.n_values

    @property
    def eos(self) -> int:
        return self.n_values + 1

    @property
    def pad(self) -> int:
        return self.n_values + 2

    @property
    def vocab(self) -> int:
        return self.n_values + 3

    @property
    def prompt_len(self) -> int:
        return self.n_digits + 1

    @property
    def max_new(self) -> int:
        return self.n_digits + 2

    @property
    def max_len(self) -> int:
        return self.prompt_len + self.max_new

    def prompts(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[n, n_digits + 1]`` random prompts (digits then SEP)."""
        d = torch.randint(0, self.n_values, (n, self.n_digits), generator=generator)
        sep = torch.full((n, 1), self.sep, dtype=torch.long)
        return torch.cat([d, sep], dim=1).to(device)

    def score(self, prompts: torch.Tensor, responses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check responses.

        Args:
          prompts: ``[B, n_digits + 1]``.
          responses: ``[B, max_new]`` generated tokens; everything after the first EOS is ignored
            (PAD there).
        Returns:
          ``(score [B] float, success [B] bool, length [B] long)`` where length counts the tokens
          before EOS.
        """
        n = self.n_digits
        target = prompts[:, :n].sort(dim=1).values
        is_eos = responses == self.eos
        has_eos = is_eos.any(1)
        first_eos = torch.where(has_eos, is_eos.float().argmax(1), torch.full_like(has_eos, responses.shape[1], dtype=torch.long))
        length = first_eos
        pos = torch.arange(responses.shape[1], device=responses.device)
        before = pos.unsqueeze(0) < length.unsqueeze(1)
        m = min(n, responses.shape[1])
        hit = (responses[:, :m] == target[:, :m]) & before[:, :m]
        score = hit.sum(1).float() / torch.clamp(length, min=n).float()
        success = hit.all(1) & (length == n) & has_eos
        return score, success, length
