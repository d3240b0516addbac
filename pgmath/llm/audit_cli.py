"""``pgmath audit``: what does a loss's gradient estimate, exactly? (:func:`pgmath.llm.audit_loss`)

    pgmath audit package.module:function [--group-size K] [--off-policy [old|rollout|both]] [--json FILE]
    pgmath audit --builtin [--only TEXT] [--json FILE]

``function(batch)`` is a loss on one group of K responses (:class:`pgmath.llm.audit.AuditBatch`).
The table gives each target's coefficient in −E[∇𝓛] = Σ cₖ∇Tₖ + residual (a coefficient that
changes between parameter points is shown as such), the residual and one line of verdict.
Exit status 0 when the audit ran, 2 when it could not (bad input: the message says why).

Checked by: ``tests/test_llm_audit.py::test_cli_user_function`` and ``test_cli_builtin_runs``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pgmath.cli import load_target
from pgmath.tables import add_format_argument, print_table

__all__ = ["add_commands", "run_audit"]


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "audit", help="exact expected gradient of an LLM loss, written on ∇J, the KLs and ∇J_len",
        description="Enumerate every group of K responses of a tiny autoregressive policy and write the "
                    "loss's exact expected gradient −E[∇L] on the gradients of J, KL(π‖ref), KL(ref‖π), "
                    "their per-token forms and J_len = E[R/|y|].")
    p.add_argument("target", nargs="?", metavar="FUNCTION",
                   help="package.module:function, a loss of one batch (the current directory is importable)")
    p.add_argument("--builtin", action="store_true", help="audit every objective pgmath implements")
    p.add_argument("--only", default=None, help="--builtin: only the rows whose name contains this text")
    p.add_argument("--group-size", type=int, default=None, help="K responses per prompt (default 4; builtin 3)")
    p.add_argument("--vocab", type=int, default=None, help="V tokens, the last one EOS (default 3)")
    p.add_argument("--length", type=int, default=None, help="L, the longest response (default 2)")
    p.add_argument("--prompts", type=int, default=None, help="P prompts (default 3; builtin 2)")
    p.add_argument("--points", type=int, default=None, help="parameter points (default 3; builtin 2)")
    p.add_argument("--off-policy", nargs="?", const="old", default=False, choices=("old", "rollout", "both"),
                   help="sample from π_old ≠ π ('old', the default of the bare flag), from a rollout policy "
                        "μ ≠ π_old = π ('rollout') or both")
    p.add_argument("--reward", choices=("gaussian", "binary"), default="gaussian", help="rewards (default gaussian)")
    p.add_argument("--exchangeable", action="store_true",
                   help="the loss ignores the order of the K responses: enumerate multisets (faster)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rewards and the parameter points")
    p.add_argument("--json", metavar="FILE", default=None, help="write the numbers as JSON")
    add_format_argument(p)
    p.set_defaults(func=run_audit)


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    names = {"group_size": args.group_size, "vocab": args.vocab, "length": args.length,
             "prompts": args.prompts, "points": args.points}
    return {k: v for k, v in names.items() if v is not None}


def _run_builtin(args: argparse.Namespace) -> int:
    from pgmath.llm.audit_builtin import audit_builtin, builtin_table

    results = audit_builtin(only=args.only, seed=args.seed, **_sizes(args))
    if not results:
        print(f"pgmath audit: no builtin row matches --only {args.only!r}", file=sys.stderr)
        return 2
    columns, rows = builtin_table(results)
    st = results[0][1].settings
    caption = (f"−E[∇L] = Σ c·∇T + residual; V = {st['vocab']} (EOS = {st['eos']}), L ≤ {st['length']}, "
               f"K = {st['group_size']}, P = {st['prompts']}, {st['points']} parameter points; "
               "'varies a…b': the coefficient moves between points (range shown); ≡: collinear, dropped")
    print_table(columns, rows, title="pgmath audit --builtin", caption=caption, fmt=args.format)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{"section": e.section, **a.as_json()} for e, a in results], f, indent=1)
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from pgmath.llm.audit import audit_loss

    try:
        if args.builtin:
            if args.target:
                raise ValueError("give either FUNCTION or --builtin, not both")
            return _run_builtin(args)
        if not args.target:
            raise ValueError("give a FUNCTION (package.module:function) or --builtin")
        fn = load_target(args.target)
        audit = audit_loss(fn, off_policy=args.off_policy, reward=args.reward, seed=args.seed,
                           exchangeable=args.exchangeable, name=args.target, **_sizes(args))
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"pgmath audit: {exc}", file=sys.stderr)
        return 2
    st = audit.settings
    caption = (f"{audit.verdict()}\nV = {st['vocab']} (EOS = {st['eos']}), L ≤ {st['length']}, "
               f"K = {st['group_size']}, P = {st['prompts']}, off-policy: {st['off_policy']}, "
               f"{st['groups_per_point']} groups × {st['points']} points")
    print_table(["target", "coefficient", "per point"], audit.table_rows(), title=f"pgmath audit {args.target}",
                caption=caption, fmt=args.format)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(audit.as_json(), f, indent=1)
    return 0
