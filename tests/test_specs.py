"""Every formula spec, checked the same way (pgmath.specs).

For every spec in ``SPECS``:

* every property holds for every implementation (fast, reference, each backend; CPU and, when
  one is present, CUDA);
* every wrong variant written in the spec's own signature is rejected by at least one property,
  and Hypothesis finds an input of the spec's generator on which it differs from the reference
  (so the generator reaches the bug);
* every implementation agrees with the reference on Hypothesis-generated inputs;
* every implementation refuses every bad input with a ``ValueError`` naming the argument (the
  ``bad_input`` property);
* the spec's links resolve: doc page, proof, harness check.
"""

from __future__ import annotations

import importlib
import pathlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgmath.specs import SPECS, all_properties, wrong_variants
from pgmath.specs.spec import max_abs_error
from pgmath.verification import VerifyContext, run_check

ROOT = pathlib.Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])


def _impl_cases():
    for spec in SPECS.values():
        cpu_only = set(spec.extra.get("cpu_only", ()))
        for impl_name in spec.implementations:
            for device in DEVICES:
                if device != "cpu" and impl_name in cpu_only:
                    continue
                for prop in all_properties(spec):
                    marks = [pytest.mark.gpu] if device != "cpu" else []
                    yield pytest.param(spec.name, impl_name, prop.name, device, marks=marks,
                                       id=f"{spec.name}-{impl_name}-{prop.name}-{device}")


def _prop(spec, name):
    return next(p for p in all_properties(spec) if p.name == name)


@pytest.mark.parametrize(("spec_name", "impl_name", "prop_name", "device"), list(_impl_cases()))
def test_property_holds_for_every_implementation(spec_name, impl_name, prop_name, device):
    spec = SPECS[spec_name]
    ctx = VerifyContext(device=torch.device(device), quick=True)
    outcome = _prop(spec, prop_name).run(spec.implementations[impl_name], ctx)
    assert outcome.passed, (outcome.statistic, outcome.data)


OWN_SIGNATURE = [(s, v) for s, v in wrong_variants() if v.convention == "pgmath"]


def _rejections(spec, fn) -> list[str]:
    """Names of the properties that reject ``fn`` (a crash counts as a rejection, like in verify)."""
    ctx = VerifyContext(quick=True)
    out = []
    for prop in all_properties(spec):
        if prop.name == "bad_input":  # refusing bad input says nothing about the formula
            continue
        from pgmath.verification import Check

        result = run_check(Check(spec.area, spec.title, prop.statement, lambda c, p=prop: p.run(fn, c)), ctx)
        if not result.passed:
            out.append(prop.name)
    return out


@pytest.mark.parametrize(("spec", "variant"), OWN_SIGNATURE, ids=[v.name for _, v in OWN_SIGNATURE])
def test_every_wrong_variant_is_rejected_by_a_property(spec, variant):
    assert _rejections(spec, variant.fn), f"no property of {spec.name} rejects {variant.name}"


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_reference_passes_every_property(spec):
    assert not _rejections(spec, spec.reference)


def _differs(spec, fn, call) -> bool:
    try:
        want = call(spec.reference)
    except ValueError:
        return False
    try:
        got = call(fn)
    except Exception:
        return True
    return max_abs_error(got, want) > spec.tolerance


GENERATED = [(s, v) for s, v in OWN_SIGNATURE if s.inputs is not None]


@pytest.mark.parametrize(("spec", "variant"), GENERATED, ids=[v.name for _, v in GENERATED])
def test_generated_inputs_reach_every_wrong_variant(spec, variant):
    """Hypothesis finds an input of the spec's generator where the variant differs from the
    reference (a ``find`` over the strategy; it fails if the generator cannot reach the bug)."""
    from hypothesis import find

    find(spec.inputs(), lambda call: _differs(spec, variant.fn, call),
         settings=settings(max_examples=2000, database=None, derandomize=True,
                           suppress_health_check=list(HealthCheck)))


def _generated_cases():
    for spec in SPECS.values():
        if spec.inputs is None:
            continue
        for impl_name in spec.implementations:
            if impl_name != "reference":
                yield pytest.param(spec.name, impl_name, id=f"{spec.name}-{impl_name}")


@pytest.mark.parametrize(("spec_name", "impl_name"), list(_generated_cases()))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_implementation_equals_reference_on_generated_inputs(spec_name, impl_name, data):
    spec = SPECS[spec_name]
    call = data.draw(spec.inputs())
    want = call(spec.reference)
    got = call(spec.implementations[impl_name])
    assert max_abs_error(got, want) <= spec.tolerance * max(1.0, float(torch.as_tensor(want).abs().max()))


# --- links ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_spec_links_resolve(spec):
    assert spec.doc and (ROOT / spec.doc).is_file(), f"{spec.name}: doc page {spec.doc!r} missing"
    assert spec.formula and spec.source
    if spec.proof is not None:
        assert callable(spec.load_proof())
    if spec.harness is not None:
        testing = importlib.import_module("pgmath.testing")
        assert callable(getattr(testing, spec.harness)), spec.harness
    names = [v.name for v in spec.wrong_variants]
    assert len(names) == len(set(names))
    for v in spec.wrong_variants:
        assert v.bug and v.seen_in, v.name


def test_wrong_variant_names_are_unique_across_specs():
    names = [v.name for _, v in wrong_variants()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
