"""What every check shares: its options, its report, the Hypothesis run and the comparison.

* :class:`CheckOptions` — the nine settings every check takes (examples, seed, dtype, device,
  tolerances, edge cases, strategy, array kind), in one frozen object. A check accepts them as
  keywords (``check_gae(fn, max_examples=20)``) or as ``options=CheckOptions(...)``; keywords
  override the object.
* :func:`run_cases` — the property-based search (derandomized unless a seed is given) and then the
  edge cases, with the first :class:`~pgmath.testing.report.Mismatch` turned into the final
  ``AssertionError``.
* :func:`call_user` — calls the function under test; what it raises is reported with the input.
* :func:`mismatched` — |got − expected| ≤ atol + rtol·scale, entry by entry.
* :func:`diagnosis_line` — names the catalogued bugs (:mod:`pgmath.testing.mutants`) whose output
  equals the user's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky

from pgmath.testing.conventions import ConventionError
from pgmath.testing.report import Mismatch

if TYPE_CHECKING:
    from pgmath.testing.mutants import Mutant

__all__ = [
    "DEFAULT_MAX_EXAMPLES",
    "CheckOptions",
    "CheckReport",
    "OptionFields",
    "call_user",
    "diagnosis_line",
    "mismatched",
    "resolve_options",
    "run_cases",
    "spec_reference",
    "target_name",
]

#: Property-based examples per check unless ``max_examples=`` says otherwise.
DEFAULT_MAX_EXAMPLES = 100

_SUPPRESS = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]


@dataclass(frozen=True)
class CheckOptions:
    """How a check runs (the same for every check).

    Attributes:
      max_examples: property-based examples (0 runs only the edge cases).
      seed: Hypothesis seed; None (default) derandomizes, so every run draws the same examples.
      dtype, device: of the generated inputs (the reference always runs in float64 on the CPU).
      rtol, atol: override the tolerance (None: a small multiple of the machine epsilon of the
        coarser of the input dtype and the output's dtype; see :mod:`pgmath.testing.checks`).
      edge_cases: also run the hand-made edge cases of :mod:`pgmath.testing.edge_cases`.
      strategy: a Hypothesis strategy of the check's input type to use instead of its own.
      arrays: ``"torch"`` or ``"numpy"``: what the function receives (None: the convention's
        default, torch for checks without conventions).
    """

    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int | None = None
    dtype: torch.dtype = torch.float64
    device: torch.device | str = "cpu"
    rtol: float | None = None
    atol: float | None = None
    edge_cases: bool = True
    strategy: Any = None
    arrays: str | None = None

    def __post_init__(self) -> None:
        if self.arrays not in (None, "torch", "numpy"):
            raise ValueError(f"arrays must be 'torch' or 'numpy', got {self.arrays!r}")

    def tolerances(self, eps: float, n_terms: int) -> tuple[float, float]:
        """``(rtol, atol)``: the overrides, else 8(n_terms + 2)·eps and 10·eps."""
        rt = self.rtol if self.rtol is not None else 8.0 * (n_terms + 2) * eps
        at = self.atol if self.atol is not None else 10.0 * eps
        return rt, at


class OptionFields(TypedDict, total=False):
    """The fields of :class:`CheckOptions`, as keyword arguments of a check."""

    max_examples: int
    seed: int | None
    dtype: torch.dtype
    device: torch.device | str
    rtol: float | None
    atol: float | None
    edge_cases: bool
    strategy: Any
    arrays: str | None


def resolve_options(options: CheckOptions | None, overrides: Mapping[str, Any]) -> CheckOptions:
    """``options`` (default :class:`CheckOptions()`) with the keyword ``overrides`` applied;
    an unknown keyword is a ``TypeError`` naming it."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(CheckOptions)}
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}")
    return dataclasses.replace(options if options is not None else CheckOptions(), **overrides)


@dataclass(frozen=True)
class CheckReport:
    """What a passing check ran."""

    check: str
    target: str
    reference: str
    convention: str
    examples: int  # function calls made by the property-based search
    edge_cases: tuple[str, ...]
    seconds: float
    notes: tuple[str, ...] = ()  # e.g. "refuses constants that require grad (accepted)"

    def __str__(self) -> str:
        return (
            f"{self.check}: {self.target} agrees with {self.reference} (convention {self.convention!r}) "
            f"on {self.examples} generated examples and {len(self.edge_cases)} edge cases "
            f"in {self.seconds:.2f} s" + "".join(f"; {n}" for n in self.notes)
        )


def spec_reference(name: str) -> Callable[..., Any]:
    """The plain-loop reference of the formula ``name`` (:data:`pgmath.specs.SPECS`)."""
    from pgmath.specs import SPECS

    return SPECS[name].reference


def target_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of the function under test (its repr if it has no name)."""
    mod = getattr(fn, "__module__", None)
    qn = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if qn is None:
        return repr(fn)
    return f"{mod}.{qn}" if mod else qn


def _hypothesis_settings(opts: CheckOptions) -> settings:
    return settings(
        max_examples=opts.max_examples, derandomize=opts.seed is None, database=None, deadline=None, suppress_health_check=_SUPPRESS,
        verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
    )


def _run_property(strategy: Any, body: Callable[[Any], None], opts: CheckOptions) -> int:
    """Run ``body`` on up to ``max_examples`` draws; shrink and re-raise the first failure."""
    if opts.max_examples <= 0:
        return 0
    calls = [0]

    def prop(case: Any) -> None:
        calls[0] += 1
        body(case)

    test = _hypothesis_settings(opts)(given(strategy)(prop))
    if opts.seed is not None:
        test = hypothesis_seed(opts.seed)(test)
    try:
        test()
    except Flaky as exc:
        raise AssertionError(
            "your function gave different results for the same input (it is not deterministic), "
            f"so no counterexample could be confirmed: {exc}"
        ) from exc
    return calls[0]


def run_cases(strategy: Any, body: Callable[[Any], None], edges: Sequence[Any],
              opts: CheckOptions) -> tuple[int, tuple[str, ...]]:
    """The property-based search, then (with ``opts.edge_cases``) every edge case.

    Returns ``(calls made by the search, labels of the edge cases run)``. The first mismatch
    raises an ``AssertionError`` with the message rendered for the final (shrunk) input.
    """
    try:
        calls = _run_property(strategy, body, opts)
        if opts.edge_cases:
            for case in edges:
                body(case)
    except Mismatch as m:
        raise AssertionError(m.render()) from m.__cause__
    return calls, tuple(c.label for c in edges) if opts.edge_cases else ()


def call_user(thunk: Callable[[], Any], header: Callable[[], str], describe: Callable[[], str]) -> Any:
    """Call the user's function; its exceptions become a :class:`Mismatch` with the input."""
    try:
        return thunk()
    except Mismatch:
        raise
    except ConventionError as exc:
        text = str(exc)
        raise Mismatch(text, lambda: f"{header()}\n  {text}\n{describe()}") from None
    except Exception as exc:  # anything the user's code raises is reported with the input
        msg = f"{type(exc).__name__}: {exc}"
        raise Mismatch(msg, lambda: f"{header()}\n  your function raised {msg}\n{describe()}") from exc


def mismatched(got: np.ndarray, expected: np.ndarray, scale: np.ndarray, rt: float, at: float) -> np.ndarray:
    """Entries where ¬(|got − expected| ≤ at + rt·scale) (NaN counts as a mismatch)."""
    with np.errstate(invalid="ignore"):
        return ~(np.abs(got - expected) <= at + rt * scale)


def diagnosis_line(check: str, got: np.ndarray, expected: np.ndarray,
                   output: Callable[[Mutant], np.ndarray | None],
                   check_settings: Mapping[str, Any] | None = None) -> str:
    """"Your output reproduces the known bug(s) …" naming the catalogued mutants of ``check``
    whose ``output`` equals ``got`` (and not ``expected``), or ``""`` when none does;
    ``check_settings`` (the check's keyword arguments) select the mutants whose options apply."""
    from pgmath.testing.mutants import diagnose

    names = diagnose(check, got, expected, output, check_settings)
    if not names:
        return ""
    return "Your output reproduces the known bug(s) of pgmath.testing.mutants: " + "; ".join(names)
