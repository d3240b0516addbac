"""The ``pgmath`` command line: verify's table, exit status and JSON report."""

from __future__ import annotations

import json
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
