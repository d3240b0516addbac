"""``pgmath verify``: run every formula check and estimator test, print one table.

Exit status 0 when every check passes, 1 when any fails, 2 when it cannot run (a bad option, or
an optional dependency of a suite missing: the message names the extra to install). With
``--out DIR`` a JSON report (``verify-report.json``, carrying the pgmath version) and the suites'
PNG plots are written there. The table is printed by :mod:`pgmath.tables`: a rich table in a
terminal (when rich is installed), complete plain text when piped; ``--format`` picks one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import platform
import sys
import time
from typing import IO

import torch

from pgmath import __version__
from pgmath.tables import add_format_argument, print_table
from pgmath.verification import (
    SUITES,
    SUITES_BY_AREA,
    RowResult,
    VerifyContext,
    collect_rows,
    run_row,
    write_suite_artifacts,
)

__all__ = ["COLUMNS", "add_commands", "print_results", "run_verify"]


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
    add_format_argument(p)
    p.set_defaults(func=_main)


def _suites_for(areas: list[str] | None) -> tuple[str, ...]:
    if not areas:
        return SUITES
    unknown = [a for a in areas if a not in SUITES_BY_AREA]
    if unknown:
        raise SystemExit(f"pgmath verify: unknown area(s) {unknown}; choose from {list(SUITES_BY_AREA)}")
    return tuple(SUITES_BY_AREA[a] for a in areas)


def run_verify(ctx: VerifyContext, suites: tuple[str, ...] = SUITES, console: object = None,
               *, progress: bool | None = None) -> list[RowResult]:
    """Run the checks of ``suites``; return their results.

    A progress bar is drawn on standard error when it is a terminal and rich is installed
    (``progress=None``), or as ``progress`` says; ``console`` is an optional rich console for it.
    """
    checks = collect_rows(ctx, suites)
    if progress is None:
        progress = sys.stderr.isatty() and importlib.util.find_spec("rich") is not None
    if not progress:
        return [run_row(check, ctx) for check in checks]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    results: list[RowResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verifying", total=len(checks))
        for check in checks:
            bar.update(task, description=f"{check.area}: {check.name}")
            results.append(run_row(check, ctx))
            bar.advance(task)
    return results


#: The columns of the verify table.
COLUMNS: tuple[str, ...] = ("area", "formula / estimator", "check", "statistic", "verdict")


def print_results(results: list[RowResult], ctx: VerifyContext, fmt: str = "auto",
                  file: IO[str] | None = None) -> None:
    """Print the verify table (one row per check, every cell in full) in ``fmt``."""
    n_ok = sum(r.passed for r in results)
    print_table(
        COLUMNS,
        [(r.area, r.name, r.check, r.statistic, "PASS" if r.passed else "FAIL") for r in results],
        title=f"pgmath {__version__} verify — device {ctx.device}, seed {ctx.seed}"
        + (", quick" if ctx.quick else ""),
        caption=f"{n_ok}/{len(results)} checks passed",
        fmt=fmt, file=file, color_column="verdict",
    )


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
    # with --format json, stdout carries the JSON document only; messages go to stderr
    log = sys.stderr if args.format == "json" else sys.stdout
    t0 = time.perf_counter()
    try:
        results = run_verify(ctx, suites)
    except ImportError as exc:  # an optional dependency of a suite is missing
        print(f"pgmath verify: {exc}", file=sys.stderr)
        return 2
    print_results(results, ctx, args.format)
    for r in results:
        if r.error:
            print(f"{r.area} / {r.name} / {r.check}: {r.error}", file=log)
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
        print(f"report: {out / 'verify-report.json'}; {len(artifacts)} artifact(s)", file=log)
    failed = [r for r in results if not r.passed]
    print(
        f"pgmath {__version__}: {len(results) - len(failed)} passed, {len(failed)} failed "
        f"in {elapsed:.1f} s", file=log,
    )
    return 1 if failed else 0
