"""The ``pgmath`` command line.

Commands::

    pgmath verify [--device D] [--samples N] [--seed S] [--quick] [--out DIR]
    pgmath train {reinforce,a2c,ppo,grpo-toy,ppo-toy} ...
    pgmath eval CHECKPOINT --episodes K
    pgmath check {gae,returns,ppo-loss,kl,group-advantages} module:function [--convention C]

Each area of the library adds its own sub-commands through a hook in its ``cli`` module:
``add_train_parsers(train_subparsers)`` for ``pgmath train <algo>`` and
``add_commands(subparsers)`` for top-level commands. Every parser sets ``func`` to a callable
taking the parsed namespace and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pgmath import __version__

#: Modules that contribute sub-commands (``add_train_parsers`` / ``add_commands``).
_TRAIN_HOOKS: tuple[str, ...] = ("pgmath.agents.cli", "pgmath.llm.cli")
_COMMAND_HOOKS: tuple[str, ...] = ("pgmath.verify_cli", "pgmath.agents.cli", "pgmath.testing.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgmath",
        description="pgmath: policy-gradient math, each formula beside a check that can fail.",
    )
    parser.add_argument("--version", action="version", version=f"pgmath {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for modname in _COMMAND_HOOKS:
        importlib.import_module(modname).add_commands(sub)

    train = sub.add_parser("train", help="train an agent or a toy language model")
    train_sub = train.add_subparsers(dest="algo", metavar="ALGO")
    train_sub.required = True
    for modname in _TRAIN_HOOKS:
        importlib.import_module(modname).add_train_parsers(train_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
