"""``pgmath check``: check a function of yours against pgmath's reference from the command line.

::

    pgmath check gae mypkg.buffers:compute_gae --convention sb3
    pgmath check returns mypkg.returns:reward_to_go --no-bootstrap
    pgmath check ppo-loss mypkg.losses:ppo_loss --clip-eps 0.2
    pgmath check kl mypkg.kl:k3 --estimator k3
    pgmath check group-advantages mypkg.grpo:advantages --estimator grpo

Exit status 0 when the function agrees with the reference, 1 on a mismatch (the readable diff
with the shrunken counterexample is printed), 2 when the target cannot be imported. The current
directory is importable, so ``pgmath check gae my_script:gae`` works next to ``my_script.py``.

Checked by: ``tests/test_testing_cli.py`` (pass, fail and bad-target exit codes for every kind).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import torch

from pgmath.cli import load_target
from pgmath.testing import checks

__all__ = ["add_commands", "load_target", "options_from_args", "run_check"]

KINDS = ("gae", "returns", "ppo-loss", "kl", "group-advantages")
_DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="check your GAE / returns / PPO loss / KL estimator / group advantages against pgmath",
        description=(
            "Property-based comparison of FUNCTION against pgmath's reference plus the edge cases; "
            "exit 1 with a readable diff on a mismatch."
        ),
    )
    p.add_argument("kind", choices=KINDS, help="what FUNCTION computes")
    p.add_argument("target", metavar="FUNCTION", help="package.module:function (the current directory is importable)")
    p.add_argument("--convention", default="pgmath",
                   help="calling convention: pgmath (default), sb3, rlax or torchrl (gae/returns), rlax (ppo-loss)")
    p.add_argument("--arrays", choices=("torch", "numpy"), default=None,
                   help="what FUNCTION receives (default: the convention's)")
    p.add_argument("--max-examples", type=int, default=checks.DEFAULT_MAX_EXAMPLES,
                   help=f"property-based examples (default {checks.DEFAULT_MAX_EXAMPLES}; 0: edge cases only)")
    p.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: derandomized)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="float64", help="dtype of the generated inputs")
    p.add_argument("--device", default="cpu", help="device of the generated inputs (e.g. cuda)")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance override")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance override")
    p.add_argument("--no-edge-cases", dest="edge_cases", action="store_false", help="skip the edge cases")
    p.add_argument("--no-bootstrap", dest="bootstrap", action="store_false",
                   help="returns: FUNCTION does not bootstrap at truncation / rollout end")
    p.add_argument("--clip-eps", type=float, default=0.2, help="ppo-loss: ε (default 0.2)")
    p.add_argument("--clip-eps-high", type=float, default=None, help="ppo-loss: ε_high (clip-higher)")
    p.add_argument("--dual-clip", type=float, default=None, help="ppo-loss: dual-clip constant c > 1")
    p.add_argument("--no-mask", dest="masked", action="store_false", help="ppo-loss: FUNCTION takes no mask")
    p.add_argument("--no-gradients", dest="gradients", action="store_false",
                   help="ppo-loss: compare values only")
    p.add_argument("--estimator", default=None,
                   help="kl: k1, k2 or k3 (default k3); group-advantages: grpo or rloo (default grpo)")
    p.add_argument("--no-normalize-std", dest="normalize_std", action="store_false",
                   help="group-advantages: GRPO without the std division (Dr. GRPO)")
    p.add_argument("--eps", type=float, default=1e-6, help="group-advantages: ε added to the std")
    p.set_defaults(func=run_check)


def options_from_args(args: argparse.Namespace) -> checks.CheckOptions:
    """The :class:`~pgmath.testing.checks.CheckOptions` of the shared command-line options."""
    return checks.CheckOptions(
        max_examples=args.max_examples, seed=args.seed, dtype=_DTYPES[args.dtype], device=args.device,
        rtol=args.rtol, atol=args.atol, edge_cases=args.edge_cases, arrays=args.arrays,
    )


def _call_check(kind: str, fn: Callable[..., Any], args: argparse.Namespace) -> checks.CheckReport:
    opts = options_from_args(args)
    if kind == "gae":
        return checks.check_gae(fn, convention=args.convention, options=opts)
    if kind == "returns":
        return checks.check_returns(fn, convention=args.convention, bootstrap=args.bootstrap, options=opts)
    if kind == "ppo-loss":
        return checks.check_ppo_loss(
            fn, clip_eps=args.clip_eps, clip_eps_high=args.clip_eps_high, dual_clip=args.dual_clip,
            convention=args.convention, masked=args.masked, gradients=args.gradients, options=opts,
        )
    if kind == "kl":
        return checks.check_kl_estimator(fn, args.estimator or "k3", options=opts)
    return checks.check_group_advantages(
        fn, estimator=args.estimator or "grpo", normalize_std=args.normalize_std, eps=args.eps, options=opts,
    )


def run_check(args: argparse.Namespace) -> int:
    """The ``pgmath check`` command: 0 pass, 1 mismatch, 2 bad target or arguments."""
    try:
        fn = load_target(args.target)
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"pgmath check: cannot load {args.target}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        report = _call_check(args.kind, fn, args)
    except AssertionError as exc:
        print(str(exc), file=sys.stderr)
        print(f"pgmath check {args.kind}: FAILED", file=sys.stderr)
        return 1
    except ValueError as exc:  # bad check arguments (unknown convention, estimator, …)
        print(f"pgmath check: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0
