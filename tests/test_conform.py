"""``pgmath conform``: the table, the JSON records, the exit codes (0 all conform, 1 any does not,
2 library missing), and the adapters of the installed libraries (each skipped when its library is
not installed)."""

import functools
import json
import types

import pytest
import torch

from pgmath.cli import main
from pgmath.llm import policy_loss
from pgmath.testing import conform as conform_mod
from pgmath.testing.adapters import LIBRARIES, Entry, load

KEYS = {"library", "version", "function", "check", "settings", "conforms", "diagnosis"}


def _fake(entries):
    def entries_fn():
        if isinstance(entries, Exception):
            raise entries
        return entries

    return types.SimpleNamespace(DISTRIBUTION="pgmath", entries=entries_fn)


@pytest.fixture
def fake_library(monkeypatch):
    def install(entries):
        monkeypatch.setattr(conform_mod, "load", lambda library: _fake(entries))

    return install


def test_all_conform_exits_0_and_writes_the_records(fake_library, tmp_path, capsys):
    fake_library([Entry("pgmath.llm.policy_loss", "check_policy_loss", {"objective": "cispo"},
                        functools.partial(policy_loss, objective="cispo"))])
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    assert main(["conform", "verl", "--max-examples", "5", "--json", str(out), "--markdown", str(md)]) == 0
    records = json.loads(out.read_text())
    assert len(records) == 1 and set(records[0]) == KEYS and records[0]["conforms"] is True
    assert "conforms" in capsys.readouterr().out and "| function |" in md.read_text()


def test_a_non_conforming_function_exits_1_with_its_diagnosis(fake_library, tmp_path):
    fake_library([Entry("grpo_loss", "check_policy_loss", {"objective": "ppo"},
                        functools.partial(policy_loss, aggregation="seq-mean-token-mean"))])
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    assert main(["conform", "trl", "--max-examples", "10", "--json", str(out), "--markdown", str(md)]) == 1
    (rec,) = json.loads(out.read_text())
    assert rec["conforms"] is False and "aggregation='seq-mean-token-mean'" in rec["diagnosis"]
    assert "```text" in md.read_text()  # the full message, with the counterexample


def test_a_crashing_adapter_is_null_not_false(fake_library, tmp_path):
    def broken(*a):
        raise RuntimeError("adapter bug")

    fake_library([Entry("f", "check_policy_loss", {"objective": "nope"}, broken)])
    out = tmp_path / "r.json"
    assert main(["conform", "rlax", "--max-examples", "2", "--json", str(out)]) == 1
    assert json.loads(out.read_text())[0]["conforms"] is None


def test_missing_library_exits_2(fake_library, capsys):
    fake_library(ImportError("No module named 'verl'"))
    assert main(["conform", "verl"]) == 2
    assert "not installed" in capsys.readouterr().err


def test_constant_gradient_is_rerun_detached(fake_library, tmp_path):
    def leaky(lp, old, adv, m):  # the same value, but a gradient flows into the advantages
        loss, _ = policy_loss(lp, old, adv.detach(), m)
        extra = (adv.nan_to_num() * m).sum()
        return loss + extra - extra.detach()

    fake_library([Entry("leaky", "check_policy_loss", {}, leaky)])
    out = tmp_path / "r.json"
    assert main(["conform", "verl", "--max-examples", "5", "--json", str(out)]) == 1
    (rec,) = json.loads(out.read_text())
    assert rec["diagnosis"].startswith("does not detach advantages") and "with constants detached it conforms" in rec["diagnosis"]


def test_unknown_library_is_refused_by_name():
    with pytest.raises(ValueError, match="library"):
        load("nope")


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_installed_library_has_entries(library):
    mod = load(library)
    try:
        entries = mod.entries()
    except ImportError:
        pytest.skip(f"{library} is not installed")
    assert entries and all(e.bridge and e.check.startswith("check_") for e in entries)


@pytest.mark.parametrize("library", ["rlax", "sb3"])
def test_libraries_that_conform(library):
    try:
        records = conform_mod.conform(library, max_examples=5)
    except ImportError:
        pytest.skip(f"{library} is not installed")
    assert all(r.conforms for r in records), [(r.function, r.diagnosis) for r in records]


def test_verl_findings_are_named():
    """Two of verl's documented conventions, named by the family search: low_var_kl clamps each
    token's k3 to [−10, 10]; the vanilla loss divides seq-mean-token-sum-norm by the padded width."""
    try:
        entries = load("verl").entries()
    except ImportError:
        pytest.skip("verl is not installed")
    kl = next(e for e in entries if e.check == "check_kl_penalty" and e.settings["estimator"] == "k3")
    with pytest.raises(AssertionError, match=r"clamped to \[−10, 10\]"):
        kl.run(max_examples=20, constants_require_grad=False)
    norm = next(e for e in entries if e.settings.get("aggregation") == "seq-mean-token-sum-norm")
    with pytest.raises(AssertionError, match="normalizer = L, the padded width"):
        norm.run(max_examples=20, constants_require_grad=False)


def test_offpolicy_checks_run_on_rlax_through_conform():
    """V-trace and Retrace of rlax through ``pgmath conform``: they conform; the λ-mixed advantage
    bootstrap of vtrace_td_error_and_advantage is reported as a convention difference."""
    try:
        entries = [e for e in load("rlax").entries() if e.check in ("check_vtrace", "check_retrace")]
    except ImportError:
        pytest.skip("rlax is not installed")
    assert {e.function for e in entries} == {"rlax.vtrace", "rlax.vtrace_td_error_and_advantage",
                                            "rlax.retrace_continuous", "rlax.retrace"}
    records = {e.function: conform_mod.run_entry(e, "rlax", None, 5) for e in entries}
    assert all(r.conforms for r in records.values()), {f: r.diagnosis for f, r in records.items()}
    assert "convention difference" in records["rlax.vtrace_td_error_and_advantage"].diagnosis
    assert "convention difference" not in records["rlax.vtrace"].diagnosis  # it returns no advantages


def test_offpolicy_check_runs_on_torchrl_through_conform():
    """TorchRL's vtrace_advantage_estimate through ``pgmath conform``: it runs; where it disagrees
    at float64 the diagnosis is its float32 discount (γ·(~done).int()), not a formula error."""
    try:
        (entry,) = [e for e in load("torchrl").entries() if e.check == "check_vtrace"]
    except ImportError:
        pytest.skip("torchrl is not installed")
    rec = conform_mod.run_entry(entry, "torchrl", None, 20)
    assert rec.conforms is not None, rec.diagnosis
    if not rec.conforms:
        assert "γ rounded to float32" in rec.diagnosis, rec.message
    entry.run(max_examples=20, dtype=torch.float32)  # judged in float32: conforms
