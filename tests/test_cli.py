"""The ``pgmath`` command line: verify's table, exit status and JSON report."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import types

import pytest

import pgmath
from pgmath import cli, verification
from pgmath.verification import Outcome, VerifyRow


def test_verify_core_passes_and_writes_report(tmp_path, capsys):
    rc = cli.main(["verify", "--area", "core", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "PASS" in out and "FAIL" not in out
    assert f"pgmath {pgmath.__version__}" in out
    report = json.loads((tmp_path / "verify-report.json").read_text())
    assert report["pgmath_version"] == pgmath.__version__
    assert report["passed"] is True
    assert len(report["results"]) >= 15
    assert all(r["passed"] for r in report["results"])


def _fake_suite(passed: bool, raises: bool = False) -> types.ModuleType:
    mod = types.ModuleType("fake_suite")

    def fn(ctx):
        if raises:
            raise RuntimeError("boom")
        return Outcome(passed, "p = 0.5" if passed else "p = 1e-9")

    mod.rows = lambda ctx: [VerifyRow("fake", "a formula", "a check", fn)]
    return mod


@pytest.mark.parametrize(("passed", "raises", "rc"), [(True, False, 0), (False, False, 1), (True, True, 1)])
def test_verify_exit_status_follows_the_checks(monkeypatch, capsys, passed, raises, rc):
    monkeypatch.setitem(sys.modules, "fake_suite", _fake_suite(passed, raises))
    monkeypatch.setattr(verification, "SUITES", ("fake_suite",))
    from pgmath import verify_cli

    monkeypatch.setattr(verify_cli, "SUITES", ("fake_suite",))
    assert cli.main(["verify"]) == rc
    out = capsys.readouterr().out
    assert ("FAIL" in out) == (rc == 1)
    if raises:
        assert "boom" in out


def test_verify_rejects_bad_options(capsys):
    assert cli.main(["verify", "--device", "no-such-device"]) == 2
    assert cli.main(["verify", "--samples", "0"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["verify", "--area", "nonsense"])


def test_console_script_and_module_entry_points():
    out = subprocess.run([sys.executable, "-m", "pgmath", "--version"], capture_output=True, text=True, check=True)
    assert pgmath.__version__ in out.stdout
    helptext = subprocess.run([sys.executable, "-m", "pgmath", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("verify", "train"):
        assert command in helptext


def test_every_command_is_wired():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"verify", "train", "eval", "check"} <= set(sub.choices)
    train_sub = next(a for a in sub.choices["train"]._actions if a.dest == "algo")
    assert {"reinforce", "a2c", "ppo", "grpo-toy", "ppo-toy"} <= set(train_sub.choices)


# ---------------------------------------------------------------------------------------------
# Tables complete when the output is not a terminal (issue 15)


def _long_suite() -> types.ModuleType:
    """A suite whose statistic and check names are far wider than 80 columns."""
    mod = types.ModuleType("long_suite")
    stat = "bias = 2.0123456789e-05 ± 3.1e-06 " + "x" * 120 + " END"

    def fn(ctx):
        return Outcome(True, stat)

    mod.rows = lambda ctx: [VerifyRow("fake", "a formula " + "y" * 60, "a check " + "z" * 60, fn)]
    mod.STAT = stat
    return mod


@pytest.fixture
def long_suite(monkeypatch):
    mod = _long_suite()
    monkeypatch.setitem(sys.modules, "long_suite", mod)
    from pgmath import verify_cli

    monkeypatch.setattr(verify_cli, "SUITES", ("long_suite",))
    return mod


@pytest.mark.parametrize("fmt", ["auto", "plain", "markdown", "rich"])
def test_verify_table_is_complete_when_piped(long_suite, capsys, fmt):
    """capsys is not a terminal: every cell is printed in full, in every format (rich included,
    which would otherwise cut cells to 80 columns with "…")."""
    assert cli.main(["verify", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert long_suite.STAT in out and "…" not in out
    assert "PASS" in out and f"pgmath {pgmath.__version__} verify" in out
    if fmt == "markdown":
        assert "| area | formula / estimator | check | statistic | verdict |" in out


def test_verify_json_format_is_one_document(long_suite, capsys):
    assert cli.main(["verify", "--format", "json"]) == 0
    captured = capsys.readouterr()
    table = json.loads(captured.out)
    assert table["columns"] == ["area", "formula / estimator", "check", "statistic", "verdict"]
    assert table["rows"][0][3] == long_suite.STAT and table["rows"][0][4] == "PASS"
    assert "1 passed, 0 failed" in captured.err  # messages leave stdout to the JSON


def test_verify_piped_into_a_file_is_complete(tmp_path):
    """The real command, its stdout a file (as in a CI log)."""
    log = tmp_path / "verify.log"
    with log.open("w") as f:
        rc = subprocess.run([sys.executable, "-m", "pgmath", "verify", "--area", "core", "--quick"],
                            stdout=f, stderr=subprocess.PIPE, text=True, timeout=600).returncode
    assert rc == 0
    lines = log.read_text().splitlines()
    n_checks = int(next(x for x in lines if x.endswith("checks passed")).split("/")[1].split()[0])
    assert sum(line.endswith(" PASS") for line in lines) == n_checks
    assert max(len(line) for line in lines) > 80  # not squeezed into 80 columns


def test_render_table_formats():
    from pgmath.tables import print_table, render_table

    rows = [("a", "1.23456789e-10"), ("b|c", "x" * 200)]
    plain = render_table(("name", "value"), rows, title="T", caption="C")
    assert plain.splitlines()[0] == "T" and plain.splitlines()[-1] == "C"
    assert "x" * 200 in plain and "1.23456789e-10" in plain
    md = render_table(("name", "value"), rows, fmt="markdown")
    assert "| b\\|c |" in md and md.count("\n") == 3
    assert json.loads(render_table(("name", "value"), rows, fmt="json"))["rows"][1] == ["b|c", "x" * 200]
    with pytest.raises(ValueError, match="rows"):
        render_table(("name", "value"), [("only one cell",)])
    with pytest.raises(ValueError, match="fmt"):
        print_table(("a",), [("1",)], fmt="html")


def test_benchmark_table_is_complete_when_piped():
    root = pathlib.Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "gae.py"), "--sizes", "32x4", "--repeats", "1"],
        capture_output=True, text=True, timeout=600, cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("T x B"))
    row = lines[header + 2].split()
    assert row[0] == "32x4" and len(row) == 12 and "…" not in proc.stdout
    assert row[-1].endswith(tuple("0123456789"))  # the f64 error, in full (e.g. 2.2e-16)
