"""The catalogue of buggy implementations seen in the field, each one rejected by a check.

Every :class:`Mutant` is a deliberately wrong GAE, return, PPO loss, KL estimator or group
advantage, written in the calling convention of the code where the bug lives (so the sb3, rlax
and torchrl mutants exercise the adapters of :mod:`pgmath.testing.conventions`). The catalogue is
a view of the specs: each wrong variant of a :class:`~pgmath.specs.Spec` whose ``harness`` names a
check becomes a mutant of that check (its convention and options are the variant's; a spec whose
``extra`` has a ``"harness_form"`` hands the check ``harness_form(variant.fn)``), so a wrong
variant is written once, in :mod:`pgmath.specs`, with where it was seen.

``MUTANTS`` is the catalogue (built on first use); ``docs/testing/mutants.md`` lists it with where
each bug was seen and which check catches it (its table is :func:`markdown_table`; rewrite it
with ``python -m pgmath.testing.mutants docs/testing/mutants.md``). :func:`diagnose` tells a failing check which known
bug a user's output reproduces ("Your output reproduces the known bug: gae_no_truncation_bootstrap …").

Checked by: ``tests/test_testing_mutants.py`` (every mutant rejected by its check, the references
accepted, the docs table equal to :func:`markdown_table`, diagnose names the mutant on its own
output).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MUTANTS", "Mutant", "by_name", "catalogue", "diagnose", "markdown_table", "with_table"]


@dataclass(frozen=True)
class Mutant:
    """A buggy implementation and the check that must reject it.

    Attributes:
      name, bug, seen_in: the wrong variant's (:class:`pgmath.specs.WrongVariant`).
      check: the name of the :mod:`pgmath.testing` check that rejects it (the spec's harness,
        e.g. ``"check_gae"``).
      convention: the calling convention ``fn`` is written in.
      fn: the implementation as the check calls it.
      options: keyword arguments of the check that expose the bug (e.g. an estimator).
      spec: the name of the spec the variant belongs to.
    """

    name: str
    bug: str
    seen_in: str
    check: str
    convention: str
    fn: Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    spec: str = ""

    def run_check(self, **overrides: Any):
        """Run the check that should reject this mutant (raises ``AssertionError`` when it does)."""
        import pgmath.testing

        kw = dict(self.options)
        if self.convention != "pgmath":
            kw["convention"] = self.convention
        kw.update(overrides)
        return getattr(pgmath.testing, self.check)(self.fn, **kw)

    def applies(self, settings: Mapping[str, Any] | None) -> bool:
        """Whether the mutant's options agree with a check's ``settings`` (e.g. its estimator)."""
        return all((settings or {}).get(k) == v for k, v in self.options.items())


@functools.cache
def catalogue() -> tuple[Mutant, ...]:
    """Every mutant: the wrong variants of the specs that name a harness check, in registry order."""
    from pgmath.specs import wrong_variants

    out = []
    for spec, v in wrong_variants():
        if spec.harness is None:
            continue
        form = spec.extra.get("harness_form")
        fn = form(v.fn) if form is not None else v.fn
        out.append(Mutant(v.name, v.bug, v.seen_in, spec.harness, v.convention, fn, dict(v.options), spec.name))
    return tuple(out)


#: The catalogue (a module attribute computed on first access: see ``__getattr__``).
MUTANTS: tuple[Mutant, ...]


def __getattr__(name: str) -> Any:
    if name == "MUTANTS":  # built on first use, so importing pgmath.testing imports no spec
        return catalogue()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def by_name(name: str) -> Mutant:
    """The mutant called ``name`` (``KeyError`` listing the names otherwise)."""
    for m in catalogue():
        if m.name == name:
            return m
    raise KeyError(f"no mutant named {name!r}; known: {[m.name for m in catalogue()]}")


# ---------------------------------------------------------------------------------------------
# diagnosis: which known bug does a wrong output reproduce?


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        if a.size == 1 and b.size == 1:
            a, b = a.reshape(()), b.reshape(())
        else:
            return False
    scale = max(1.0, float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0)
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6 * scale, equal_nan=True))


def diagnose(check: str, got: np.ndarray, expected: np.ndarray,
             output: Callable[[Mutant], np.ndarray | None],
             settings: Mapping[str, Any] | None = None) -> list[str]:
    """Names (with descriptions) of the mutants of ``check`` whose output equals ``got``.

    ``output(mutant)`` runs a mutant on the failing input and returns its output laid out as
    ``got`` (pgmath's layout), or None when the mutant does not apply; ``expected`` is the
    reference's output. Mutants whose options disagree with the check's ``settings``, that agree
    with the reference on the input (they cannot explain a difference) or that raise are skipped.
    """
    found = []
    for m in catalogue():
        if m.check != check or not m.applies(settings):
            continue
        try:
            out = output(m)
        except Exception:  # a mutant that cannot run on this input does not match it
            continue
        if out is not None and _same(got, out) and not _same(out, expected):
            found.append(f"{m.name} ({m.bug})")
    return found


# ---------------------------------------------------------------------------------------------
# the docs table


def _caught_by(m: Mutant) -> str:
    text = f"`{m.check}`"
    if m.convention != "pgmath":
        text += f", convention `{m.convention}`"
    if m.options:
        text += " (" + ", ".join(f"{k}={v!r}" for k, v in m.options.items()) + ")"
    return text


def markdown_table(mutants: tuple[Mutant, ...] | None = None) -> str:
    """The catalogue as the Markdown table of ``docs/testing/mutants.md``."""
    rows = ["| Mutant | Bug | Where seen | Caught by |", "|---|---|---|---|"]
    for m in catalogue() if mutants is None else mutants:
        cells = [f"`{m.name}`", m.bug, m.seen_in, _caught_by(m)]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def with_table(text: str) -> str:
    """``text`` (``docs/testing/mutants.md``) with its catalogue table and its count ("all N are
    rejected") replaced by the current catalogue's."""
    lines = text.split("\n")
    i = lines.index("| Mutant | Bug | Where seen | Caught by |")
    j = i
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    lines[i:j] = [*markdown_table().split("\n"), *([""] if j == len(lines) or lines[j] else [])]
    return re.sub(r"all \d+ are rejected", f"all {len(catalogue())} are rejected", "\n".join(lines))


if __name__ == "__main__":  # python -m pgmath.testing.mutants [docs/testing/mutants.md]
    import pathlib
    import sys

    if len(sys.argv) > 1:
        path = pathlib.Path(sys.argv[1])
        path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(markdown_table())
