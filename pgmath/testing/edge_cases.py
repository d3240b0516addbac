"""Hand-made edge cases every check runs after its property-based search.

Random search finds most bugs, but a few inputs matter too much to leave to chance: an episode
that ends at the first or the last step, one that ends at every step, a truncation whose
bootstrap value differs from the reset observation's, both flags at once, T = 1, γ and λ at 0
and 1; for losses, every quadrant of PPO's clip (ρ above / below the range, Â positive /
negative) and a batch whose every entry is masked; for KL estimators, identical policies and
extreme log-ratios; for group advantages, constant groups (zero standard deviation) and a large
common offset.

The numbers are fixed (seeded NumPy generator, two decimals) so a failing edge case reads the
same every time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from pgmath.rollouts import Rollout
from pgmath.testing.strategies import make_rollout

__all__ = [
    "GroupCase",
    "KLCase",
    "PPOCase",
    "group_edge_cases",
    "kl_edge_cases",
    "ppo_edge_cases",
    "rollout_edge_cases",
]

N, TERM, TRUNC, BOTH = 0, 1, 2, 3


class _LabelledRepr:
    """``Name('label', field=[…], …)``: a compact repr of a case's tensors (Hypothesis prints it)."""

    def __repr__(self) -> str:
        parts = [repr(self.label)] if self.label else []
        parts += [f"{f.name}={getattr(self, f.name).tolist()}" for f in fields(self) if f.name != "label"]
        return f"{type(self).__name__}({', '.join(parts)})"


def rollout_edge_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> list[Rollout]:
    """Named rollouts: episode ends at the first / last / every step, truncation bootstrap, …

    Every case has two environments; environment 0 carries the named pattern and environment 1
    a contrasting one, so batch handling is exercised too.
    """
    rng = np.random.default_rng(20240801)

    def case(label: str, kinds: list[list[int]], gamma: float = 0.9, lam: float = 0.8) -> Rollout:
        k = np.asarray(kinds, dtype=np.int64).T  # [T, B]
        T, B = k.shape
        r = np.round(rng.uniform(-2, 2, (T, B)), 2)
        vo = np.round(rng.uniform(-2, 2, (T + 1, B)), 2)
        fv = np.round(rng.uniform(3, 5, (T, B)), 2)  # final observations: clearly other values
        return make_rollout(
            r, vo, fv, k, gamma=gamma, lam=lam, first_episode_start=[True, False],
            dtype=dtype, device=device, label=label,
        )

    return [
        case("no episode end: bootstrap at the rollout end", [[N] * 4, [N, N, TERM, N]]),
        case("terminated at the first step", [[TERM, N, N, N], [N] * 4]),
        case("truncated at the first step", [[TRUNC, N, N, N], [N] * 4]),
        case("terminated at the last step", [[N, N, N, TERM], [N, TRUNC, N, N]]),
        case("truncated at the last step", [[N, N, N, TRUNC], [N, N, TERM, N]]),
        case("terminated at every step", [[TERM] * 4, [N] * 4]),
        case("truncated at every step", [[TRUNC] * 4, [TERM] * 4]),
        case("truncation bootstrap inside the rollout", [[N, N, TRUNC, N, N], [N, TRUNC, N, N, TERM]]),
        case("terminated and truncated at once", [[N, BOTH, N, N], [N, N, BOTH, N]]),
        case("a single step (T = 1)", [[TRUNC], [N]]),
        case("gamma = 1, lam = 1 (Monte-Carlo)", [[N, TRUNC, N, TERM, N], [TERM, N, N, N, N]], 1.0, 1.0),
        case("lam = 0 (one-step TD error)", [[N, TRUNC, N, TERM, N], [N] * 5], 0.9, 0.0),
        case("gamma = 0", [[N, TRUNC, N, N], [TERM, N, N, N]], 0.0, 0.7),
    ]


@dataclass(frozen=True, repr=False)
class PPOCase(_LabelledRepr):
    """Inputs of a PPO loss: ``[*S]`` log πθ, log π_old, Â and a bool mask."""

    log_probs: torch.Tensor
    old_log_probs: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    label: str = ""



def ppo_edge_cases(
    clip_eps: float, clip_eps_high: float | None, dual_clip: float | None,
    dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
) -> list[PPOCase]:
    """PPO inputs in every region of the clipped objective (and all-masked, checked separately)."""
    lo, hi = 1.0 - clip_eps, 1.0 + (clip_eps if clip_eps_high is None else clip_eps_high)
    far_hi, far_lo, inside = hi + 0.3, max(lo - 0.3, lo / 2), 1.0 + 0.25 * (hi - 1.0)
    old = [-1.2, -0.7, -2.0, -0.4, -1.0, -1.5, -0.9, -3.0]
    ratios = [far_hi, far_hi, far_lo, far_lo, inside, 1.0, far_hi, far_lo]
    advs = [1.5, -1.5, 1.5, -1.5, 0.7, -0.3, 0.0, -2.5]
    if dual_clip is not None:
        ratios[1] = dual_clip + 1.0  # ρ Â below c Â: the dual clip binds
    t = {"dtype": dtype, "device": device}

    def mk(label, rs, os, As, mask=None):
        o = torch.tensor(os, **t)
        lp = o + torch.log(torch.tensor(rs, **t))
        m = torch.ones(len(rs), dtype=torch.bool, device=device) if mask is None else torch.tensor(mask, device=device)
        return PPOCase(lp, o, torch.tensor(As, **t), m, label)

    return [
        mk("every clip region (ρ above/below/inside the range, Â > 0, < 0, = 0)", ratios, old, advs),
        mk("identical policies (ρ = 1)", [1.0] * 4, old[:4], advs[:4]),
        mk("a single entry whose clip binds", [far_hi], [-0.5], [2.0]),
        mk("masked entries with extreme ratios", [far_hi * 3, inside, far_lo / 3, 1.0], old[:4],
           [4.0, 1.0, -4.0, 2.0], [False, True, False, True]),
        PPOCase(
            torch.tensor([[-0.5, -1.0, -0.2], [-2.0, -0.1, -1.1]], **t),
            torch.tensor([[-0.9, -0.8, -0.2], [-1.0, -0.6, -1.3]], **t),
            torch.tensor([[1.0, -2.0, 0.5], [-1.0, 2.0, 1.0]], **t),
            torch.tensor([[True, True, False], [True, True, True]], device=device),
            "token grid [B, L] with padding",
        ),
    ]


def ppo_all_masked(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> PPOCase:
    """Every entry masked out (an all-padding micro-batch)."""
    t = {"dtype": dtype, "device": device}
    return PPOCase(
        torch.tensor([-0.3, -1.4, -0.8], **t), torch.tensor([-0.5, -1.0, -0.8], **t),
        torch.tensor([1.0, -1.0, 0.5], **t), torch.zeros(3, dtype=torch.bool, device=device),
        "every entry masked",
    )


@dataclass(frozen=True, repr=False)
class KLCase(_LabelledRepr):
    """Log-probabilities of samples under the policy and the reference, ``[*S]``."""

    log_probs: torch.Tensor
    ref_log_probs: torch.Tensor
    label: str = ""



def kl_edge_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> list[KLCase]:
    """Identical policies, extreme log-ratios of either sign, tiny log-ratios, a token grid."""
    t = {"dtype": dtype, "device": device}

    def mk(label, lp, ref):
        return KLCase(torch.tensor(lp, **t), torch.tensor(ref, **t), label)

    return [
        mk("identical policies (every estimate 0)", [-0.5, -2.0, -7.0], [-0.5, -2.0, -7.0]),
        mk("large log-ratios of either sign", [-0.01, -12.0, -0.5, -20.0], [-12.0, -0.01, -20.0, -0.5]),
        mk("tiny log-ratios", [-1.0, -1.0 + 1e-6, -3.0], [-1.0 + 1e-6, -1.0, -3.0 - 1e-7]),
        mk("tiny probabilities (log-probs near −1000)", [-1000.0, -998.5], [-1000.5, -1000.0]),
        KLCase(
            torch.tensor([[-0.1, -2.3], [-1.2, -0.7]], **t),
            torch.tensor([[-0.4, -1.9], [-0.2, -0.7]], **t),
            "token grid [B, L]",
        ),
    ]


@dataclass(frozen=True, repr=False)
class GroupCase(_LabelledRepr):
    """``[G, K]`` rewards, one row per prompt."""

    rewards: torch.Tensor
    label: str = ""



def group_edge_cases(dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> list[GroupCase]:
    """Constant groups (std = 0), binary rewards, two samples, mixed groups, large rewards, a large
    common offset (where a one-pass variance loses every digit)."""
    t = {"dtype": dtype, "device": device}

    def mk(label, r):
        return GroupCase(torch.tensor(r, **t), label)

    return [
        mk("a constant group of zeros (std = 0)", [[0.0, 0.0, 0.0, 0.0]]),
        mk("constant groups beside a varied one", [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.5, 0.5, 0.5]]),
        mk("binary rewards", [[1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]]),
        mk("two samples per group", [[0.0, 1.0], [3.0, -1.0], [2.0, 2.0]]),
        mk("large rewards", [[1000.0, -250.0, 10.0], [5e3, 5e3, 4e3]]),
        # a one-pass variance E[r²] − E[r]² cancels catastrophically here (r² ≈ 1e16)
        mk("a large common offset (1e8 + a small spread)",
           [[1e8, 1e8 + 16.5, 1e8 + 40.25, 1e8 + 8.75], [0.0, 1.0, 1.0, 0.0]]),
    ]
