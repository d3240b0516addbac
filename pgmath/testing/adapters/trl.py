"""TRL: the loss of ``trl.GRPOTrainer`` (``_compute_loss``), every ``loss_type``.

TRL has no free function for its GRPO loss: it is the trainer method ``_compute_loss(model,
inputs)``, which first runs the model to get the log-probabilities. Bridge (declared): the adapter
calls the real, unmodified ``GRPOTrainer._compute_loss`` on a *trainer shell* — an instance made
without ``__init__`` whose attributes are the ones that method reads (``loss_type``,
``epsilon_low``/``epsilon_high``, ``importance_sampling_level``, ``beta = 0``, no vLLM, no entropy
mask or bonus, one process, evaluation mode: no gradient-accumulation scaling) and whose
``_get_per_token_logps_and_entropies`` returns the check's ``log_probs`` (the model forward is
the one thing replaced). ``inputs`` carries ``old_per_token_logps``, ``advantages`` (the check's
``[B, L]`` tensor; TRL accepts ``[B]`` or ``[B, L]``), ``completion_mask`` and, for the losses
normalised by it, ``num_items_in_batch`` = the number of response tokens.

Loss types and the reference each is checked against (the mapping is TRL's documentation):
``"grpo"`` → PPO, "seq-mean-token-mean"; ``"bnpo"`` and ``"dapo"`` → PPO, "token-mean";
``"dr_grpo"`` → PPO, "seq-mean-token-sum-norm" with C = ``max_completion_length``;
``"cispo"`` → CISPO with TRL's one-sided clip min(ρ, ε_high) (``clip_eps=0.9``: the lower bound
0.1 is below every ratio the check draws); ``importance_sampling_level="sequence"`` with
``"grpo"`` → GSPO (per-sequence advantages, TRL's GRPO advantages are per sequence).
TRL multiplies by the mask, so the checks run with ``nan_pads=False``.
"""

from __future__ import annotations

import collections
import types
from typing import Any

import torch

from pgmath.testing.adapters import Entry

DISTRIBUTION = "trl"
_FN = "trl.GRPOTrainer._compute_loss"
MAX_COMPLETION_LENGTH = 8.0


class _Accelerator:
    """One process: gather and reduce are the identity."""

    num_processes = 1
    sync_gradients = True

    @staticmethod
    def gather(x: Any) -> Any:
        return x

    gather_for_metrics = gather

    @staticmethod
    def reduce(x: Any, reduction: str = "sum") -> Any:
        return x


def trainer_shell(loss_type: str, *, epsilon: float = 0.2, epsilon_high: float = 0.28,
                  importance_sampling_level: str = "token") -> Any:
    """A ``GRPOTrainer`` instance made without ``__init__``, with what ``_compute_loss`` reads."""
    from trl import GRPOTrainer

    shell = object.__new__(GRPOTrainer)
    shell.__dict__.update(
        loss_type=loss_type, epsilon_low=epsilon, epsilon_high=epsilon_high,
        importance_sampling_level=importance_sampling_level, beta=0.0, top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, use_vllm=False, vllm_importance_sampling_correction=False,
        aux_loss_enabled=False, _entropy_bonus_enabled=False, use_adaptive_entropy=False,
        max_completion_length=MAX_COMPLETION_LENGTH, current_gradient_accumulation_steps=1,
        accelerator=_Accelerator(), model=types.SimpleNamespace(training=False),
        _metrics={"train": collections.defaultdict(list), "eval": collections.defaultdict(list)},
        args=types.SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
    )
    return shell


def loss_adapter(loss_type: str, **kw: Any):
    shell = trainer_shell(loss_type, **kw)

    def fn(log_probs, old_log_probs, advantages, mask):
        m = mask.to(torch.int64)
        # the one replaced step: the model forward returns the check's log-probabilities
        shell._get_per_token_logps_and_entropies = lambda *a, **k: (log_probs, torch.zeros_like(log_probs), None)
        B = log_probs.shape[0]
        inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.int64), "prompt_mask": torch.ones(B, 1, dtype=torch.int64),
                  "completion_ids": torch.zeros_like(m), "completion_mask": m,
                  "old_per_token_logps": old_log_probs, "advantages": advantages,
                  "num_items_in_batch": m.sum().to(log_probs.dtype)}
        return shell._compute_loss(None, inputs)

    fn.__name__ = fn.__qualname__ = f"trl_grpo_loss_{loss_type}_{kw.get('importance_sampling_level', 'token')}"
    return fn


def entries() -> list[Entry]:
    import trl  # noqa: F401  (missing library → ImportError)

    clip = {"clip_eps": 0.2, "clip_eps_high": 0.28, "nan_pads": False}
    shell = "real GRPOTrainer._compute_loss on a trainer shell (eval mode, one process, beta=0)"
    return [
        Entry(_FN, "check_policy_loss", {"objective": "ppo", "aggregation": "seq-mean-token-mean", **clip},
              loss_adapter("grpo"), shell + "; loss_type='grpo'"),
        Entry(_FN, "check_policy_loss", {"objective": "ppo", "aggregation": "token-mean", **clip},
              loss_adapter("bnpo"), shell + "; loss_type='bnpo'"),
        Entry(_FN, "check_policy_loss", {"objective": "ppo", "aggregation": "token-mean", **clip},
              loss_adapter("dapo"), shell + "; loss_type='dapo', num_items_in_batch = response tokens"),
        Entry(_FN, "check_policy_loss", {"objective": "ppo", "aggregation": "seq-mean-token-sum-norm",
                                         "normalizer": MAX_COMPLETION_LENGTH, **clip},
              loss_adapter("dr_grpo"), shell + f"; loss_type='dr_grpo', max_completion_length={MAX_COMPLETION_LENGTH:g}"),
        Entry(_FN, "check_policy_loss", {"objective": "cispo", "aggregation": "token-mean", "clip_eps": 0.9,
                                         "clip_eps_high": 4.0, "nan_pads": False},
              loss_adapter("cispo", epsilon_high=5.0), shell + "; loss_type='cispo', epsilon_high=5 (ratio ≤ 5)"),
        Entry(_FN, "check_policy_loss", {"objective": "gspo", "aggregation": "seq-mean-token-mean",
                                         "per_sequence_advantages": True, **clip},
              loss_adapter("grpo", importance_sampling_level="sequence"),
              shell + "; loss_type='grpo', importance_sampling_level='sequence' (GSPO)"),
    ]
