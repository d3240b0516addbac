"""pgmath.llm.chunked: the chunked log-prob / entropy engine and the hidden-state path.

Exactness against the reference loops and the gradients against autograd through the full logits
are spec properties (tests/test_specs.py); here: every chunk size gives the same numbers, the
float32/bf16 paths, non-contiguous logits, memory (no tensor of more than chunk · V logits is
created, the logits' gradient aside), bad chunk sizes, a Hugging Face model scored from its hidden
states, and CUDA when one is present.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pgmath.llm import (
    token_entropy,
    token_entropy_reference,
    token_log_probs,
    token_log_probs_from_hidden,
    token_log_probs_reference,
)
from pgmath.llm.chunked import (
    HIDDEN_BUFFER_BYTES,
    HIDDEN_BUFFER_FRACTION,
    HIDDEN_MAX_TILE_ROWS,
    HIDDEN_MIN_TILE_COLS,
    hidden_plan,
    rows_per_chunk,
)

F64 = torch.float64
CUDA = torch.cuda.is_available()


def _case(B=3, L=9, V=13, dtype=F64, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(B, L, V, dtype=F64, generator=g)).to(dtype)
    tokens = torch.randint(0, V, (B, L), generator=g)
    mask = torch.rand(B, L, generator=g) < 0.7
    mask[:, 0] = False
    return logits, tokens, mask


@pytest.mark.parametrize("chunk", [None, 1, 2, 5, 1000])
@pytest.mark.parametrize("T", [1.0, 0.6, 1.7])
def test_every_chunk_size_equals_the_reference_loop_in_float64(chunk, T):
    logits, tokens, mask = _case()
    lp = token_log_probs(logits, tokens, mask, temperature=T, chunk_size=chunk)
    h = token_entropy(logits, mask, temperature=T, chunk_size=chunk)
    assert (lp - token_log_probs_reference(logits, tokens, mask, temperature=T)).abs().max() < 1e-13
    assert (h - token_entropy_reference(logits, mask, temperature=T)).abs().max() < 1e-13


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_gradcheck_log_probs_and_entropy_chunked(chunk):
    logits, tokens, mask = _case(B=2, L=5, V=4)
    z = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: token_log_probs(x, tokens, mask, temperature=0.6, chunk_size=chunk), (z,))
    assert torch.autograd.gradcheck(lambda x: token_entropy(x, mask, temperature=0.6, chunk_size=chunk), (z,))
    # the sum of both (one backward pass through two custom functions)
    assert torch.autograd.gradcheck(
        lambda x: token_log_probs(x, tokens, mask, chunk_size=chunk) + 0.3 * token_entropy(x, mask, chunk_size=chunk),
        (z,))


def test_gradcheck_from_hidden_chunked():
    g = torch.Generator().manual_seed(1)
    B, L, d, V = 2, 5, 3, 6
    h = torch.randn(B, L, d, dtype=F64, generator=g, requires_grad=True)
    w = torch.randn(V, d, dtype=F64, generator=g, requires_grad=True)
    b = torch.randn(V, dtype=F64, generator=g, requires_grad=True)
    tokens = torch.randint(0, V, (B, L), generator=g)
    mask = torch.tensor([[0, 1, 1, 0, 1], [0, 0, 1, 1, 1]], dtype=torch.bool)

    def f(h, w, b):
        lp, ent = token_log_probs_from_hidden(h, w, tokens, mask, bias=b, temperature=0.7, chunk_size=2,
                                              return_entropy=True)
        return lp, ent

    assert torch.autograd.gradcheck(f, (h, w, b))


@pytest.mark.parametrize("chunk", [None, 1, 2, 7])
@pytest.mark.parametrize("T", [1.0, 0.6])
@pytest.mark.parametrize("with_bias", [False, True])
def test_from_hidden_log_prob_gradient_equals_autograd_through_the_full_logits(chunk, T, with_bias):
    """The log-prob-only backward pass (−g p / T as sign(g) · exp(z / T − lse + log |g / T|), the
    one-hot term outside the tiles): weights g of both signs and 0, one tile row (chunk None) and
    several (chunk 1, 2, 7: ∂/∂weight summed over tile rows), against autograd in float64."""
    g = torch.Generator().manual_seed(11)
    B, L, d, V = 3, 8, 5, 13
    h = torch.randn(B, L, d, dtype=F64, generator=g)
    w = torch.randn(V, d, dtype=F64, generator=g)
    b = torch.randn(V, dtype=F64, generator=g) if with_bias else None
    tokens = torch.randint(0, V, (B, L), generator=g)
    mask = torch.rand(B, L, generator=g) < 0.8
    mask[:, 0] = False
    weights = torch.randn(B, L, dtype=F64, generator=g)
    weights[0, 2:4] = 0.0
    leaves = [x.clone().requires_grad_(True) for x in (h, w, b) if x is not None]
    lp = token_log_probs_from_hidden(leaves[0], leaves[1], tokens, mask, bias=leaves[2] if with_bias else None,
                                     temperature=T, chunk_size=chunk)
    got = torch.autograd.grad((lp * weights).sum(), leaves)
    ref = [x.clone().requires_grad_(True) for x in (h, w, b) if x is not None]
    logits = torch.nn.functional.linear(ref[0], ref[1], ref[2] if with_bias else None)
    want_lp = token_log_probs_reference(logits, tokens, mask, temperature=T)
    want = torch.autograd.grad((want_lp * weights).sum(), ref)
    torch.testing.assert_close(lp.detach(), want_lp.detach(), rtol=0, atol=1e-13)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-12)
    if chunk is not None:
        assert hidden_plan(int(mask.sum()), V, chunk, 8)[1] < int(mask.sum())  # several tile rows


def test_hidden_plan_bounds_the_buffers():
    """chunk_size: no buffer of more than chunk · V logits; None: at most HIDDEN_BUFFER_BYTES and
    HIDDEN_BUFFER_FRACTION of the logits (never below one row); one tile row up to
    HIDDEN_MAX_TILE_ROWS scored tokens."""
    for n, V, chunk in [(252, 512, 8), (10, 7, 1), (5000, 100, 3)]:
        fwd, rows, cols = hidden_plan(n, V, chunk, 4)
        assert fwd <= chunk and rows * cols <= chunk * V
    for n, V, size in [(8192, 32_000, 2), (8192, 32_000, 4), (100, 50, 8), (65_536, 128_000, 2), (3, 10**6, 2)]:
        fwd, rows, cols = hidden_plan(n, V, None, size)
        per = size + (4 if size < 4 else 0)
        cap = max(V * per, min(HIDDEN_BUFFER_BYTES, HIDDEN_BUFFER_FRACTION * n * V * size))
        assert 1 <= fwd <= n and fwd * V * per <= cap
        assert rows == min(n, HIDDEN_MAX_TILE_ROWS) and 1 <= cols <= V
        assert rows * cols * per <= max(cap / 2, rows * HIDDEN_MIN_TILE_COLS * per)
    assert hidden_plan(8192, 32_000, None, 2)[0] == 455  # bf16 at the benchmark size: 455 rows per product


def test_float32_chunked_gradient_equals_autograd_through_the_full_log_softmax():
    logits, tokens, mask = _case(B=4, L=33, V=1000, dtype=torch.float32, seed=2)
    w = torch.randn(mask.shape, generator=torch.Generator().manual_seed(3))
    z1 = logits.clone().requires_grad_(True)
    (token_log_probs(z1, tokens, mask, temperature=0.6, chunk_size=7) * w).sum().backward()
    z2 = logits.clone().requires_grad_(True)
    full = torch.log_softmax(z2[:, :-1] / 0.6, -1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    (torch.where(mask[:, 1:], full, 0.0) * w[:, 1:]).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-5, atol=1e-7)


def test_bf16_logits_are_upcast_chunk_by_chunk():
    """bf16 logits: the result (asked in float32) equals float64 on the same rounded logits to
    float32 precision, the precision a bf16 log-softmax would lose (about 2⁻⁸ relative)."""
    logits, tokens, mask = _case(B=2, L=17, V=500, dtype=torch.bfloat16, seed=4)
    exact = token_log_probs_reference(logits.double(), tokens, mask)
    got = token_log_probs(logits, tokens, mask, dtype=torch.float32, chunk_size=3)
    assert got.dtype == torch.float32
    assert (got.double() - exact).abs().max() < 1e-5
    h = token_entropy(logits, mask, dtype=torch.float32)
    assert (h.double() - token_entropy_reference(logits.double(), mask)).abs().max() < 1e-5
    # the bf16 log-softmax (TRL's bf16 path) is off by far more
    bf = torch.log_softmax(logits[:, :-1], -1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
    assert (torch.where(mask[:, 1:], bf.double(), 0.0) - exact[:, 1:]).abs().max() > 1e-3


@pytest.mark.parametrize(("T", "with_bias", "chunk"), [(1.0, False, 4), (0.7, True, None), (1.3, False, 3)])
def test_bf16_from_hidden_matches_autograd_through_bf16_logits(T, with_bias, chunk):
    """bf16 weights: the values equal token_log_probs of the bf16 logits (the products round to
    bf16 as autograd's do), the gradients (signed weights g) agree to bf16 precision."""
    g = torch.Generator().manual_seed(5)
    B, L, d, V = 2, 9, 16, 300
    h = torch.randn(B, L, d, generator=g).bfloat16().requires_grad_(True)
    w = (torch.randn(V, d, generator=g) / 4).bfloat16().requires_grad_(True)
    b = torch.randn(V, generator=g).bfloat16().requires_grad_(True) if with_bias else None
    tokens = torch.randint(0, V, (B, L), generator=g)
    weights = torch.randn(B, L, generator=g)
    lp = token_log_probs_from_hidden(h, w, tokens, bias=b, temperature=T, chunk_size=chunk, dtype=torch.float32)
    (lp * weights).sum().backward()
    h2, w2 = h.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    b2 = b.detach().clone().requires_grad_(True) if with_bias else None
    lp2 = token_log_probs(torch.nn.functional.linear(h2, w2, b2), tokens, temperature=T, dtype=torch.float32)
    (lp2 * weights).sum().backward()
    torch.testing.assert_close(lp, lp2, rtol=0, atol=1e-5)
    for x, y in [(h, h2), (w, w2)] + ([(b, b2)] if with_bias else []):
        scale = float(y.grad.float().abs().max())
        torch.testing.assert_close(x.grad.float(), y.grad.float(), rtol=0, atol=2e-2 * scale)


def test_non_contiguous_logits_are_read_without_a_full_copy():
    g = torch.Generator().manual_seed(6)
    big = torch.randn(3, 12, 7, dtype=F64, generator=g)
    logits = big[:, 2:-1]  # HF's logits[:, -k:]-style slice: no [B·L, V] view exists
    assert not logits.is_contiguous()
    tokens = torch.randint(0, 7, (3, 9), generator=g)
    want = token_log_probs_reference(logits, tokens)
    z = logits.clone().requires_grad_(True)
    torch.testing.assert_close(token_log_probs(logits, tokens, chunk_size=4), want, rtol=0, atol=1e-13)
    nc = big.clone().requires_grad_(True)
    token_log_probs(nc[:, 2:-1], tokens, chunk_size=4).sum().backward()
    token_log_probs(z, tokens).sum().backward()
    torch.testing.assert_close(nc.grad[:, 2:-1], z.grad, rtol=0, atol=1e-13)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor (in elements) any ATen op allocates (views of, and in-place
    results on, the op's inputs are not allocations)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.utils._pytree import tree_leaves

        seen = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("fn", ["log_probs", "entropy"])
def test_no_tensor_larger_than_a_chunk_is_created(fn):
    """Forward: nothing of more than chunk · V elements; backward: only the logits' gradient
    itself (B·L·V) is larger. A full log-softmax (what the previous path took, after copying
    the n scored rows) fails the same bound."""
    B, L, V, chunk = 4, 64, 512, 8
    logits, tokens, mask = _case(B=B, L=L, V=V, dtype=torch.float32)
    mask[:, 1:] = True
    z = logits.clone().requires_grad_(True)
    with _LargestTensor() as fwd:
        out = token_log_probs(z, tokens, mask, chunk_size=chunk) if fn == "log_probs" else \
            token_entropy(z, mask, chunk_size=chunk)
    assert fwd.largest <= chunk * V
    with _LargestTensor() as bwd:
        out.sum().backward()
    assert bwd.largest == B * L * V  # the gradient of the logits, nothing else that large
    with _LargestTensor() as full:
        torch.log_softmax(logits[:, :-1], -1)
    assert full.largest > chunk * V  # the bound can fail


def test_from_hidden_never_creates_the_logits():
    B, L, d, V, chunk = 4, 64, 32, 512, 8
    g = torch.Generator().manual_seed(7)
    h = torch.randn(B, L, d, generator=g, requires_grad=True)
    w = torch.randn(V, d, generator=g, requires_grad=True)
    tokens = torch.randint(0, V, (B, L), generator=g)
    with _LargestTensor() as mode:
        lp, ent = token_log_probs_from_hidden(h, w, tokens, chunk_size=chunk, return_entropy=True)
        (lp.sum() + ent.sum()).backward()
    assert mode.largest <= max(chunk * V, V * d, B * L * d)
    assert mode.largest < B * L * V


def test_default_chunk_is_a_64_mib_float32_buffer():
    assert rows_per_chunk(32_000, None) == (1 << 24) // 32_000 == 524
    assert rows_per_chunk(10**8, None) == 1
    assert rows_per_chunk(32_000, 5) == 5


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_bad_chunk_size_is_refused_by_name(bad):
    logits, tokens, mask = _case()
    for call in (lambda: token_log_probs(logits, tokens, mask, chunk_size=bad),
                 lambda: token_entropy(logits, mask, chunk_size=bad),
                 lambda: token_log_probs_from_hidden(logits, torch.zeros(5, 13, dtype=F64), tokens % 5, mask,
                                                     chunk_size=bad)):
        with pytest.raises(ValueError, match="chunk_size"):
            call()


def test_devices_must_match():
    h = torch.zeros(2, 3, 4, dtype=F64)
    w = torch.zeros(5, 4, dtype=F64, device="meta")
    with pytest.raises(ValueError, match="weight"):
        token_log_probs_from_hidden(h, w, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens"):
        token_log_probs(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long, device="meta"))


def test_entropy_of_a_masked_vocabulary_is_finite():
    """−inf logits (a masked vocabulary, top-k): 0 · log 0 = 0 in the value and the gradient."""
    z = torch.tensor([[[0.0, -math.inf, 1.0], [2.0, 2.0, -math.inf]]], dtype=F64, requires_grad=True)
    h = token_entropy(z, temperature=0.5)
    q = 1 / (1 + math.exp(-2.0))
    assert float(h.detach()[0, 1]) == pytest.approx(-(q * math.log(q) + (1 - q) * math.log(1 - q)), abs=1e-14)
    h.sum().backward()
    assert bool(torch.isfinite(z.grad).all()) and float(z.grad[0, 0, 1]) == 0.0


# --- Hugging Face: a causal LM scored from its hidden states ----------------------------------


def test_hf_causal_lm_scored_from_hidden_states_equals_its_logits():
    transformers = pytest.importorskip("transformers")
    from pgmath.testing.adapters.logprobs import hf_causal_lm_token_log_probs

    cfg = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                  attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
    torch.manual_seed(0)  # HF initialises from the global generator
    model = transformers.GPT2LMHeadModel(cfg).eval().double()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (3, 10), generator=g)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[:, 4:] = True
    lp, ent = hf_causal_lm_token_log_probs(model, ids, mask, temperature=0.7, chunk_size=3, return_entropy=True)
    (lp.sum() + ent.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits = model(ids).logits
    lp2 = token_log_probs(logits, ids, mask, temperature=0.7)
    ent2 = token_entropy(logits, mask, temperature=0.7)
    (lp2.sum() + ent2.sum()).backward()
    torch.testing.assert_close(lp, lp2, rtol=0, atol=1e-12)
    torch.testing.assert_close(ent, ent2, rtol=0, atol=1e-12)
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-10, atol=1e-12, msg=n)


# --- CUDA ---------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device; none is available")
def test_cuda_equals_cpu_and_peak_memory_is_a_fraction_of_the_logits():
    logits, tokens, mask = _case(B=4, L=9, V=17)
    for fn in (lambda z, m: token_log_probs(z, tokens.to(z.device), m, temperature=0.6, chunk_size=3),
               lambda z, m: token_entropy(z, m, temperature=0.6, chunk_size=3)):
        torch.testing.assert_close(fn(logits.cuda(), mask.cuda()).cpu(), fn(logits, mask), rtol=0, atol=1e-12)
    B, L, V = 8, 1025, 32_000
    g = torch.Generator(device="cuda").manual_seed(0)
    z = torch.randn(B, L, V, device="cuda", generator=g)
    tok = torch.randint(0, V, (B, L), device="cuda", generator=g)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.no_grad():
        token_log_probs(z, tok)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base <= 0.25 * z.numel() * z.element_size()


@pytest.mark.parametrize("runs", [1, 3, 40])
def test_copy_rows_into_copies_each_contiguous_run(runs):
    """The run-by-run copy (few runs) and the gathered copy (more than MAX_COPY_RUNS) both equal
    ``flat[rows]``; a run boundary off by one would shift rows."""
    from pgmath.llm.chunked import MAX_COPY_RUNS, copy_rows_into

    g = torch.Generator().manual_seed(runs)
    x = torch.randn(4, 30, 7, generator=g, dtype=F64)
    flat = x.view(-1, 7)
    starts = torch.randperm(120 // 3, generator=g)[:runs].sort().values * 3
    rows = torch.cat([torch.arange(int(s), int(s) + 2) for s in starts])
    assert (len(rows.diff().ne(1).nonzero()) + 1 < MAX_COPY_RUNS) == (runs < MAX_COPY_RUNS)
    out = torch.full((rows.numel(), 7), float("nan"), dtype=F64)
    torch.testing.assert_close(copy_rows_into(out, x, flat, rows), flat[rows], rtol=0, atol=0)
    torch.testing.assert_close(out, flat[rows], rtol=0, atol=0)
