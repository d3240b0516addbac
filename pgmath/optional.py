"""Optional dependencies: which extra of ``pip install pgmath[...]`` brings which package.

The core (``pip install pgmath``) needs only torch, numpy and numba. A module that needs an
optional package imports it inside ``try`` and raises :func:`extra_error` on ``ImportError``
(or, inside a function, calls :func:`require` first), so a missing package is an ``ImportError``
(a ``ModuleNotFoundError``) that names the extra to install::

    try:
        import hypothesis  # noqa: F401
    except ImportError as exc:
        raise extra_error("testing", "pgmath.testing", exc) from exc

    ModuleNotFoundError: pgmath.testing needs hypothesis, which is not installed:
    pip install 'pgmath[testing]'

Checked by: ``tests/test_packaging.py`` (the extras of ``pyproject.toml`` match :data:`EXTRAS`;
a blocked package gives the message naming its extra).
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "extra_error", "missing", "require"]

#: extra -> the import names of the packages it installs (``pyproject.toml`` lists the same).
EXTRAS: dict[str, tuple[str, ...]] = {
    "testing": ("hypothesis", "pytest"),
    "mdp": ("gymnasium", "scipy"),
    "agents": ("gymnasium", "tqdm"),
    "stats": ("scipy",),
    "proofs": ("sympy", "rich"),
    "plots": ("matplotlib",),
    "cli": ("rich", "tqdm"),
    "llm": ("transformers",),
}


def missing(*modules: str) -> list[str]:
    """The names among ``modules`` that cannot be imported (without importing any of them)."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or half-removed install
            found = False
        if not found:
            out.append(name)
    return out


def extra_error(extra: str, feature: str, cause: ImportError | None = None) -> ModuleNotFoundError:
    """The error to raise when ``feature`` lacks a package of ``pgmath[extra]``.

    Args:
      extra: the extra of ``pyproject.toml`` that installs the package (a key of :data:`EXTRAS`).
      feature: what needs it, for the message (``"pgmath.agents"``, ``"plotting"``).
      cause: the ``ImportError`` caught, whose ``name`` is the missing package (else the extra's).
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {sorted(EXTRAS)}, got {extra!r}")
    name = getattr(cause, "name", None) or ", ".join(EXTRAS[extra])
    return ModuleNotFoundError(
        f"{feature} needs {name}, which is not installed: pip install 'pgmath[{extra}]'", name=name
    )


def require(*modules: str, extra: str, feature: str) -> None:
    """Raise ``ModuleNotFoundError`` naming ``pgmath[extra]`` unless every one of ``modules`` is installed.

    Args:
      modules: import names (``"gymnasium"``, ``"scipy"``).
      extra: the extra of ``pyproject.toml`` that installs them (a key of :data:`EXTRAS`).
      feature: what needs them, for the message (``"pgmath.agents"``, ``"plots"``).
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra must be one of {sorted(EXTRAS)}, got {extra!r}")
    absent = missing(*modules)
    if absent:
        verb = "is" if len(absent) == 1 else "are"
        raise ModuleNotFoundError(
            f"{feature} needs {', '.join(absent)}, which {verb} not installed: "
            f"pip install 'pgmath[{extra}]'",
            name=absent[0],
        )
