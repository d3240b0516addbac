"""Fault-catching tests for ``pgmath/llm/aggregate.py`` (issue 14, mutation testing).

The weight of every token in every mode, with and without the global denominators, against a
plain Python loop over a mask with an empty row; the loss, its gradient (= the weights), NaN in
padding, the empty micro-batch and every refused argument combination.
"""

from __future__ import annotations

import pytest
import torch

from pgmath.llm.aggregate import AGGREGATION_MODES, aggregate_token_loss, aggregation_weights

F64 = torch.float64
MASK = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 1]], dtype=torch.bool)


def _weights_by_hand(mask, mode, normalizer=None, num_sequences=None):
    rows = mask.tolist()
    lengths = [sum(r) for r in rows]
    n_tokens = sum(lengths)
    n_seq = sum(1 for n in lengths if n > 0)
    out = []
    for r, n in zip(rows, lengths):  # over responses
        row = []
        for keep in r:  # over tokens
            if not keep:
                row.append(0.0)
            elif mode == "token-mean":
                row.append(1.0 / (normalizer or n_tokens))
            elif mode == "seq-mean-token-sum":
                row.append(1.0 / (num_sequences or n_seq))
            elif mode == "seq-mean-token-mean":
                row.append(1.0 / ((num_sequences or n_seq) * n))
            else:
                row.append(1.0 / ((num_sequences or n_seq) * normalizer))
        out.append(row)
    return torch.tensor(out, dtype=F64)


CASES = [
    ("token-mean", {}), ("token-mean", {"normalizer": 20.0}),
    ("seq-mean-token-sum", {}), ("seq-mean-token-sum", {"num_sequences": 7.0}),
    ("seq-mean-token-mean", {}), ("seq-mean-token-mean", {"num_sequences": 7.0}),
    ("seq-mean-token-sum-norm", {"normalizer": 5.0}),
    ("seq-mean-token-sum-norm", {"normalizer": 5.0, "num_sequences": 7.0}),
]


@pytest.mark.parametrize(("mode", "kw"), CASES)
def test_weights_loss_and_gradient_by_hand(mode, kw):
    want = _weights_by_hand(MASK, mode, **kw)
    w = aggregation_weights(MASK, mode, dtype=F64, **kw)
    assert w.dtype == F64
    assert torch.allclose(w, want, atol=1e-15, rtol=0), (w, want)
    assert aggregation_weights(MASK, mode, **kw).dtype == torch.float32  # the default dtype
    g = torch.Generator().manual_seed(0)
    loss = torch.randn(4, 4, generator=g, dtype=F64)
    loss[~MASK] = float("nan")  # padding is never read
    loss.requires_grad_()
    out = aggregate_token_loss(loss, MASK, mode, **kw)
    assert out.dtype == F64 and out.dim() == 0
    expected = sum(want[b, t].item() * loss[b, t].item()
                   for b in range(4) for t in range(4) if MASK[b, t])
    assert out.item() == pytest.approx(expected, abs=1e-14)
    out.backward()
    assert torch.allclose(loss.grad, want, atol=1e-15, rtol=0)


def test_default_mode_is_token_mean_and_half_precision_accumulates_in_float32():
    loss = torch.ones(64, 1100, dtype=torch.float16)  # 70 400 tokens: a float16 count overflows
    mask = torch.ones(64, 1100, dtype=torch.bool)
    out = aggregate_token_loss(loss, mask)
    assert out.dtype == torch.float16 and out.item() == 1.0
    w = aggregation_weights(mask, "token-mean", dtype=torch.float16)
    assert w.dtype == torch.float16 and (w > 0).all()


def test_empty_micro_batch_with_explicit_denominators_is_a_connected_zero():
    loss = torch.randn(2, 3, dtype=F64, requires_grad=True)
    empty = torch.zeros(2, 3, dtype=torch.bool)
    for mode, kw in (("token-mean", {"normalizer": 4.0}), ("seq-mean-token-mean", {"num_sequences": 2.0})):
        out = aggregate_token_loss(loss, empty, mode, **kw)
        assert out.item() == 0.0 and out.requires_grad
        out.backward()
        assert torch.equal(loss.grad, torch.zeros(2, 3, dtype=F64))
        loss.grad = None
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean"):  # default denominators
        with pytest.raises(ValueError, match="no tokens"):
            aggregate_token_loss(loss, empty, mode)


@pytest.mark.parametrize(("args", "kw", "match"), [
    ((MASK, "token-mean"), {"num_sequences": 2.0}, "num_sequences"),
    ((MASK, "seq-mean-token-sum"), {"normalizer": 2.0}, "normalizer"),
    ((MASK, "seq-mean-token-mean"), {"normalizer": 2.0}, "normalizer"),
    ((MASK, "seq-mean-token-sum-norm"), {}, "normalizer"),
    ((MASK, "seq-mean-token-sum-norm"), {"normalizer": 0.0}, r"^normalizer must be > 0"),
    ((MASK, "token-mean"), {"normalizer": -1.0}, r"^normalizer must be > 0"),
    ((MASK.to(torch.int64) * 2, "token-mean"), {}, r"^mask"),
    ((MASK, "seq-mean-token-sum"), {"num_sequences": 0.0}, r"^num_sequences must be > 0"),
    ((MASK, "sum"), {}, "mode"),
    ((MASK.tolist(), "token-mean"), {}, "mask"),
    ((MASK[0], "token-mean"), {}, "mask"),
    ((torch.zeros(0, 3, dtype=torch.bool), "token-mean"), {}, "mask"),
])
def test_weights_refuse_bad_arguments(args, kw, match):
    with pytest.raises(ValueError, match=match):
        aggregation_weights(*args, **kw)


def test_loss_refuses_bad_arguments():
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="loss"):
        aggregate_token_loss(torch.zeros(3, dtype=F64), mask[0])
    with pytest.raises(ValueError, match=r"^loss must"):
        aggregate_token_loss(torch.zeros(2, 3, dtype=torch.long), mask)
    with pytest.raises(ValueError, match="loss"):
        aggregate_token_loss(torch.zeros(0, 3, dtype=F64), torch.zeros(0, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^mask"):
        aggregate_token_loss(torch.zeros(2, 3, dtype=F64), torch.ones(2, 4, dtype=torch.bool))
    bad = torch.zeros(2, 3, dtype=F64)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="1 non-finite"):
        aggregate_token_loss(bad, mask)
    assert set(AGGREGATION_MODES) == {"token-mean", "seq-mean-token-sum", "seq-mean-token-mean",
                                      "seq-mean-token-sum-norm"}
