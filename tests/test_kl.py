"""KL estimators (pgmath.kl): a hand-picked case that no spec property states.

Unbiasedness of k1/k3 by exact enumeration, k3 ≥ 0, k2 second order, the exact categorical KL
against torch.distributions with zero-mass outcomes, gradients and bad inputs are properties of
the specs kl_k1, kl_k2, kl_k3 and kl_categorical (pgmath.specs.kl), run by tests/test_specs.py.
"""

from __future__ import annotations

import torch

from pgmath import kl_categorical, kl_estimate

F64 = torch.float64


def test_k2_is_biased_far_from_reference():
    zp = torch.tensor([3.0, 0.0], dtype=F64)
    zq = torch.tensor([0.0, 3.0], dtype=F64)
    logp, logq = zp.log_softmax(-1), zq.log_softmax(-1)
    e_k2 = (logp.exp() * kl_estimate(logp, logq, "k2")).sum()
    assert abs(float(e_k2 - kl_categorical(zp, zq))) > 0.1
