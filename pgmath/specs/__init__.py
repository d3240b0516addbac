"""One specification per formula (:class:`Spec`), read by the tests, ``pgmath verify``, the
harness in :mod:`pgmath.testing`, and the proofs.

``SPECS`` maps a formula's name to its spec. Each module of this package holds one formula
family and lists its specs in a module-level tuple ``FAMILY``; the registry collects them in the
order of ``_ORDER`` (then any other module, alphabetically; modules without ``FAMILY``
hold shared helpers and are skipped), so adding a formula is adding one
module here (plus its doc page) — the tests, the verify rows, the mutant catalogue and the
links between code, docs and proofs follow from it.

    >>> from pgmath.specs import SPECS
    >>> spec = SPECS["gae"]
    >>> [v.name for v in spec.wrong_variants][:2]
    ['gae_no_truncation_bootstrap', 'gae_bootstrap_through_termination']

See ``docs/architecture.md`` for the layers and how to add a formula.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from pgmath.specs.spec import (
    BadInput,
    Call,
    Property,
    Spec,
    WrongVariant,
    all_properties,
    verify_rows,
)

__all__ = [
    "SPECS",
    "BadInput",
    "Call",
    "Property",
    "Spec",
    "WrongVariant",
    "all_properties",
    "family_modules",
    "verify_rows",
    "wrong_variants",
]

#: Family modules in table order; modules not listed here follow alphabetically.
_ORDER = ("scan", "returns", "advantages", "distributions", "losses", "kl")
_NOT_FAMILIES = {"spec", "suite"}


def family_modules() -> list[str]:
    """Names of the spec family modules of this package (those defining ``FAMILY``), in
    registry order."""
    found = []
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if m.name in _NOT_FAMILIES:
            continue
        if hasattr(importlib.import_module(f"{__name__}.{m.name}"), "FAMILY"):
            found.append(m.name)
    return [m for m in _ORDER if m in found] + [m for m in found if m not in _ORDER]


def _collect() -> Mapping[str, Spec]:
    specs: dict[str, Spec] = {}
    for name in family_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        for spec in module.FAMILY:
            if spec.name in specs:
                raise RuntimeError(f"two specs are named {spec.name!r}")
            specs[spec.name] = spec
    return MappingProxyType(specs)


#: Formula name -> :class:`Spec`, every family module of this package.
SPECS: Mapping[str, Spec] = _collect()


def wrong_variants() -> Iterator[tuple[Spec, WrongVariant]]:
    """Every (spec, wrong variant) pair of the registry: the one catalogue of known bugs."""
    for spec in SPECS.values():
        for variant in spec.wrong_variants:
            yield spec, variant
