"""The specification of one formula: everything that checks it, in one place.

A :class:`Spec` holds a formula's statement and source, its fast public function, the plain-loop
reference (and any other implementation in the same signature), the properties it must satisfy,
the catalogue of wrong variants seen in the field (each with where it was seen), the bad inputs
that must be refused, the Hypothesis input generator, and links to its doc page and proof.

Everything else reads specs instead of restating them:

* ``tests/test_specs.py`` runs every property against every implementation, checks that every
  wrong variant is rejected by a property (and by the proof, where there is one), that every bad
  input is refused with a ``ValueError`` naming the argument, and that every implementation
  agrees with the reference on Hypothesis-generated inputs;
* ``pgmath verify`` builds one row per property (:func:`verify_rows`);
* :mod:`pgmath.testing` builds its mutant catalogue from the wrong variants;
* the proofs (:mod:`pgmath.proofs`) take the spec's function as ``impl`` and reject its variants.

A property is a function ``run(impl, ctx) -> Outcome``: it calls the implementation under test
(any callable in the spec's signature) and compares it with something independent (the reference
loop, a closed form, a definition summed directly, an analytic gradient). It never compares the
implementation with itself.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from pgmath.verification import Outcome, VerifyContext, VerifyRow

__all__ = [
    "BadInput",
    "Call",
    "Property",
    "Spec",
    "WrongVariant",
    "all_properties",
    "backends",
    "max_abs_error",
    "outcome_within",
    "reject_bad_inputs",
    "verify_rows",
]

#: Round-off tolerance of float64 properties (absolute, on O(1)–O(100) quantities).
F64_TOL = 1e-10



@dataclass(frozen=True)
class Call:
    """One call of a formula: positional and keyword arguments (an input the generator drew)."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, fn: Callable[..., Any]) -> Any:
        return fn(*self.args, **dict(self.kwargs))


@dataclass(frozen=True)
class Property:
    """A statement the formula satisfies, checked on an implementation.

    ``run(impl, ctx)`` returns an :class:`~pgmath.verification.Outcome`; ``statement`` is the text
    of the verify row ("fast scan == reference loop, float64").
    """

    name: str
    statement: str
    run: Callable[[Callable[..., Any], VerifyContext], Outcome]


@dataclass(frozen=True)
class WrongVariant:
    """A wrong implementation of the formula, and where it was seen.

    Attributes:
      name: a unique identifier, e.g. ``"gae_lambda_on_delta"``.
      bug: what is wrong, in one line.
      seen_in: where it was seen — a public issue/PR ("owner/repo#123"), a paper, or
        ``"derivation"`` for a bug that follows from the math but has no public report.
      fn: the wrong implementation, in the spec's signature (``convention="pgmath"``) or in the
        calling convention of another library (``"sb3"``, ``"rlax"``, ``"torchrl"``; see
        :mod:`pgmath.testing.conventions`), where the bug lives in that library's layout.
      convention: the calling convention of ``fn``.
      options: keyword arguments of the harness check that expose the bug (e.g. an estimator).
      step: for recursions, the wrong one-step update ``step(r, v, v_next, term, trunc, last,
        a_next, gamma, lam)`` that ``fn`` runs backwards in time; proofs evaluate it symbolically.
    """

    name: str
    bug: str
    seen_in: str
    fn: Callable[..., Any]
    convention: str = "pgmath"
    options: Mapping[str, Any] = field(default_factory=dict)
    step: Callable[..., Any] | None = None


@dataclass(frozen=True)
class BadInput:
    """A bad call that must raise a ``ValueError`` naming ``argument``."""

    description: str
    call: Callable[[Callable[..., Any], torch.device], Any]  # call(impl, device)
    argument: str


@dataclass(frozen=True)
class Spec:
    """One formula, with everything that checks it.

    Attributes:
      name: identifier, the key in :data:`pgmath.specs.SPECS` (usually the function's name).
      title: the formula's name in the verify table, e.g. ``"GAE(γ, λ)"``.
      area: the verify area (``"core"``, ``"llm"``, ``"mdp"``, …).
      formula: the statement in plain Unicode math.
      source: where the formula comes from (paper, equation, book section).
      function: the public, fast implementation.
      reference: the plain-loop reference implementation (same signature).
      implementations: every implementation in the spec's signature, by name (backends, the
        reference, …); all are run through every property.
      properties: what every implementation must satisfy.
      wrong_variants: the catalogue of wrong implementations, each rejected by some property.
      bad_inputs: calls that must raise a ``ValueError`` naming the argument.
      inputs: a factory of the Hypothesis strategy of :class:`Call` s (imported lazily, so a
        spec costs nothing at import time); ``None`` if the formula has no generated inputs.
      tolerance: how far (max abs error) an implementation may differ from the reference on a
        generated float64 input.
      doc: the doc page, relative to the repository root.
      proof: the sympy proof, ``"pgmath.proofs.module"`` or ``"pgmath.proofs.module:function"``;
        its ``impl=`` keyword takes an implementation in the spec's signature.
      harness: the :mod:`pgmath.testing` check that compares other people's code to this spec.
      step: for recursions, the one-step update the reference loop runs (see
        :class:`WrongVariant`); ``None`` otherwise.
    """

    name: str
    title: str
    area: str
    formula: str
    source: str
    function: Callable[..., Any]
    reference: Callable[..., Any]
    implementations: Mapping[str, Callable[..., Any]]
    properties: tuple[Property, ...]
    wrong_variants: tuple[WrongVariant, ...] = ()
    bad_inputs: tuple[BadInput, ...] = ()
    inputs: Callable[[], Any] | None = None
    tolerance: float = F64_TOL
    doc: str = ""
    proof: str | None = None
    harness: str | None = None
    step: Callable[..., Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def variant(self, name: str) -> WrongVariant:
        """The wrong variant called ``name``."""
        for v in self.wrong_variants:
            if v.name == name:
                return v
        raise KeyError(f"spec {self.name!r} has no wrong variant {name!r}")

    def load_proof(self) -> Callable[..., Any] | None:
        """The proof function (``prove`` unless the spec names another), or ``None``."""
        if self.proof is None:
            return None
        module, _, fn = self.proof.partition(":")
        return getattr(importlib.import_module(module), fn or "prove")

    def proof_keyword(self) -> str | None:
        """The keyword of the proof that takes this formula's implementation: ``extra
        ["proof_keyword"]`` if given, else the ``impl``/``*_impl`` keyword whose default is
        ``self.function``; ``None`` if the proof takes no implementation of this formula."""
        prove = self.load_proof()
        if prove is None:
            return None
        if "proof_keyword" in self.extra:
            return str(self.extra["proof_keyword"])
        for name, p in inspect.signature(prove).parameters.items():
            if (name == "impl" or name.endswith("_impl")) and p.default is self.function:
                return name
        return None

    def run_proof(self, impl: Callable[..., Any] | None = None) -> Any:
        """Run the proof with ``impl`` (default: the spec's function) as this formula's
        implementation; ``extra["proof_form"]`` adapts the spec's signature to the proof's.
        Returns the proof's ``ProofResult``: it fails when ``impl`` is wrong."""
        prove, keyword = self.load_proof(), self.proof_keyword()
        if prove is None or keyword is None:
            raise ValueError(f"spec {self.name!r} has no proof that takes its implementation")
        form = self.extra.get("proof_form", lambda f: f)
        return prove(**{keyword: form(self.function if impl is None else impl)})


# ---------------------------------------------------------------------------------------------
# helpers shared by the properties of every spec


def backends(fn: Callable[..., Any], extra: tuple[str, ...] = ()) -> dict[str, Callable[..., Any]]:
    """The implementations of a function with a ``backend=`` keyword: ``"auto"``, ``"torch"``,
    ``"numba"`` (when numba is installed) and any ``extra`` backend names (e.g. ``"reference"``)."""
    from pgmath.scan import numba_available

    names = ("torch", *(("numba",) if numba_available() else ()), *extra)
    return {"auto": fn, **{n: functools.partial(fn, backend=n) for n in names}}



def max_abs_error(got: Any, want: Any) -> float:
    """max |got − want| over all entries (inf when shapes differ or ``got`` is not finite where
    ``want`` is)."""
    got = torch.as_tensor(got)
    want = torch.as_tensor(want).to(got.device)
    if got.shape != want.shape:
        return float("inf")
    if got.numel() == 0:
        return 0.0
    diff = (got.double() - want.double()).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
    return float(diff.max())


def outcome_within(err: float, tol: float = F64_TOL, what: str = "max |err|") -> Outcome:
    """An outcome that passes when ``err <= tol``, with the figure as its statistic."""
    return Outcome(passed=err <= tol, statistic=f"{what} = {err:.1e}",
                   data={"max_abs_error": err, "tol": tol})


def reject_bad_inputs(cases: tuple[BadInput, ...], impl: Callable[..., Any],
                      device: torch.device | str = "cpu") -> list[str]:
    """The bad inputs that ``impl`` does *not* refuse properly (empty list: all refused by name)."""
    failures = []
    for case in cases:
        try:
            case.call(impl, torch.device(device))
            failures.append(f"{case.description}: no error")
        except ValueError as exc:
            if case.argument not in str(exc):
                failures.append(f"{case.description}: message does not name {case.argument!r}: {exc}")
        except Exception as exc:  # a crash is not a clear refusal
            failures.append(f"{case.description}: {type(exc).__name__} instead of ValueError: {exc}")
    return failures


def _bad_input_property(spec: Spec) -> Property:
    def run(impl: Callable[..., Any], ctx: VerifyContext) -> Outcome:
        failures = reject_bad_inputs(spec.bad_inputs, impl, ctx.device)
        n = len(spec.bad_inputs)
        return Outcome(not failures, f"{n - len(failures)}/{n} rejected by name", {"failures": failures})

    return Property("bad_input", "bad input → ValueError naming the argument", run)


def all_properties(spec: Spec) -> tuple[Property, ...]:
    """The spec's properties, plus the bad-input property when it lists bad inputs."""
    extra = (_bad_input_property(spec),) if spec.bad_inputs else ()
    return (*spec.properties, *extra)


def verify_rows(specs: Mapping[str, Spec], area: str) -> list[VerifyRow]:
    """One ``pgmath verify`` row per property of every spec in ``area``, run on its function."""
    rows = []
    for spec in specs.values():
        if spec.area != area:
            continue
        for prop in all_properties(spec):
            rows.append(VerifyRow(area, spec.title, prop.statement, _bind(prop, spec.function)))
    return rows


def _bind(prop: Property, impl: Callable[..., Any]) -> Callable[[VerifyContext], Outcome]:
    def fn(ctx: VerifyContext) -> Outcome:
        return prop.run(impl, ctx)

    fn.__name__ = f"verify_{prop.name}"
    return fn
