"""OpenRLHF: ``openrlhf.models.loss.PolicyLoss`` and ``openrlhf.models.utils.compute_approx_kl``.

Bridges (declared):

* ``openrlhf/models/__init__.py`` imports the actor, which imports ``flash_attn`` (a CUDA build)
  and ``peft``; the two modules checked here need neither. The adapter therefore executes the
  installed files ``openrlhf/models/utils.py`` and ``openrlhf/models/loss.py`` as they are, as the
  submodules of a package object that does not run that ``__init__`` (:func:`models`). Nothing is
  re-typed; only the package import is bypassed.
* ``PolicyLoss(clip_eps_low, clip_eps_high, dual_clip, token_level_loss, policy_loss_type)``
  is constructed with the check's settings and called ``loss(log_probs, old_log_probs,
  advantages, action_mask)``; its first output is the loss. ``token_level_loss=True`` is
  "token-mean", False "seq-mean-token-mean"; ``policy_loss_type="gspo"`` forces the latter.
  OpenRLHF's GSPO reads one advantage per sequence (GRPO-style advantages broadcast over the
  tokens), so that entry runs with ``per_sequence_advantages=True``.
* the KL loss of OpenRLHF's actor is ``masked_mean(compute_approx_kl(log_probs, ref, kl_estimator),
  action_mask)``: the adapter is that composition of OpenRLHF's two functions.

OpenRLHF multiplies by the mask, so padding must be finite: the checks run with ``nan_pads=False``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from functools import cache
from pathlib import Path

from pgmath.testing.adapters import Entry

DISTRIBUTION = "openrlhf"
_PKG = "pgmath_openrlhf_models"  # the package object the two files are executed in


@cache
def models() -> types.SimpleNamespace:
    """OpenRLHF's ``models/utils.py`` and ``models/loss.py``, executed from the installed package
    without its ``__init__`` (``ImportError`` when OpenRLHF is not installed)."""
    spec = importlib.util.find_spec("openrlhf")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("openrlhf is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    pkg = types.ModuleType(_PKG)
    pkg.__path__ = [str(folder)]
    sys.modules.setdefault(_PKG, pkg)
    loaded = {}
    for name in ("utils", "loss"):
        full = f"{_PKG}.{name}"
        if full not in sys.modules:
            sub = importlib.util.spec_from_file_location(full, folder / f"{name}.py")
            mod = importlib.util.module_from_spec(sub)
            sys.modules[full] = mod
            sub.loader.exec_module(mod)
        loaded[name] = sys.modules[full]
    return types.SimpleNamespace(**loaded)


def policy_loss_adapter(token_level_loss: bool, loss_type: str = "ppo", dual_clip: float | None = None,
                        clip_low: float = 0.2, clip_high: float = 0.28):
    loss = models().loss.PolicyLoss(clip_eps_low=clip_low, clip_eps_high=clip_high, dual_clip=dual_clip,
                                    token_level_loss=token_level_loss, policy_loss_type=loss_type)

    def fn(log_probs, old_log_probs, advantages, mask):
        return loss(log_probs, old_log_probs, advantages, action_mask=mask)[0]

    fn.__name__ = fn.__qualname__ = f"openrlhf_PolicyLoss_{loss_type}_{'token' if token_level_loss else 'seq'}"
    return fn


def kl_adapter(estimator: str):
    utils = models().utils

    def fn(log_probs, ref_log_probs, mask):
        return utils.masked_mean(utils.compute_approx_kl(log_probs, ref_log_probs, kl_estimator=estimator), mask)

    fn.__name__ = fn.__qualname__ = f"openrlhf_compute_approx_kl_{estimator}"
    return fn


def entries() -> list[Entry]:
    models()  # ImportError when OpenRLHF is missing
    clip = {"clip_eps": 0.2, "clip_eps_high": 0.28, "nan_pads": False}
    b = "PolicyLoss(0.2, 0.28, …) called (log_probs, old_log_probs, advantages, action_mask); package __init__ bypassed"
    out = [
        Entry("openrlhf.models.loss.PolicyLoss", "check_policy_loss",
              {"objective": "ppo", "aggregation": "token-mean", **clip}, policy_loss_adapter(True), b),
        Entry("openrlhf.models.loss.PolicyLoss", "check_policy_loss",
              {"objective": "ppo", "aggregation": "seq-mean-token-mean", **clip}, policy_loss_adapter(False),
              b + "; token_level_loss=False"),
        Entry("openrlhf.models.loss.PolicyLoss", "check_policy_loss",
              {"objective": "ppo", "aggregation": "token-mean", "dual_clip": 3.0, **clip},
              policy_loss_adapter(True, dual_clip=3.0), b + "; dual_clip=3"),
        Entry("openrlhf.models.loss.PolicyLoss", "check_policy_loss",
              {"objective": "gspo", "aggregation": "seq-mean-token-mean", "per_sequence_advantages": True, **clip},
              policy_loss_adapter(False, "gspo"), b + "; policy_loss_type='gspo' (per-sequence advantages)"),
    ]
    for est in ("k1", "k2", "k3"):
        out.append(Entry("openrlhf.models.utils.compute_approx_kl + masked_mean", "check_kl_penalty",
                         {"estimator": est, "aggregation": "token-mean", "nan_pads": False}, kl_adapter(est),
                         f"masked_mean(compute_approx_kl(log_probs, ref, kl_estimator={est!r}), mask), as the actor"))
    return out
