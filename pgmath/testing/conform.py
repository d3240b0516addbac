"""``pgmath conform LIBRARY``: run every applicable check on an installed library's functions.

::

    pgmath conform verl --json verl.json --markdown verl.md
    pgmath conform all --max-examples 20

Prints one table — function, check, settings, verdict, diagnosis — for the entries of
:mod:`pgmath.testing.adapters` ``.<library>``. ``--json FILE`` writes a list of records with the
keys ``library``, ``version``, ``function``, ``check``, ``settings``, ``conforms`` (true, false, or
null when the check could not run) and ``diagnosis``; ``--markdown FILE`` writes the table and,
for each non-conformance, the check's full message (the counterexample, expected and actual
values and gradients). Exit status: 0 when every entry conforms, 1 when any does not (or could
not run), 2 when the library is not installed.

A check that fails only because a constant input (old log-probs, advantages, the reference
log-probs) receives a gradient is run again with that input detached, and the diagnosis says both:
the library does not detach it (harmless in a pipeline where it never requires grad), and what
the rest of the check found.

Checked by: ``tests/test_conform.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pgmath.testing.adapters import LIBRARIES, Entry, library_version, load

__all__ = ["Record", "add_commands", "conform", "markdown_report", "run_entry", "text_table"]

_CONSTANT = "must be treated as a constant"
_DETACHABLE = {"check_policy_loss", "check_kl_penalty"}


@dataclass
class Record:
    """One row of the report (``as_json`` gives the JSON record)."""

    library: str
    version: str | None
    function: str
    check: str
    settings: dict[str, Any]
    conforms: bool | None
    diagnosis: str
    message: str = ""  # the check's full message (markdown only)
    bridge: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"library": self.library, "version": self.version, "function": self.function, "check": self.check,
                "settings": self.settings, "conforms": self.conforms, "diagnosis": self.diagnosis}


def _summary(message: str) -> str:
    """The diagnosis line of a check's message, else its first problem line (indented by two
    spaces), else its first line."""
    lines = message.split("\n")
    for line in lines:
        if line.startswith(("Your output matches", "Your output reproduces")):
            return line
    if "'every token masked'" in lines[0] or "no response token" in lines[0]:
        return ("a batch with every token masked gives a non-finite value (0/0) instead of an exception "
                "or a finite value (every other input conforms: this edge case runs last)")
    for line in lines[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            return line.strip()
    return lines[0]


def _jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)) for k, v in settings.items()}


def run_entry(entry: Entry, library: str, version: str | None, max_examples: int) -> Record:
    """Run one entry's check; never raises (a crash of the adapter is ``conforms=None``)."""
    rec = Record(library, version, entry.function, entry.check, _jsonable(dict(entry.settings)), None, "",
                 bridge=entry.bridge)
    t0 = time.perf_counter()
    try:
        report = entry.run(max_examples=max_examples)
        rec.conforms, rec.notes = True, list(getattr(report, "notes", ()))
        rec.diagnosis = "; ".join(rec.notes)
    except AssertionError as exc:
        rec.conforms, rec.message = False, str(exc)
        rec.diagnosis = _summary(rec.message)
        if _CONSTANT in rec.message and entry.check in _DETACHABLE:
            rec.diagnosis = _detached_rerun(entry, rec.message, max_examples)
    except Exception as exc:  # the adapter or the library could not run the check
        rec.conforms, rec.diagnosis = None, f"could not run: {type(exc).__name__}: {exc}"
    rec.seconds = time.perf_counter() - t0
    return rec


def _detached_rerun(entry: Entry, message: str, max_examples: int) -> str:
    names = sorted({w for w in ("old_log_probs", "advantages", "ref_log_probs") if f"∂/∂{w}" in message
                    or f"∂loss/∂{w}" in message or f"∂penalty/∂{w}" in message})
    head = (f"does not detach {', '.join(names) or 'a constant input'} (a gradient flows into it; harmless only "
            "where it never requires grad)")
    try:
        entry.run(max_examples=max_examples, constants_require_grad=False)
        return head + "; with constants detached it conforms"
    except AssertionError as exc:
        return head + "; with constants detached: " + _summary(str(exc))


def conform(library: str, *, max_examples: int = 30) -> list[Record]:
    """Every entry of ``library``'s adapter, run (``ImportError`` when the library is missing)."""
    mod = load(library)
    entries = mod.entries()
    version = library_version(mod.DISTRIBUTION)
    return [run_entry(e, library, version, max_examples) for e in entries]


def _verdict(c: bool | None) -> str:
    return {True: "conforms", False: "DOES NOT CONFORM", None: "could not run"}[c]


def _settings_text(s: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in s.items())


def text_table(records: list[Record]) -> str:
    """The table printed on the terminal."""
    rows = [("function", "check", "settings", "verdict", "diagnosis")]
    rows += [(r.function.split(".")[-1], r.check, _settings_text(r.settings), _verdict(r.conforms), r.diagnosis)
             for r in records]
    widths = [min(max(len(row[i]) for row in rows), w) for i, w in enumerate((48, 26, 70, 16, 400))]
    out = []
    for row in rows:
        cells = [c if len(c) <= w else c[: w - 1] + "…" for c, w in zip(row, widths)]
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    return "\n".join(out)


def markdown_report(records: list[Record]) -> str:
    """The table as Markdown, then each non-conformance's full message."""
    lines = ["| function | check | settings | verdict | diagnosis |", "|---|---|---|---|---|"]
    for r in records:
        cells = [f"`{r.function}`", f"`{r.check}`", _settings_text(r.settings), _verdict(r.conforms), r.diagnosis]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    for r in records:
        if r.conforms is False:
            lines += ["", f"#### `{r.function}` — `{r.check}({_settings_text(r.settings)})`", "",
                      f"Adapter: {r.bridge}", "", "```text", r.message, "```"]
    return "\n".join(lines) + "\n"


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "conform", help="run every applicable pgmath check on an installed RL library",
        description="Checks the public functions of LIBRARY (through pgmath.testing.adapters) against pgmath's "
                    "references; exit 0 when all conform, 1 when any does not, 2 when the library is missing.")
    p.add_argument("library", choices=(*LIBRARIES, "all"), help="the library ('all': every installed one)")
    p.add_argument("--json", metavar="FILE", default=None, help="write the records as JSON")
    p.add_argument("--markdown", metavar="FILE", default=None, help="write the table and messages as Markdown")
    p.add_argument("--max-examples", type=int, default=30, help="property-based examples per check (default 30)")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    libraries = LIBRARIES if args.library == "all" else (args.library,)
    records: list[Record] = []
    missing = []
    for lib in libraries:
        try:
            recs = conform(lib, max_examples=args.max_examples)
        except ImportError as exc:
            missing.append(lib)
            print(f"pgmath conform: {lib} is not installed ({exc})", file=sys.stderr)
            continue
        version = recs[0].version if recs else library_version(load(lib).DISTRIBUTION)
        print(f"\n{lib} {version}: {sum(r.conforms is True for r in recs)}/{len(recs)} conform")
        print(text_table(recs))
        records += recs
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([r.as_json() for r in records], f, indent=1)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown_report(records))
    if missing and (args.library != "all" or not records):
        return 2
    return 0 if all(r.conforms is True for r in records) else 1
