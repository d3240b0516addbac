"""Mutation testing of the core formula modules with mutmut (not run in CI).

Usage::

    nice -n 15 python tools/mutation.py pgmath/losses.py            # run one module
    python tools/mutation.py pgmath/losses.py --report-only         # re-read a finished run
    python tools/mutation.py --list                                  # modules and their tests

Each module is mutated in its own copy of the repository (``--workdir``, default
``/tmp/pgmath-mutation/<module>``), so the working tree is never touched and modules can be run
one after another. The copy's ``pyproject.toml`` gets a ``[tool.mutmut]`` section naming the
module and the tests that exercise it; mutmut (3.x) then runs, per mutant, only the tests whose
run reached the mutated function.

The score excludes *message-text* mutants: mutants whose only change is a string constant inside
a ``raise`` statement (the text of an error message, which no test pins on purpose). Equivalent
mutants are listed by hand in ``docs/mutation.md`` with a one-line reason each; this script
prints every survivor with its diff so they can be sorted.

Score = (killed + timeout) / (mutants that change behaviour − equivalent), reported per module.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> tests that exercise it (mutmut narrows further to the tests that reach each function)
MODULE_TESTS: dict[str, list[str]] = {
    "pgmath/returns.py": ["tests/test_returns.py", "tests/test_specs.py", "tests/test_dtypes.py"],
    "pgmath/advantages.py": [
        "tests/test_advantages.py",
        "tests/test_specs.py",
        "tests/test_dtypes.py",
    ],
    "pgmath/losses.py": ["tests/test_losses.py", "tests/test_specs.py", "tests/test_dtypes.py"],
    "pgmath/kl.py": ["tests/test_kl.py", "tests/test_specs.py", "tests/test_dtypes.py"],
    "pgmath/distributions.py": [
        "tests/test_distributions.py",
        "tests/test_specs.py",
        "tests/test_dtypes.py",
    ],
    "pgmath/llm/aggregate.py": [
        "tests/test_llm_functions.py",
        "tests/test_specs.py",
        "tests/test_dtypes.py",
    ],
    "pgmath/llm/advantages.py": [
        "tests/test_llm_functions.py",
        "tests/test_specs.py",
        "tests/test_dtypes.py",
    ],
    "pgmath/mdp/tabular.py": [
        "tests/test_mdp_tabular.py",
        "tests/test_mdp_tabular_faults.py",
        "tests/test_mdp_validation.py",
        "tests/test_mdp_canonical.py",
    ],
}

COPY = ["pgmath", "proofs", "tests", "pyproject.toml", "README.md", "docs", "CHANGELOG.md"]


def _mutmut_section(module: str, tests: list[str]) -> str:
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["pgmath"]',
        f'only_mutate = ["{module}"]',
        "pytest_add_cli_args_test_selection = [" + ", ".join(f'"{t}"' for t in tests) + "]",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-p", "no:randomly"]',
        'process_isolation = "forkserver"',
        "",
    ]
    return "\n".join(lines)


def prepare(module: str, workdir: Path, tests: list[str] | None = None) -> None:
    """Copy the repository into ``workdir`` and configure mutmut for ``module``."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "mutants")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, workdir / name)
    tests = [t for t in (tests or MODULE_TESTS[module]) if (ROOT / t).exists()]
    pyproject = workdir / "pyproject.toml"
    # pytest's `pythonpath = ["."]` would put the unmutated copy first on sys.path
    text = "\n".join(
        line for line in pyproject.read_text().splitlines() if not line.startswith("pythonpath")
    )
    pyproject.write_text(text + "\n" + _mutmut_section(module, tests))


def run(workdir: Path, max_children: int) -> int:
    # created before mutmut starts: a PYTHONPATH entry that does not exist yet is cached by the
    # import system as "no finder" and the tests would then import the unmutated package
    (workdir / "mutants").mkdir(exist_ok=True)
    env = dict(os.environ)
    # the editable install's finder would otherwise import the unmutated /work tree
    env["PYTHONPATH"] = str(workdir / "mutants")
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    return subprocess.call(cmd, cwd=workdir, env=env)


# ---------------------------------------------------------------------------------------------
# reading the results


def _strip_raise_strings(node: ast.AST) -> ast.AST:
    """Blank every string (or None) constant inside a ``raise`` (error-message text)."""

    class Blank(ast.NodeTransformer):
        in_raise = 0

        def visit_Raise(self, n: ast.Raise) -> ast.AST:
            self.in_raise += 1
            self.generic_visit(n)
            self.in_raise -= 1
            return n

        def visit_Constant(self, n: ast.Constant) -> ast.AST:
            if self.in_raise and (n.value is None or isinstance(n.value, str)):
                return ast.copy_location(ast.Constant(value=""), n)
            return n

    return Blank().visit(node)


def _functions(mutated_source: str) -> dict[str, ast.AST]:
    tree = ast.parse(mutated_source)
    found: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
    return found


def _normalised(fn: ast.AST) -> str:
    clone = ast.parse(ast.unparse(fn)).body[0]
    clone.name = "f"  # type: ignore[attr-defined]
    return ast.dump(_strip_raise_strings(clone))


def _unparse_body(fn: ast.AST) -> list[str]:
    clone = ast.parse(ast.unparse(fn)).body[0]
    clone.name = "f"  # type: ignore[attr-defined]
    return ast.unparse(clone).splitlines()


def results(workdir: Path, module: str) -> dict:
    """Classify every mutant of ``module``: killed, survived, message-text, and the diffs."""
    import difflib

    meta = workdir / "mutants" / (module + ".meta")
    data = json.loads(meta.read_text())
    exit_codes: dict[str, int | None] = data["exit_code_by_key"]
    source = (workdir / "mutants" / module).read_text()
    fns = _functions(source)
    out = {"module": module, "killed": [], "survived": [], "message": [], "other": []}
    diffs: dict[str, str] = {}
    for key, code in sorted(exit_codes.items()):
        # key: pgmath.losses.x_fn__mutmut_3 or pgmath.losses.xǁClassǁmethod__mutmut_3
        fn_name = key.rsplit(".", 1)[-1]
        base = fn_name.rsplit("__mutmut_", 1)[0]
        mutant_fn = fns.get(fn_name)
        orig_fn = fns.get(base + "__mutmut_orig")
        is_message = False
        if mutant_fn is not None and orig_fn is not None:
            is_message = _normalised(mutant_fn) == _normalised(orig_fn)
            diffs[key] = "\n".join(
                line
                for line in difflib.unified_diff(
                    _unparse_body(orig_fn), _unparse_body(mutant_fn), lineterm="", n=0
                )
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            )
        if is_message:
            out["message"].append(key)
        elif code in (1, 3, 36, -24, 24, 152):  # killed by a failing test / timeout
            out["killed"].append(key)
        elif code == 0:
            out["survived"].append(key)
        else:
            out["other"].append((key, code))
    out["diffs"] = {k: diffs.get(k, "") for k in out["survived"]}
    return out


def report(res: dict, equivalent: int = 0) -> str:
    killed, survived = len(res["killed"]), len(res["survived"])
    behaviour = killed + survived
    score = killed / max(behaviour - equivalent, 1)
    lines = [
        f"{res['module']}: killed {killed}, survived {survived}, message-text {len(res['message'])}"
        f", other {len(res['other'])}; score {100 * score:.1f} %"
        + (f" (with {equivalent} equivalent excluded)" if equivalent else ""),
    ]
    for key in res["survived"]:
        lines.append(f"  SURVIVED {key}")
        lines.extend("      " + d for d in res["diffs"][key].splitlines())
    for key, code in res["other"]:
        lines.append(f"  OTHER {key} exit={code}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", nargs="?", help="e.g. pgmath/losses.py")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the classification here")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--tests", nargs="+", default=None,
                        help="override the module's test files (see docs/mutation.md)")
    args = parser.parse_args(argv)
    if args.list or not args.module:
        for module, tests in MODULE_TESTS.items():
            print(module, "<-", " ".join(tests))
        return 0
    if args.module not in MODULE_TESTS:
        parser.error(f"module must be one of {sorted(MODULE_TESTS)}")
    workdir = args.workdir or Path("/tmp/pgmath-mutation") / args.module.replace("/", "_")
    if not args.report_only:
        prepare(args.module, workdir, args.tests)
        run(workdir, args.max_children)
    res = results(workdir, args.module)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
