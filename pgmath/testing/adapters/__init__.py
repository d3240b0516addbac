"""Ready adapters of the public functions of real RL libraries, for ``pgmath conform``.

One module per library (``torchrl``, ``trl``, ``verl``, ``openrlhf``, ``rlax``, ``sb3``), each with

* ``DISTRIBUTION`` — the package name its version is read from;
* ``entries()`` — the :class:`Entry` list: which public function, which check of
  :mod:`pgmath.testing`, with which settings of the reference, through which adapter.
  It imports the library (an ``ImportError`` means the library is missing).

An adapter only *bridges*: argument order and names, the layout of the inputs (``[B, L]`` grids,
``[N]`` index groups, time-major rollouts), the library's config objects, a single-process
trainer shell. Each bridge is declared in the entry's ``bridge`` text and on the conformance page
(``docs/testing/conformance.md``); the library's settings that differ from pgmath's defaults are
passed as the check's settings (the reference's), never hidden in the adapter. Nothing of the
library's code is re-typed: every entry calls the installed function.

Modules are imported on demand (:func:`load`); importing this package imports no library.

Checked by: ``tests/test_conform.py`` (every installed library's entries run; the CLI's table,
JSON, exit codes).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["LIBRARIES", "Entry", "library_version", "load"]

#: The libraries with an adapter module, in the order ``pgmath conform --all`` runs them.
LIBRARIES: tuple[str, ...] = ("torchrl", "trl", "verl", "openrlhf", "rlax", "sb3")


@dataclass(frozen=True)
class Entry:
    """One public function of a library, checked by one check with the reference's settings.

    Attributes:
      function: the public function's dotted name (what the table shows).
      check: the name of the :mod:`pgmath.testing` check.
      settings: the check's keyword arguments (the reference's settings, e.g. the library's
        default clip range); shown in the table.
      fn: the adapter, in the check's calling convention; it calls ``function``.
      bridge: what the adapter does between the check and the function, in one line.
    """

    function: str
    check: str
    settings: Mapping[str, Any]
    fn: Callable[..., Any]
    bridge: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # CheckOptions fields the entry needs

    def run(self, **options: Any) -> Any:
        """Run the check (``AssertionError`` on a mismatch; a :class:`CheckReport` otherwise)."""
        import pgmath.testing

        return getattr(pgmath.testing, self.check)(self.fn, **dict(self.settings), **{**self.options, **options})


def load(library: str) -> ModuleType:
    """The adapter module of ``library`` (``ValueError`` naming the known ones otherwise)."""
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")
    return importlib.import_module(f"{__name__}.{library}")


def library_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (``None`` when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
