"""Extreme but finite inputs of the formula specs (``spec.extra["extremes"]``).

Each factory returns float64 :class:`~pgmath.specs.spec.Call` s in the spec's signature: a large
batch (≥ 10⁵ masked entries, beyond float16's 65 504), extreme values (logits ±1e4, log-ratios
±100, rewards 1e30) and near-constant groups. ``tests/test_dtypes.py`` runs each in float64,
float32, float16 and bfloat16 (where the inputs are representable) against the float64 reference,
and checks the gradient is finite wherever the float64 gradient is. Not a family module (no
``FAMILY``): the spec modules import their factories from here.
"""

from __future__ import annotations

import torch

from pgmath.specs.spec import Call

__all__ = [
    "aggregate_token_loss",
    "categorical_entropy",
    "group_advantages",
    "kl_categorical",
    "kl_loss",
    "masked_mean",
    "normalize_advantages",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "rloo_advantages",
    "token_policy_loss",
    "value_loss",
]

F64 = torch.float64
N = 100_010  # entries of a large batch; 10 of them masked out → 10⁵ selected


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _large_mask() -> torch.Tensor:
    m = torch.ones(N, dtype=torch.bool)
    m[::10_001] = False
    return m


def _nan_outside(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.where(m, x, torch.full_like(x, float("nan")))


def masked_mean() -> tuple[Call, ...]:
    m = _large_mask()
    x = 1.0 + torch.rand(N, generator=_gen(1), dtype=F64)
    return (Call((_nan_outside(x, m), m)),)


def policy_gradient_loss() -> tuple[Call, ...]:
    m = _large_mask()
    lp = -torch.rand(N, generator=_gen(2), dtype=F64) * 3
    adv = torch.randn(N, generator=_gen(3), dtype=F64) + 2.0
    return (Call((lp, _nan_outside(adv, m), m)),)


def ppo_clip_loss() -> tuple[Call, ...]:
    m = _large_mask()
    g = _gen(4)
    lp = -torch.rand(N, generator=g, dtype=F64)
    old = lp + 0.3 * torch.randn(N, generator=g, dtype=F64)
    adv = torch.randn(N, generator=g, dtype=F64) + 1.0
    large = Call((lp, old, adv), {"mask": m})
    # log-ratios ±100 where the clip binds (Â > 0 above, Â < 0 below), and ±12 (float16 exp
    # overflows at 11)
    lr = torch.tensor([100.0, -100.0, 12.0, -12.0, 0.05, -0.05], dtype=F64)
    a = torch.tensor([1.0, -1.0, 2.0, -2.0, 1.0, -1.0], dtype=F64)
    extreme = Call((lr - 1.0, torch.full_like(lr, -1.0), a))
    dual = Call((lr - 1.0, torch.full_like(lr, -1.0), -a.abs()), {"dual_clip": 3.0})
    return large, extreme, dual


def value_loss() -> tuple[Call, ...]:
    m = _large_mask()
    g = _gen(5)
    v = torch.randn(N, generator=g, dtype=F64) * 3
    r = v + torch.randn(N, generator=g, dtype=F64)
    return (Call((v, _nan_outside(r, m)), {"mask": m}),
            Call((v, r), {"old_values": v + 0.5, "clip_eps": 0.2, "mask": m}))


def normalize_advantages() -> tuple[Call, ...]:
    m = _large_mask()
    adv = torch.randn(N, generator=_gen(6), dtype=F64) * 5 + 3
    near_const = torch.tensor([1000.1] * 6 + [1000.2], dtype=F64)
    huge = torch.tensor([1e30, -1e30, 3e30, 2e30], dtype=F64)
    return Call((adv,), {"mask": m}), Call((near_const,)), Call((huge,))


def categorical_entropy() -> tuple[Call, ...]:
    z = torch.tensor([[1e4, -1e4, 0.0, 1.0], [3.0, 2.0, 1e4, -1e4]], dtype=F64)
    mask = torch.tensor([[True, True, False, True], [True, True, False, False]])
    big = torch.randn(2, 3, 5, generator=_gen(7), dtype=F64) * 30  # [*B, A] with two batch axes
    return Call((z, mask)), Call((z,)), Call((big,))


def kl_categorical() -> tuple[Call, ...]:
    zp = torch.tensor([[0.0, float("-inf"), 1.0, 1e4], [2.0, 1.0, float("-inf"), 0.0]], dtype=F64)
    zq = torch.tensor([[0.0, 1.0, 2.0, 1e4 - 3.0], [-1e4, 1.0, 0.5, 0.0]], dtype=F64)
    big_p = torch.randn(2, 3, 6, generator=_gen(8), dtype=F64) * 10
    big_q = torch.randn(2, 3, 6, generator=_gen(9), dtype=F64) * 10
    return Call((zp, zq)), Call((big_p, big_q))


def _token_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[64, 1600] (> 65 504 tokens): lengths vary, NaN in the padding."""
    g = _gen(seed)
    lengths = torch.randint(800, 1601, (64,), generator=g)
    mask = torch.arange(1600).unsqueeze(0) < lengths.unsqueeze(1)
    return mask, g  # type: ignore[return-value]


def aggregate_token_loss() -> tuple[Call, ...]:
    mask, g = _token_batch(10)
    loss = _nan_outside(torch.rand(64, 1600, generator=g, dtype=F64) + 0.5, mask)
    return tuple(Call((loss, mask, mode)) for mode in
                 ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean"))


def kl_loss() -> tuple[Call, ...]:
    mask, g = _token_batch(11)
    lp = -torch.rand(64, 1600, generator=g, dtype=F64) * 2
    ref = lp + 0.2 * torch.randn(64, 1600, generator=g, dtype=F64)
    return tuple(Call((lp, ref, mask), {"estimator": e}) for e in ("k1", "k3"))


def token_policy_loss() -> tuple[Call, ...]:
    mask, g = _token_batch(12)
    lp = -torch.rand(64, 1600, generator=g, dtype=F64) * 2
    old = lp + 0.1 * torch.randn(64, 1600, generator=g, dtype=F64)
    adv = torch.randn(64, generator=g, dtype=F64)
    return Call((lp, old, adv, mask)), Call((lp, old, adv, mask), {"mode": "seq-mean-token-mean"})


def group_advantages() -> tuple[Call, ...]:
    near_const = torch.tensor([[1000.1] * 6 + [1000.2], [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.5]],
                              dtype=F64)
    huge = torch.tensor([[1e30, -1e30, 3e30, 2e30]], dtype=F64)
    large = torch.randn(12_500, 8, generator=_gen(13), dtype=F64)
    return Call((near_const,)), Call((huge,)), Call((large,))


def rloo_advantages() -> tuple[Call, ...]:
    return group_advantages()
