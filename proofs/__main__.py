"""``python -m proofs [-v] [--json PATH] [KEY ...]``: run the proofs, print one table, exit 1 if any fails."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import traceback
from collections.abc import Sequence

from pgmath.optional import extra_error

try:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
except ImportError as exc:
    raise extra_error("proofs", "python -m pgmath.proofs", exc) from exc

from . import PROOFS, run_proof


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proofs", description=__doc__)
    parser.add_argument("keys", nargs="*", help="run only these proofs (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every claim")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    known = {s.key for s in PROOFS}
    unknown = [k for k in args.keys if k not in known]
    if unknown:
        parser.error(f"unknown proof(s) {unknown}; known: {sorted(known)}")
    specs = [s for s in PROOFS if not args.keys or s.key in args.keys]

    console = Console()
    if not console.is_terminal:  # piped / captured output: do not squeeze the table into 80 columns
        console = Console(width=160)
    table = Table(title="pgmath proofs (sympy)")
    for col in ("proof", "statement", "result", "claims", "seconds", "file"):
        table.add_column(col)
    failed = 0
    records = []
    for spec in specs:
        try:
            result, seconds = run_proof(spec)
        except Exception as exc:  # a crashing proof is a failing proof, with its cause shown
            failed += 1
            records.append({"key": spec.key, "file": spec.path, "passed": False, "error": repr(exc)})
            table.add_row(spec.key, "", "[red]ERROR[/]", escape(f"{type(exc).__name__}: {exc}"), "", spec.path)
            if args.verbose:
                console.print(traceback.format_exc())
            continue
        failed += not result.passed
        records.append(
            {
                "key": spec.key,
                "file": spec.path,
                "name": result.name,
                "statement": result.statement,
                "passed": result.passed,
                "seconds": round(seconds, 3),
                "claims": [{"statement": c.statement, "passed": c.passed, "details": c.details} for c in result.claims],
            }
        )
        table.add_row(
            escape(result.name),
            escape(result.statement),
            "[green]proven[/]" if result.passed else "[red]FAILED[/]",
            escape(result.summary),
            f"{seconds:.2f}",
            spec.path,
        )
        if args.verbose or not result.passed:
            console.print(f"[bold]{escape(result.name)}[/] ({escape(result.method)})\n{escape(result.details)}\n")
    console.print(table)
    console.print(f"{len(specs) - failed}/{len(specs)} proofs passed")
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
