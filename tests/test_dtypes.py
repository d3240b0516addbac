"""The dtype and extremes layer over every formula spec (``pgmath.specs.SPECS``).

For every spec with an input generator:

* **every dtype**: generated inputs, cast to float32 / float16 / bfloat16, through the spec's
  public function → within a dtype-scaled tolerance of the float64 reference evaluated on the same
  (rounded) inputs: |got − want| ≤ C · ε(dtype) · max(1, |want|, |inputs|), with ε the dtype's
  machine epsilon and C = ``spec.extra["dtype_tolerance"]`` (default 64; recursions over T steps
  grow their round-off with T).

For every spec that declares ``extra["extremes"]`` (a factory of float64 :class:`Call` s: ≥ 10⁵
masked entries, logits ±1e4, log-ratios ±100, rewards 1e30, near-constant groups):

* in every dtype that can represent the call's inputs, the value is within the same tolerance of
  the float64 reference wherever that reference is representable in the dtype;
* the gradient of the (summed) output with respect to every float input is finite wherever the
  float64 gradient is finite.

A new spec gets the dtype check from its generator, and the extremes check by declaring them.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgmath.numerics import accumulation_dtype, masked_sum, stable_centre
from pgmath.specs import SPECS
from pgmath.specs.spec import Call

LOW = (torch.float32, torch.float16, torch.bfloat16)


def _map(obj, fn):
    """Apply ``fn`` to every float tensor inside args/kwargs (tuples, lists, dicts)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj) if obj.is_floating_point() else obj
    if isinstance(obj, tuple):
        return tuple(_map(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_map(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    return obj


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj] if obj.is_floating_point() else []
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    return []


def _cast(call: Call, dtype: torch.dtype) -> Call:
    return dataclasses.replace(
        call,
        args=_map(call.args, lambda t: t.detach().to(dtype)),
        kwargs={k: _map(v, lambda t: t.detach().to(dtype)) for k, v in call.kwargs.items()},
    )


def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def _scale(call: Call, want: list[torch.Tensor]) -> float:
    mags = [1.0]
    for t in _tensors(call.args) + _tensors(dict(call.kwargs)) + want:
        finite = t.detach()[torch.isfinite(t.detach())]
        if finite.numel():
            mags.append(float(finite.double().abs().max()))
    return max(mags)


def _compare(spec, call64: Call, dtype: torch.dtype, factor: float | None = None,
             want: list[torch.Tensor] | None = None) -> None:
    """Run the spec's function on ``call64`` cast to ``dtype``; compare with the float64
    reference on the float64 inputs (the tolerance covers the rounding of the inputs)."""
    low = _cast(call64, dtype)
    rounded = call64
    got = _tensors(low(spec.function))
    if want is None:
        want = _tensors(rounded(spec.reference))
    assert len(got) >= len(want), spec.name
    got = got[: len(want)]  # a function may return diagnostics its reference does not
    c = factor if factor is not None else spec.extra.get("dtype_tolerance", 64)
    tol = c * _eps(dtype) * _scale(rounded, want)
    info = torch.finfo(dtype)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (spec.name, g.shape, w.shape)
        w = w.detach().double()
        g = g.detach().double()
        representable = torch.isfinite(w) & (w.abs() <= info.max)
        err = (g - w).abs()[representable]
        if err.numel():
            worst = float(torch.nan_to_num(err, nan=math.inf).max())
            assert worst <= tol, (spec.name, str(dtype), worst, tol)


GENERATED = [s.name for s in SPECS.values() if s.inputs is not None]


def _has_float_tensor(call: Call) -> bool:
    return bool(_tensors(call.args) + _tensors(dict(call.kwargs)))


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("spec_name", GENERATED)
@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_generated_inputs_in_every_dtype(spec_name, dtype, data):
    spec = SPECS[spec_name]
    call = data.draw(spec.inputs())
    if not _has_float_tensor(call):
        return  # an MDP object or integer-only input: no float dtype to vary
    low_inputs = _tensors(_cast(call, dtype).args) + _tensors(dict(_cast(call, dtype).kwargs))
    if not all(bool(torch.isfinite(t).all()) for t in low_inputs if t.numel()):
        return  # the generated values do not fit this dtype
    _compare(spec, call, dtype)


EXTREME = [(s.name, i) for s in SPECS.values() for i, _ in enumerate(s.extra.get("extremes", lambda: ())())]


@functools.cache
def _extreme(spec_name: str, index: int) -> Call:
    return SPECS[spec_name].extra["extremes"]()[index]


@functools.cache
def _extreme_reference(spec_name: str, index: int) -> list[torch.Tensor]:
    """The float64 reference of an extreme call, computed once (loops over 10⁵ entries)."""
    spec = SPECS[spec_name]
    return [t.detach() for t in _tensors(_extreme(spec_name, index)(spec.reference))]


@pytest.mark.parametrize("dtype", (torch.float64, *LOW), ids=str)
@pytest.mark.parametrize(("spec_name", "index"), EXTREME, ids=[f"{n}-{i}" for n, i in EXTREME])
def test_extreme_inputs_value_in_every_dtype(spec_name, index, dtype):
    spec = SPECS[spec_name]
    call = _extreme(spec_name, index)
    low = _cast(call, dtype)
    for t64, t in zip(_tensors(call.args) + _tensors(dict(call.kwargs)),
                      _tensors(low.args) + _tensors(dict(low.kwargs))):
        if bool((torch.isfinite(t64) & ~torch.isfinite(t)).any()):
            pytest.skip(f"an input is not representable in {dtype}")
    _compare(spec, call, dtype, want=_extreme_reference(spec_name, index))


def _grads(fn, call: Call) -> list[torch.Tensor]:
    leaves = []

    def leaf(t):
        t = t.detach().clone().requires_grad_(True)
        leaves.append(t)
        return t

    live = Call(_map(call.args, leaf), {k: _map(v, leaf) for k, v in call.kwargs.items()})
    outs = [o for o in _tensors(live(fn)) if o.requires_grad]
    if not outs:
        return []
    total = sum(torch.where(torch.isfinite(o), o, torch.zeros_like(o)).double().sum() for o in outs)
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)]


@pytest.mark.parametrize("dtype", (torch.float64, *LOW), ids=str)
@pytest.mark.parametrize(("spec_name", "index"), EXTREME, ids=[f"{n}-{i}" for n, i in EXTREME])
def test_extreme_inputs_give_finite_gradients(spec_name, index, dtype):
    spec = SPECS[spec_name]
    call = _extreme(spec_name, index)
    low = _cast(call, dtype)
    for t64, t in zip(_tensors(call.args) + _tensors(dict(call.kwargs)),
                      _tensors(low.args) + _tensors(dict(low.kwargs))):
        if bool((torch.isfinite(t64) & ~torch.isfinite(t)).any()):
            pytest.skip(f"an input is not representable in {dtype}")
    # the float64 gradient: of the reference loop, or (10⁵ entries: a loop's autograd graph is
    # slow) of the function in float64, whose value test_extreme_inputs_value_in_every_dtype
    # checks against the reference
    big = max(t.numel() for t in _tensors(call.args) + _tensors(dict(call.kwargs))) > 10_000
    want = _grads(spec.function if big else spec.reference, call)
    got = _grads(spec.function, low)
    for g, w in zip(got, want):
        finite = torch.isfinite(w)
        assert bool(torch.isfinite(g)[finite].all()), (spec_name, str(dtype))


def test_every_masked_loss_spec_declares_extremes():
    """The formulas the audit found wrong in half precision all declare extreme inputs."""
    needed = {"masked_mean", "policy_gradient_loss", "ppo_clip_loss", "value_loss",
              "normalize_advantages", "categorical_entropy", "kl_categorical",
              "aggregate_token_loss", "kl_loss", "token_policy_loss", "group_advantages",
              "rloo_advantages"}
    missing = sorted(n for n in needed if "extremes" not in SPECS[n].extra)
    assert not missing, missing


# --- pgmath.numerics ------------------------------------------------------------------------


def test_numerics_accumulation_dtype():
    assert accumulation_dtype(torch.float16) == torch.float32
    assert accumulation_dtype(torch.bfloat16) == torch.float32
    assert accumulation_dtype(torch.float32) == torch.float32
    assert accumulation_dtype(torch.float64) == torch.float64


def test_numerics_masked_sum_does_not_overflow_in_float16_and_ignores_masked_nan():
    x = torch.ones(100_000, dtype=torch.float16)
    x[0] = float("nan")
    m = torch.ones(100_000, dtype=torch.bool)
    m[0] = False
    s = masked_sum(x, m)
    assert s.dtype == torch.float32 and float(s) == 99_999.0
    assert float(masked_sum(torch.ones(3))) == 3.0


def test_numerics_stable_centre_near_constant_float32_group():
    x = torch.tensor([[1000.1, 1000.1, 1000.1, 1000.2]], dtype=torch.float32)
    centred, std = stable_centre(x, 1)
    assert float(centred[0, 3]) > 0 > float(centred[0, 0])
    exact = x.double() - x.double().mean(1, keepdim=True)
    assert torch.allclose(centred.double(), exact, atol=1e-9)
    assert math.isclose(float(std), float(x.double().std()), rel_tol=1e-5)
    big = torch.tensor([[1e30, -1e30, 3e30]], dtype=torch.float32)
    _, s2 = stable_centre(big, 1)
    assert bool(torch.isfinite(s2).all()) and math.isclose(float(s2), float(big.double().std()), rel_tol=1e-5)


# --- the audit's failures, one test each (each failed before the fix) ---------------------


def test_aggregate_token_loss_float16_beyond_65504_tokens():
    from pgmath.llm import aggregate_token_loss, kl_loss

    loss = torch.full((64, 1100), 0.5, dtype=torch.float16, requires_grad=True)
    mask = torch.ones(64, 1100, dtype=torch.bool)
    out = aggregate_token_loss(loss, mask)
    assert out.dtype == torch.float16 and float(out.detach()) == 0.5
    out.backward()
    assert float(loss.grad.double().sum()) == pytest.approx(1.0, rel=1e-2)
    lp = torch.full((64, 1100), -1.0, dtype=torch.float16)
    assert float(kl_loss(lp, lp - 0.5, mask, estimator="k1")) == pytest.approx(0.5, rel=1e-3)


def test_token_policy_loss_float16_beyond_65504_tokens():
    from pgmath.llm import token_policy_loss

    lp = torch.full((64, 1100), -1.0, dtype=torch.float16, requires_grad=True)
    mask = torch.ones(64, 1100, dtype=torch.bool)
    loss, _ = token_policy_loss(lp, lp.detach(), torch.ones(64, dtype=torch.float16), mask)
    assert float(loss) == pytest.approx(-1.0, rel=1e-3)


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
def test_masked_losses_at_100000_entries_in_half_precision(dtype):
    from pgmath import normalize_advantages, policy_gradient_loss, ppo_clip_loss, value_loss

    g = torch.Generator().manual_seed(0)
    n = 100_000
    m = torch.ones(n, dtype=torch.bool)
    m[-10:] = False
    a = torch.full((n,), 2.0, dtype=dtype)
    assert float(ppo_clip_loss(a * 0, a * 0, a, mask=m)[0]) == -2.0
    assert float(value_loss(a, a * 0, mask=m)) == 2.0
    assert float(policy_gradient_loss(a, a, mask=m)) == -4.0
    adv = torch.randn(n, generator=g).to(dtype)
    out = normalize_advantages(adv, mask=m)
    assert bool(torch.isfinite(out).all())
    assert float(out[m].double().std()) == pytest.approx(1.0, rel=2e-2)


def test_kl_categorical_gradient_finite_with_minus_inf_logits():
    from pgmath import kl_categorical

    zp = torch.tensor([[0.0, float("-inf"), 1.0]], dtype=torch.float64, requires_grad=True)
    zq = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    kl_categorical(zp, zq).sum().backward()
    assert bool(torch.isfinite(zp.grad).all()) and bool(torch.isfinite(zq.grad).all())
    # against the gradient with the impossible outcome removed
    zp2 = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    p = torch.softmax(zp2, -1)
    q = torch.log_softmax(zq.detach(), -1)[:, [0, 2]]
    (p * (torch.log(p) - q)).sum().backward()
    assert torch.allclose(zp.grad[:, [0, 2]], zp2.grad)


def test_categorical_entropy_gradient_finite_with_mask():
    from pgmath import categorical_entropy

    z = torch.tensor([[0.3, -0.2, 5.0, 1.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False, False]])
    categorical_entropy(z, mask).sum().backward()
    assert bool(torch.isfinite(z.grad).all()) and float(z.grad[0, 2:].abs().sum()) == 0.0


@pytest.mark.parametrize(("dtype", "log_ratio"), [(torch.float16, 12.0), (torch.float32, 90.0),
                                                  (torch.float64, 800.0)])
def test_ppo_clip_loss_gradient_finite_where_exp_overflows(dtype, log_ratio):
    from pgmath import ppo_clip_loss

    lp = torch.tensor([log_ratio, 0.1, -log_ratio], dtype=dtype, requires_grad=True)
    adv = torch.tensor([1.0, 1.0, -1.0], dtype=dtype)
    loss, _ = ppo_clip_loss(lp, torch.zeros(3, dtype=dtype), adv)
    loss.backward()
    assert bool(torch.isfinite(lp.grad).all())
    # the clip binds on tokens 0 and 2: gradient 0 there; token 1: −ρÂ/3
    assert float(lp.grad[0]) == 0.0 and float(lp.grad[2]) == 0.0
    assert float(lp.grad[1]) == pytest.approx(-math.exp(0.1) / 3, rel=4 * _eps(dtype) + 1e-3)
    assert float(loss) == pytest.approx(-(1.2 + math.exp(0.1) - 0.8) / 3, rel=1e-2)


@pytest.mark.parametrize("fn_name", ["group_advantages", "rloo_advantages", "normalize_advantages"])
def test_near_constant_float32_group_best_response_positive(fn_name):
    from pgmath import normalize_advantages
    from pgmath.llm import group_advantages, rloo_advantages

    fn = {"group_advantages": group_advantages, "rloo_advantages": rloo_advantages,
          "normalize_advantages": lambda r: normalize_advantages(r.reshape(-1)).reshape(r.shape)}[fn_name]
    r = torch.tensor([[1000.1, 1000.1, 1000.1, 1000.2, 1000.1, 1000.1, 1000.1]], dtype=torch.float32)
    out = fn(r)
    best = int(r.argmax())
    assert float(out[0, best]) > 0
    assert bool((out[0, [i for i in range(7) if i != best]] < 0).all())


@pytest.mark.parametrize("spec_name", ["masked_mean", "aggregate_token_loss"])
def test_reference_loops_accumulate_bfloat16_in_float64(spec_name):
    """A bfloat16 running sum of 300 values near 1 is ≈ 3 % off; the reference is not."""
    g = torch.Generator().manual_seed(4)
    x = (1.0 + 0.01 * torch.rand(1, 300, generator=g, dtype=torch.float64)).to(torch.bfloat16)
    mask = torch.ones(1, 300, dtype=torch.bool)
    ref = SPECS[spec_name].reference
    got = ref(x, mask)
    want = x.double().mean()
    assert got.dtype == torch.bfloat16
    assert abs(float(got) - float(want)) <= 2 * _eps(torch.bfloat16) * float(want)
