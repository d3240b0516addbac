"""The ``pgmath`` command line.

Commands::

    pgmath verify [--device D] [--samples N] [--seed S] [--quick] [--out DIR]
    pgmath train {reinforce,a2c,ppo,grpo-toy,ppo-toy} ...
    pgmath eval CHECKPOINT --episodes K
    pgmath check {gae,returns,ppo-loss,kl,group-advantages} module:function [--convention C]
    pgmath conform {torchrl,trl,verl,openrlhf,rlax,sb3,all} [--json FILE] [--markdown FILE]
    pgmath audit package.module:function [--group-size K] [--off-policy] [--json FILE] | --builtin

Each area of the library adds its own sub-commands through a hook in its ``cli`` module:
``add_train_parsers(train_subparsers)`` for ``pgmath train <algo>`` and
``add_commands(subparsers)`` for top-level commands. Every parser sets ``func`` to a callable
taking the parsed namespace and returning the exit status. A hook module whose optional
dependency is missing (``pgmath check`` needs ``pgmath[testing]``, ``pgmath train``/``eval`` need
``pgmath[agents]``) is left out, and ``pgmath --help`` (or an unknown command) says which extra
to install.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pgmath import __version__

#: Modules that contribute sub-commands (``add_train_parsers`` / ``add_commands``).
_TRAIN_HOOKS: tuple[str, ...] = ("pgmath.agents.cli", "pgmath.llm.cli")
_COMMAND_HOOKS: tuple[str, ...] = ("pgmath.verify_cli", "pgmath.agents.cli", "pgmath.testing.cli",
                                   "pgmath.testing.conform", "pgmath.llm.audit_cli")


def _load_hooks(names: tuple[str, ...], unavailable: list[str]) -> list:
    """Import the hook modules; one whose optional dependency is missing is left out, its
    ImportError (which names the extra to install) noted in ``unavailable``."""
    modules = []
    for modname in names:
        try:
            modules.append(importlib.import_module(modname))
        except ImportError as exc:
            unavailable.append(f"{modname}: {exc}")
    return modules


def load_target(spec: str) -> Callable[..., Any]:
    """Import ``package.module:attr[.attr…]`` (the current directory first on ``sys.path``) — the
    user function that ``pgmath check`` and ``pgmath audit`` are given."""
    if ":" not in spec:
        raise ValueError(f"FUNCTION must look like package.module:function, got {spec!r}")
    modname, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(modname)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{spec} is not callable")
    return obj


def build_parser() -> argparse.ArgumentParser:
    unavailable: list[str] = []
    parser = argparse.ArgumentParser(
        prog="pgmath",
        description="pgmath: policy-gradient math, each formula beside a check that can fail.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pgmath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for module in _load_hooks(_COMMAND_HOOKS, unavailable):
        module.add_commands(sub)

    train = sub.add_parser("train", help="train an agent or a toy language model")
    train_sub = train.add_subparsers(dest="algo", metavar="ALGO")
    train_sub.required = True
    for module in _load_hooks(_TRAIN_HOOKS, unavailable):
        module.add_train_parsers(train_sub)
    if unavailable:
        parser.epilog = "Commands not available here (an optional dependency is missing):\n" + "\n".join(
            f"  {line}" for line in sorted(set(unavailable))
        )
    parser.unavailable = sorted(set(unavailable))  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None) and parser.unavailable:  # type: ignore[attr-defined]
            # an unknown command may be one whose extra is missing: say which
            print(parser.epilog, file=sys.stderr)
        raise
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
