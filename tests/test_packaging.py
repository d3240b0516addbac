"""pgmath in other people's environments: a lean core, extras that name themselves, a pytest
plugin that costs nothing until used, gymnasium ids registered on import, scalars of any kind.

Most checks run a fresh Python process (``subprocess``) so that what this test session has
already imported cannot hide a missing import. Optional packages are hidden from that process by
a ``sys.meta_path`` finder (:data:`BLOCKER`), which is how "installed without the extra" is
simulated here; ``.ci/wheel.sh`` does it for real (a fresh venv with only torch and the wheel).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import pgmath
from pgmath.optional import EXTRAS, extra_error, missing, require

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("hypothesis", "gymnasium", "scipy", "matplotlib", "rich", "tqdm", "transformers",
            "sympy", "pytest")

#: Prepended to a subprocess' code: hide the packages named in BLOCKED from every import.
BLOCKER = textwrap.dedent("""
    import sys

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
""")


def run_python(code: str, blocked: tuple[str, ...] = (), cwd: Path | None = None,
               env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    prelude = f"BLOCKED = {set(blocked)!r}\n" + BLOCKER if blocked else ""
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


# ---------------------------------------------------------------------------------------------
# The core install and the extras


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    out = set()
    for req in requirements:
        name = req.strip().split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        out.add(name.strip().lower())
    return out


def test_core_requirements_are_torch_numpy_numba():
    assert _names(_pyproject()["project"]["dependencies"]) == {"torch", "numpy", "numba"}


def test_extras_of_pyproject_match_pgmath_optional():
    extras = _pyproject()["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert _names(extras[extra]) == set(modules), extra  # import names == distribution names
    for needed in ("testing", "mdp", "agents", "proofs", "plots", "llm", "all"):
        assert needed in extras
    everything = "".join(extras["all"])
    assert all(extra in everything for extra in EXTRAS), "pgmath[all] must include every extra"


def test_core_runs_gae_with_every_optional_package_missing():
    proc = run_python("""
        import sys
        import torch
        import pgmath
        from pgmath.scan import numba_available
        r = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
        f = torch.zeros(7, 3, dtype=torch.bool)
        a = pgmath.gae(r, r, r, f, f, gamma=0.9, lam=0.95)
        b = pgmath.gae_reference(r, r, r, f, f, gamma=0.9, lam=0.95)
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
        hidden = {"hypothesis", "gymnasium", "scipy", "matplotlib", "rich", "tqdm", "sympy"}
        print(numba_available(), sorted(hidden & {m.split(".")[0] for m in sys.modules}))
    """, blocked=OPTIONAL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "[]"]


def test_pure_torch_fallback_when_numba_is_missing():
    proc = run_python("""
        import torch
        import pgmath
        from pgmath.scan import numba_available
        r = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        f = torch.rand(50, 4, generator=torch.Generator().manual_seed(1)) < 0.1
        a = pgmath.gae(r, r, r, f, f, gamma=0.9, lam=0.95)
        b = pgmath.gae_reference(r, r, r, f, f, gamma=0.9, lam=0.95)
        print(numba_available(), float((a - b).abs().max()))
    """, blocked=(*OPTIONAL, "numba"))
    assert proc.returncode == 0, proc.stderr
    have, err = proc.stdout.split()
    assert have == "False" and float(err) < 1e-12


@pytest.mark.parametrize(("module", "blocked", "extra"), [
    ("pgmath.testing", "hypothesis", "testing"),
    ("pgmath.agents", "gymnasium", "agents"),
    ("pgmath.mdp.envs", "gymnasium", "mdp"),
    ("pgmath.estimators", "scipy", "stats"),
    ("pgmath.stats", "scipy", "stats"),
    ("pgmath.proofs", "sympy", "proofs"),
    ("pgmath.proofs.__main__", "rich", "proofs"),
])
def test_a_missing_extra_is_named(module, blocked, extra):
    proc = run_python(f"""
        try:
            import {module}
        except ImportError as exc:
            print(type(exc).__name__, exc.name, "|", exc)
        else:
            print("imported")
    """, blocked=(blocked,))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out.startswith(f"ModuleNotFoundError {blocked} |"), out
    assert f"pip install 'pgmath[{extra}]'" in out and module.removesuffix(".__main__") in out


def test_mdp_imports_without_gymnasium_and_plots_name_their_extra(tmp_path):
    proc = run_python("""
        import pgmath.mdp
        assert not hasattr(pgmath.mdp, "envs")  # nothing to register with
        print(pgmath.mdp.short_corridor().num_states)
    """, blocked=("gymnasium",))
    assert proc.returncode == 0 and proc.stdout.strip() == "4", proc.stderr
    proc = run_python(f"""
        from pgmath.agents.logger import plot_learning_curve
        plot_learning_curve({str(tmp_path / "episodes.csv")!r}, {str(tmp_path / "curve.png")!r})
    """, blocked=("matplotlib",))
    assert "plotting needs matplotlib, which is not installed: pip install 'pgmath[plots]'" in proc.stderr


def test_the_cli_names_the_extras_of_commands_it_cannot_offer():
    proc = run_python("""
        import sys
        from pgmath import cli
        sys.exit(cli.main(sys.argv[1:] or ["check", "gae", "x:y"]))
    """, blocked=("hypothesis", "gymnasium"))
    assert proc.returncode == 2
    assert "pgmath.testing.cli: pgmath.testing needs hypothesis" in proc.stderr
    assert "pip install 'pgmath[testing]'" in proc.stderr
    assert "pip install 'pgmath[agents]'" in proc.stderr


def test_verify_of_an_area_whose_extra_is_missing_exits_2_naming_it():
    proc = run_python("""
        import sys
        from pgmath import cli
        sys.exit(cli.main(["verify", "--area", "estimators", "--quick"]))
    """, blocked=("scipy",))
    assert proc.returncode == 2
    assert "pgmath verify: pgmath.estimators needs scipy" in proc.stderr
    assert "pip install 'pgmath[stats]'" in proc.stderr


def test_optional_helpers():
    assert missing("torch", "no_such_module_pgmath") == ["no_such_module_pgmath"]
    require("torch", extra="testing", feature="x")  # present: nothing happens
    with pytest.raises(ModuleNotFoundError, match=r"x needs no_such_module_pgmath, which is not "
                       r"installed: pip install 'pgmath\[plots\]'"):
        require("no_such_module_pgmath", extra="plots", feature="x")
    with pytest.raises(ValueError, match="extra must be one of"):
        extra_error("no-such-extra", "x")


def test_wheel_contents(tmp_path):
    """``pip wheel .`` builds a wheel holding pgmath, pgmath.proofs and the thin plugin only,
    with the lean requirements and both entry points."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("pgmath-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        eps = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"pgmath", "pytest_pgmath.py"}
    assert "pgmath/proofs/__main__.py" in names and "pgmath/py.typed" in names
    core = [line for line in meta.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert _names([line.split(":", 1)[1] for line in core]) == {"torch", "numpy", "numba"}
    assert "pgmath = pytest_pgmath" in eps and "pgmath = pgmath.cli:main" in eps


# ---------------------------------------------------------------------------------------------
# The pytest plugin: free until a fixture is used


def test_loading_the_plugin_imports_nothing_heavy():
    proc = run_python("""
        import sys
        import pytest
        before = set(sys.modules)
        import pytest_pgmath
        print(" ".join(sorted(set(sys.modules) - before)))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["pytest_pgmath"]


UNRELATED_TEST = """
import json, sys

def test_unrelated(request):
    mods = sorted({m.split(".")[0] for m in sys.modules})
    plugins = sorted(name for name, p in request.config.pluginmanager.list_name_plugin() if p)
    with open(request.config.rootpath / "modules.json", "w") as f:
        json.dump({"modules": mods, "plugins": plugins}, f)
"""


def _unrelated_run(tmp_path: Path, *args: str, env: dict | None = None) -> dict:
    (tmp_path / "unrelated.py").write_text(UNRELATED_TEST)  # run by name (a "test_*.py" name
    (tmp_path / "pytest.ini").write_text("[pytest]\n")          # here would read as a reference)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args,
                           "unrelated.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tmp_path / "modules.json").read_text())


def test_an_unrelated_pytest_run_imports_nothing_more_with_the_plugin(tmp_path):
    """The plugin is loaded (entry point ``pgmath``), and the only module it adds to an unrelated
    run is itself: no torch, hypothesis or pgmath (the start-up cost, measured in
    docs/testing/index.md, is the import of one small module)."""
    with_plugin = _unrelated_run(tmp_path)
    without = _unrelated_run(tmp_path, "-p", "no:pgmath")
    assert "pgmath" in with_plugin["plugins"] and "pgmath" not in without["plugins"]
    assert set(with_plugin["modules"]) - set(without["modules"]) == {"pytest_pgmath"}
    assert not {"torch", "pgmath", "hypothesis"} & set(with_plugin["modules"])


def test_fixtures_work_without_p_and_with_p_pgmath_when_autoload_is_off(tmp_path):
    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        import pgmath

        def test_gae(check_gae, pgmath_mutants):
            report = check_gae(pgmath.gae)
            assert report.examples >= 1
            assert len(pgmath_mutants) > 10
    """))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "mine.py",
            "--pgmath-max-examples", "3"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {**__import__("os").environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([*args, "-p", "pgmath"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # autoload off and no -p: the fixture does not exist (the check above can fail)
    proc = subprocess.run(args[:-2], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0 and "fixture 'check_gae' not found" in proc.stdout


# ---------------------------------------------------------------------------------------------
# gymnasium ids registered by importing pgmath.mdp


def test_import_pgmath_mdp_registers_the_gymnasium_ids():
    pytest.importorskip("gymnasium")
    proc = run_python("""
        import gymnasium
        import pgmath.mdp
        env = gymnasium.make("pgmath/ShortCorridor-v0")
        obs, info = env.reset(seed=0)
        print(obs, sorted(i for i in gymnasium.registry if i.startswith("pgmath/")))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("0 ['pgmath/GridWorld-v0', 'pgmath/ShortCorridor-v0', "
                                   "'pgmath/Tabular-v0']")


# ---------------------------------------------------------------------------------------------
# Numeric scalars of any kind; None where a tensor is required


def _rollout():
    g = torch.Generator().manual_seed(0)
    r, v, nv = (torch.randn(6, 2, generator=g) for _ in range(3))
    f = torch.zeros(6, 2, dtype=torch.bool)
    return r, v, nv, f


@pytest.mark.parametrize("gamma", [0.9, np.float32(0.9), np.float64(0.9), np.float16(0.9),
                                   np.array(0.9), torch.tensor(0.9), torch.tensor(0.9, dtype=torch.float64)])
def test_any_real_scalar_is_accepted(gamma):
    r, v, nv, f = _rollout()
    want = pgmath.gae(r, v, nv, f, f, gamma=float(gamma), lam=0.95)
    got = pgmath.gae(r, v, nv, f, f, gamma=gamma, lam=np.float32(0.95))
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(pgmath.td_errors(r, v, nv, f, gamma=gamma),
                               pgmath.td_errors(r, v, nv, f, gamma=float(gamma)))
    assert pgmath.discounted_returns(r, f, f, gamma=np.int64(1)).shape == r.shape


@pytest.mark.parametrize("gamma", [True, np.bool_(True), None, "0.9", 0.9j, np.array([0.9, 0.9]),
                                   torch.tensor([0.9, 0.9]), torch.tensor(True), float("nan")])
def test_a_non_real_scalar_is_refused_by_name(gamma):
    r, v, nv, f = _rollout()
    with pytest.raises(ValueError, match="gamma"):
        pgmath.gae(r, v, nv, f, f, gamma=gamma, lam=0.95)


@pytest.mark.parametrize(("fn", "argument"), [
    (lambda r, v, nv, f: pgmath.gae(r, v, nv, f, None, gamma=0.9, lam=0.9), "truncated"),
    (lambda r, v, nv, f: pgmath.gae(r, v, nv, None, f, gamma=0.9, lam=0.9), "terminated"),
    (lambda r, v, nv, f: pgmath.gae_reference(r, v, nv, f, None, gamma=0.9, lam=0.9), "truncated"),
    (lambda r, v, nv, f: pgmath.lambda_returns(r, v, nv, f, None, gamma=0.9, lam=0.9), "truncated"),
    (lambda r, v, nv, f: pgmath.discounted_returns(r, f, None, gamma=0.9), "truncated"),
    (lambda r, v, nv, f: pgmath.discounted_returns_reference(r, f, None, gamma=0.9), "truncated"),
    (lambda r, v, nv, f: pgmath.discounted_returns(None, f, f, gamma=0.9), "rewards"),
    (lambda r, v, nv, f: pgmath.td_errors(r, None, nv, f, gamma=0.9), "values"),
    (lambda r, v, nv, f: pgmath.td_errors(r, v, None, f, gamma=0.9), "next_values"),
])
def test_none_where_a_tensor_is_required_is_a_value_error_naming_it(fn, argument):
    with pytest.raises(ValueError, match=argument):
        fn(*_rollout())


def test_optional_next_values_may_still_be_none():
    r, _, _, f = _rollout()
    torch.testing.assert_close(pgmath.discounted_returns(r, f, f, gamma=0.9, next_values=None),
                               pgmath.discounted_returns_reference(r, f, f, gamma=0.9))
