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
from pgmath.verification import VerifyContext, run_row

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
        from pgmath.verification import VerifyRow

        result = run_row(VerifyRow(spec.area, spec.title, prop.statement, lambda c, p=prop: p.run(fn, c)), ctx)
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


class _Found(Exception):
    """Raised inside the search when an input exposing the variant is drawn."""


def _generator_reaches(spec, fn, max_examples: int = 2000) -> bool:
    """Whether Hypothesis (derandomized, no shrinking: any witness will do) draws an input from
    the spec's generator on which ``fn`` differs from the reference."""
    from hypothesis import Phase

    @settings(max_examples=max_examples, database=None, derandomize=True, phases=[Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(call=spec.inputs())
    def search(call):
        if _differs(spec, fn, call):
            raise _Found

    try:
        search()
    except _Found:
        return True
    return False


@pytest.mark.parametrize(("spec", "variant"), GENERATED, ids=[v.name for _, v in GENERATED])
def test_generated_inputs_reach_every_wrong_variant(spec, variant):
    """The generator reaches every bug: fails if none of 2000 draws exposes the variant."""
    assert _generator_reaches(spec, variant.fn), f"the inputs of {spec.name} never expose {variant.name}"


def test_generator_search_finds_nothing_in_the_reference():
    """The search above can fail: run on the reference itself it finds no difference."""
    spec = SPECS["gae"]
    assert not _generator_reaches(spec, spec.reference, max_examples=50)


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


# --- proofs ---------------------------------------------------------------------------------

PROVEN = [s for s in SPECS.values() if s.proof is not None and s.proof_keyword() is not None]
PROVEN_VARIANTS = [(s, v) for s in PROVEN for v in s.wrong_variants if v.convention == "pgmath"]


@pytest.mark.parametrize("spec", PROVEN, ids=[s.name for s in PROVEN])
def test_proof_accepts_every_implementation(spec):
    for name, impl in spec.implementations.items():
        result = spec.run_proof(impl)
        assert result.passed, (name, result.details)


@pytest.mark.parametrize(("spec", "variant"), PROVEN_VARIANTS, ids=[v.name for _, v in PROVEN_VARIANTS])
def test_proof_rejects_every_wrong_variant(spec, variant):
    """The sympy proof evaluates the implementation it is given against the proven closed form,
    so it fails when the *code* is wrong — shown here on every catalogued variant. A variant whose
    bug lies outside the proof's statement (round-off at extreme inputs, a gradient with respect
    to a constant, clipping the proof does not model) is listed in the spec's
    ``extra["outside_proof"]`` with the reason — and must then really pass the proof, so the list
    cannot hide a proof that stopped checking."""
    result = spec.run_proof(variant.fn)
    outside = spec.extra.get("outside_proof", {})
    if variant.name in outside:
        assert result.passed, f"{variant.name} is listed as outside the proof but the proof rejects it"
    else:
        assert not result.passed, f"{spec.proof} accepts the wrong variant {variant.name}"


def test_dual_clip_proof_rejects_the_all_signs_variant():
    from pgmath.proofs.ppo_clip import prove_dual_clip

    spec = SPECS["ppo_clip_loss"]
    assert prove_dual_clip().passed
    assert not prove_dual_clip(impl=spec.variant("ppo_dual_clip_all_signs").fn).passed


def test_every_proof_is_tied_to_a_spec():
    from pgmath.proofs import PROOFS

    linked = {s.proof.partition(":")[0] for s in PROVEN}
    assert linked, "no spec proof takes an implementation"
    unlinked = {p.module.replace("proofs.", "pgmath.proofs.", 1) if not p.module.startswith("pgmath.") else p.module
                for p in PROOFS} - linked
    # Proofs whose impl is not a spec's function: the canonical MDP builders (gridworld, short
    # corridor), the estimator weights (causality), and second proofs of a formula that already
    # links one (softmax_score: the score of categorical_log_prob; reinforce_averaging: the
    # policy-gradient loss; ppo_ratio_escape, surrogate: the PPO loss). Each still runs its impl.
    assert unlinked <= {"pgmath.proofs.gridworld", "pgmath.proofs.short_corridor",
                        "pgmath.proofs.causality", "pgmath.proofs.softmax_score",
                        "pgmath.proofs.reinforce_averaging", "pgmath.proofs.ppo_ratio_escape",
                        "pgmath.proofs.surrogate"}, unlinked


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
