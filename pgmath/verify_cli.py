"""``pgmath verify``: run every formula check and estimator test, print one table.

Exit status 0 when every check passes, 1 when any fails. With ``--out DIR`` a JSON report
(``verify-report.json``, carrying the pgmath version) and the suites' PNG plots are written there.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pgmath import __version__
from pgmath.verification import (
    SUITES,
    SUITES_BY_AREA,
    RowResult,
    VerifyContext,
    collect_rows,
    run_row,
    write_suite_artifacts,
)

__all__ = ["add_commands", "run_verify"]


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="run every formula check and estimator test and print a table",
        description="Run every formula check, proof and estimator test; exit non-zero if any fails.",
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--samples", type=int, default=None, help="Monte-Carlo sample size override")
    p.add_argument("--seed", type=int, default=0, help="base seed of every check (default: 0)")
    p.add_argument("--quick", action="store_true", help="smaller samples, for a fast smoke run")
    p.add_argument("--out", type=pathlib.Path, default=None, help="write a JSON report and plots here")
    p.add_argument(
        "--area",
        action="append",
        default=None,
        help=f"run only these areas ({', '.join(SUITES_BY_AREA)}); repeatable",
    )
    p.set_defaults(func=_main)


def _suites_for(areas: list[str] | None) -> tuple[str, ...]:
    if not areas:
        return SUITES
    unknown = [a for a in areas if a not in SUITES_BY_AREA]
    if unknown:
        raise SystemExit(f"pgmath verify: unknown area(s) {unknown}; choose from {list(SUITES_BY_AREA)}")
    return tuple(SUITES_BY_AREA[a] for a in areas)


def run_verify(ctx: VerifyContext, suites: tuple[str, ...] = SUITES, console: Console | None = None) -> list[RowResult]:
    """Run the checks of ``suites`` with a progress bar; return their results."""
    console = console or Console(stderr=True)
    checks = collect_rows(ctx, suites)
    results: list[RowResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("verifying", total=len(checks))
        for check in checks:
            progress.update(task, description=f"{check.area}: {check.name}")
            results.append(run_row(check, ctx))
            progress.advance(task)
    return results


def _table(results: list[RowResult], ctx: VerifyContext) -> Table:
    n_ok = sum(r.passed for r in results)
    table = Table(
        title=f"pgmath {__version__} verify — device {ctx.device}, seed {ctx.seed}"
        + (", quick" if ctx.quick else ""),
        caption=f"{n_ok}/{len(results)} checks passed",
    )
    for col in ("area", "formula / estimator", "check", "statistic", "verdict"):
        table.add_column(col, overflow="fold")
    for r in results:
        verdict = "[green]PASS[/green]" if r.passed else "[bold red]FAIL[/bold red]"
        table.add_row(escape(r.area), escape(r.name), escape(r.check), escape(r.statistic), verdict)
    return table


def _main(args: argparse.Namespace) -> int:
    try:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA is not available")
    except RuntimeError as exc:
        print(f"pgmath verify: cannot use device {args.device!r}: {exc}", file=sys.stderr)
        return 2
    if args.samples is not None and args.samples <= 0:
        print("pgmath verify: --samples must be positive", file=sys.stderr)
        return 2
    ctx = VerifyContext(device=device, samples=args.samples, seed=args.seed, quick=args.quick)
    suites = _suites_for(args.area)
    console = Console()
    t0 = time.perf_counter()
    results = run_verify(ctx, suites, Console(stderr=True))
    console.print(_table(results, ctx))
    for r in results:
        if r.error:
            console.print(f"[red]{escape(r.area)} / {escape(r.name)} / {escape(r.check)}: {escape(r.error)}[/red]")
    elapsed = time.perf_counter() - t0
    if args.out is not None:
        out: pathlib.Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        artifacts = [str(p) for p in write_suite_artifacts(ctx, out, suites)]
        report = {
            "pgmath_version": __version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "seed": ctx.seed,
            "quick": ctx.quick,
            "samples": ctx.samples,
            "seconds": round(elapsed, 2),
            "passed": all(r.passed for r in results),
            "results": [r.to_json() for r in results],
            "artifacts": artifacts,
        }
        (out / "verify-report.json").write_text(json.dumps(report, indent=2, default=str))
        console.print(f"report: {out / 'verify-report.json'}; {len(artifacts)} artifact(s)")
    failed = [r for r in results if not r.passed]
    console.print(
        f"pgmath {__version__}: {len(results) - len(failed)} passed, {len(failed)} failed "
        f"in {elapsed:.1f} s"
    )
    return 1 if failed else 0
