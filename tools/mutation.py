"""Mutation testing of the core formula modules with mutmut (not run in CI).

Usage::

    nice -n 15 python tools/mutation.py pgmath/losses.py            # run one module
    python tools/mutation.py pgmath/losses.py --report-only         # re-read a finished run
    python tools/mutation.py --list                                  # modules and their tests
    python tools/mutation.py pgmath/kl.py --recheck tests/test_kl_faults.py  # new tests vs survivors

Each module is mutated in its own copy of the repository (``--workdir``, default
``/tmp/pgmath-mutation/<module>``), so the working tree is never touched and modules can be run
one after another. The copy's ``pyproject.toml`` gets a ``[tool.mutmut]`` section naming the
module and the tests that exercise it; mutmut (3.x) then runs, per mutant, only the tests whose
run reached the mutated function.

The score excludes *message-text* mutants: mutants whose only change is a string constant inside
a ``raise`` statement (the text of an error message, which no test pins on purpose). Equivalent
mutants are listed by hand in ``docs/mutation.md`` with a one-line reason each; this script
prints every survivor with its diff so they can be sorted.

Score = (killed + timeout) / (tested mutants that change behaviour − equivalent), per module;
mutants an interrupted run did not reach are counted as "not run", never in the score.
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
_SPEC_TESTS = ["tests/test_specs.py", "tests/test_dtypes.py"]
MODULE_TESTS: dict[str, list[str]] = {
    "pgmath/returns.py": ["tests/test_returns.py", "tests/test_returns_faults.py", *_SPEC_TESTS],
    "pgmath/advantages.py": ["tests/test_advantages.py", "tests/test_advantages_faults.py",
                             *_SPEC_TESTS],
    "pgmath/losses.py": ["tests/test_losses.py", "tests/test_losses_faults.py", *_SPEC_TESTS],
    "pgmath/kl.py": ["tests/test_kl.py", "tests/test_kl_faults.py", *_SPEC_TESTS],
    "pgmath/distributions.py": ["tests/test_distributions.py", "tests/test_distributions_faults.py",
                                *_SPEC_TESTS],
    "pgmath/llm/aggregate.py": ["tests/test_llm_functions.py", "tests/test_llm_aggregate_faults.py",
                                *_SPEC_TESTS],
    "pgmath/llm/advantages.py": ["tests/test_llm_functions.py",
                                 "tests/test_llm_advantages_faults.py", *_SPEC_TESTS],
    "pgmath/mdp/tabular.py": [
        "tests/test_mdp_tabular.py",
        "tests/test_mdp_tabular_faults.py",
        "tests/test_mdp_validation.py",
        "tests/test_mdp_canonical.py",
    ],
}

# The specs whose tests in tests/test_specs.py and tests/test_dtypes.py exercise each module:
# the whole spec suite is far too slow per mutant on 2 cores, so those two files are narrowed
# with ``-k`` (other test files are not affected by the expression).
MODULE_SPECS: dict[str, list[str]] = {
    "pgmath/returns.py": ["discounted_returns", "td_errors", "lambda_returns", "gae"],
    "pgmath/advantages.py": ["gae", "lambda_returns", "normalize_advantages"],
    "pgmath/losses.py": ["masked_mean", "policy_gradient_loss", "ppo_clip_loss", "value_loss"],
    "pgmath/kl.py": ["kl_categorical", "kl_k1", "kl_k2", "kl_k3"],
    "pgmath/distributions.py": ["categorical_log_prob", "categorical_entropy",
                                "gaussian_log_prob", "gaussian_entropy"],
    "pgmath/llm/aggregate.py": ["aggregation_weights", "aggregate_token_loss"],
    "pgmath/llm/advantages.py": ["rloo_advantages", "token_rewards", "batch_normalized_returns",
                                 "group_advantages", "token_gae"],
    "pgmath/mdp/tabular.py": [],
}

# Survivors judged equivalent (cannot change behaviour), mutant key -> one-line reason; listed
# in docs/mutation.md too. Keys are mutmut's (stable while the module's source is unchanged).
_T = "pgmath.mdp.tabular."
_CPU = "device=None is the default device, the CPU: equivalent on a CPU-only run (CUDA tests skip)"
_FALSY = "finite=None is falsy like finite=False"
_ZERO_DIM = "a 0-dim tensor never changes torch.where's result dtype (same category): dtype=None ok"
_NO_OP_TO = ("`.to(None)` is a no-op (accumulation_dtype(None) is None) and torch's CPU sum/mean of "
             "float16/bfloat16 already accumulates in float32: the same value")
EQUIVALENT: dict[str, str] = {
    "pgmath.kl.x_kl_categorical__mutmut_3": _FALSY,
    "pgmath.kl.x_kl_categorical__mutmut_12": _FALSY,
    "pgmath.kl.x_kl_categorical__mutmut_65": _ZERO_DIM,
    "pgmath.kl.x_kl_categorical__mutmut_68": _ZERO_DIM,
    "pgmath.kl.x_kl_categorical__mutmut_66": _CPU,
    "pgmath.kl.x_kl_categorical__mutmut_69": _CPU,
    "pgmath.kl.x_kl_categorical__mutmut_84": _NO_OP_TO,
    "pgmath.kl.x_kl_categorical__mutmut_85": _NO_OP_TO,
    "pgmath.kl.x_kl_categorical__mutmut_97": _NO_OP_TO,
    # mdp/tabular.py
    **{f"{_T}x__as_tensor__mutmut_{i}": _CPU for i in (6, 8, 17, 20)},
    **{f"{_T}xǁTabularMDPǁ__init____mutmut_{i}": _CPU for i in (9, 20, 67, 95, 126, 129, 135)},
    **{f"{_T}xǁTabularMDPǁ_scatter__mutmut_{i}": _CPU for i in (4, 7)},
    **{f"{_T}xǁTabularMDPǁ_system__mutmut_{i}": _CPU for i in (23, 26)},
    **{f"{_T}xǁTabularMDPǁto__mutmut_{i}": _CPU for i in (7, 14, 16)},
    **{f"{_T}xǁTabularMDPǁwith_gamma__mutmut_{i}": _CPU for i in (7, 14)},
    f"{_T}xǁTabularMDPǁ_system__mutmut_22": "eye in float32 (default dtype) minus γ P_nn in the "
        "MDP's float64: float32's 0/1 are exact and promote, the same matrix",
    f"{_T}xǁTabularMDPǁ_system__mutmut_25": "as _system__mutmut_22 (eye without dtype)",
    **{k: "einsum subscripts in upper case name the same axes" for k in (
        f"{_T}xǁTabularMDPǁ_softmax_theorem_gradient__mutmut_43", f"{_T}xǁTabularMDPǁ_system__mutmut_10",
        f"{_T}xǁTabularMDPǁaction_values__mutmut_12", f"{_T}xǁTabularMDPǁadvantages__mutmut_13",
        f"{_T}xǁTabularMDPǁtransition_matrix__mutmut_10")},
    **{k: "sum(+1) = sum(-1) on the validated [S, A] tables" for k in (
        f"{_T}xǁTabularMDPǁexpected_rewards__mutmut_5", f"{_T}xǁTabularMDPǁ_system__mutmut_14")},
    **{f"{_T}xǁTabularMDPǁexact_policy_gradient__mutmut_{i}":
       "swaps the two exact methods (theorem ↔ autograd): the same gradient up to round-off, "
       "which is what the check of the two against each other relies on"
       for i in (50, 51, 52, 97, 98, 99)},
    f"{_T}x__validate_distribution_rows__mutmut_10":
        "x > 2 + tol: rows must also sum to 1 with no entry below −tol, so an entry above 1 + tol "
        "is refused by the sum check",
    **{f"{_T}x__validate_distribution_rows__mutmut_{i}": "< ↔ <= at the slack: differs only for "
       "a value exactly at the (irrational) slack" for i in (6, 8, 20)},
    f"{_T}xǁTabularMDPǁ__init____mutmut_157": "> ↔ >= at the slack (as above)",
    **{f"{_T}xǁTabularMDPǁ_validate_terminates__mutmut_{i}": "edge weights' dtype: the "
       "breadth-first search reads only the sparsity pattern" for i in (32, 34)},
    f"{_T}xǁTabularMDPǁ_validate_terminates__mutmut_45": "one extra never-read entry in `reached`",
    f"{_T}xǁTabularMDPǁ_validate_terminates__mutmut_50": "return_predecessors=None is falsy",
    f"{_T}xǁTabularMDPǁ_validate_terminates__mutmut_53": "directed=True is scipy's default",
    # distributions.py
    "pgmath.distributions.x__masked_log_softmax__mutmut_3": _FALSY,
    "pgmath.distributions.x__masked_log_softmax__mutmut_62": _ZERO_DIM,
    "pgmath.distributions.x__masked_log_softmax__mutmut_66": _ZERO_DIM,
    "pgmath.distributions.x__masked_log_softmax__mutmut_63": _CPU,
    "pgmath.distributions.x__masked_log_softmax__mutmut_67": _CPU,
    "pgmath.distributions.x__masked_log_softmax__mutmut_70": "float('-INF') is float('-inf')",
    # llm/aggregate.py
    **{f"pgmath.llm.aggregate.x_aggregate_token_loss__mutmut_{i}": r for i, r in (
        (5, _FALSY), (58, _ZERO_DIM), (61, _ZERO_DIM), (59, _CPU), (62, _CPU),
        (65, "safe.to(None) * w: a float16/bfloat16 tensor times the float32 weights promotes "
             "to float32 anyway"),
        *((i, "the weights in float64 instead of float32 (for float32/half losses): only less "
              "round-off before the cast to the loss dtype") for i in (30, 31, 37)))},
    **{f"pgmath.llm.aggregate.x_aggregation_weights__mutmut_{i}":
       "`explicit` None instead of False/True: only read where validate_positive has already "
       "refused a zero denominator (the branch is unreachable, as its comment says)"
       for i in (29, 46, 47, 107, 108)},
    "pgmath.llm.aggregate.x_aggregation_weights__mutmut_92":
        "lengths >= 0: an empty row gets row scale 1 instead of 0, but its mask row is all zero, "
        "so its weights stay 0",
    # llm/advantages.py
    **{f"pgmath.llm.advantages.x_last_token_index__mutmut_{i}": _CPU for i in (8, 10)},
    **{f"pgmath.llm.advantages.x_token_rewards__mutmut_{i}": _CPU for i in (21, 24, 30, 32, 56, 59)},
    **{f"pgmath.llm.advantages.x_token_rewards__mutmut_{i}": _ZERO_DIM for i in (55, 58)},
    **{f"pgmath.llm.advantages.x__compact__mutmut_{i}": _CPU for i in (6, 8)},
    **{f"pgmath.llm.advantages.x_batch_normalized_returns__mutmut_{i}": _CPU for i in (37, 40)},
    **{f"pgmath.llm.advantages.x_batch_normalized_returns__mutmut_{i}": _ZERO_DIM for i in (36, 39)},
    **{f"pgmath.llm.advantages.x_token_gae__mutmut_{i}": _CPU for i in (42, 45, 78, 80)},
    **{f"pgmath.llm.advantages.x_token_gae__mutmut_{i}": _ZERO_DIM for i in (41, 44)},
    "pgmath.llm.advantages.x__validate_token_tensor__mutmut_4": _FALSY,
    "pgmath.llm.advantages.x__compact__mutmut_35":
        "n = 2 instead of 1 when every response has one token: one extra all-zero step that the "
        "scatter (indexed by the one-column idx) never writes back",
    "pgmath.llm.advantages.x_token_gae__mutmut_60":
        "values not cast to the rewards' dtype first: float32 → float64 promotion in the "
        "arithmetic is exact, the same numbers",
    **{f"pgmath.llm.advantages.x_token_gae__mutmut_{i}": _CPU for i in (111, 113)},
    "pgmath.llm.advantages.x_token_gae__mutmut_103": "torch.cat's default dim is 0",
    **{f"pgmath.llm.advantages.x_token_gae__mutmut_{i}":
       "the compacted steps after a response's last token have zero reward and value: cutting "
       "the episode at the last token or at a later step gives the same advantages"
       for i in (115, 116)},
    **{f"pgmath.llm.advantages.x_rloo_advantages__mutmut_{i}":
       "the constant-group flag from a global max (or min): a group whose min equals the global "
       "max is constant anyway, and a constant group's shifted, centred rewards are exactly 0"
       for i in (18, 20, 25, 27)},
    "pgmath.llm.advantages.x_rloo_advantages_reference__mutmut_10":
        "a group is constant iff every value equals r[g, 1] (K >= 2) as iff it equals r[g, 0]",
    "pgmath.llm.advantages.x_group_advantages_reference__mutmut_16":
        "a group is constant iff every value equals vals[1] (K >= 2) as iff it equals vals[0]",
    "pgmath.llm.advantages.x_token_gae__mutmut_82":
        "valid also at step = length: that step reads a masked-out position (reward and value "
        "zeroed), follows the episode's termination, and is scattered to a masked-out position "
        "that the final where zeroes",
    # returns.py
    "pgmath.returns.x_discounted_returns__mutmut_8": _FALSY,
    **{f"pgmath.returns.x_discounted_returns__mutmut_{i}": "finite=True: NaN/inf refused up front "
       "instead of just before the scan, with the same ValueError naming the argument"
       for i in (13, 17)},
    **{f"pgmath.returns.x_discounted_returns__mutmut_{i}": "never selects the numba kernel: the "
       "torch scan gives the same returns (the backends are checked equal)" for i in (56, 57)},
    "pgmath.returns.x_discounted_returns__mutmut_89": "next_values not cast to float32 first: "
        "float16 → float32 promotion in the sum is exact",
    "pgmath.losses.x_masked_mean__mutmut_3": _FALSY,
    "pgmath.losses.x_masked_mean__mutmut_12": _NO_OP_TO,
    "pgmath.losses.x_masked_mean__mutmut_13": _NO_OP_TO,
    "pgmath.losses.x__zero_masked__mutmut_10": _ZERO_DIM,
    "pgmath.losses.x__zero_masked__mutmut_13": _ZERO_DIM,
    "pgmath.losses.x__zero_masked__mutmut_11": _CPU,
    "pgmath.losses.x__zero_masked__mutmut_14": _CPU,
    "pgmath.losses.x_value_loss__mutmut_33":
        "old_values not zeroed where masked out: those entries reach only positions that "
        "masked_mean drops with a where (value and gradient 0 there), so a NaN cannot leak",
    "pgmath.losses.x_ppo_clip_loss__mutmut_115":
        "dual clip with Â <= 0 instead of < 0: at Â = 0 the objective is forced to 0 and 0 < c·0 "
        "is false either way",
    # advantages.py
    **{f"pgmath.advantages.x_gae__mutmut_{i}": (
        "finite= of the early rollout check: gae checks all three tensors with one "
        "validate_all_finite call right after (same ValueError naming the tensor)") for i in (11, 19, 20)},
    "pgmath.advantages.x__validate_gae__mutmut_22": (
        "finite dropped from the early rollout check: gae checks finiteness right after "
        "(validate_all_finite, same ValueError)"),
    **{f"pgmath.advantages.x_gae__mutmut_{i}": (
        "pick_backend sees one tensor fewer: all three are validated to one device and dtype, "
        "so the choice is the same") for i in (66, 68)},
    **{f"pgmath.advantages.x_gae__mutmut_{i}": (
        "the numba kernel is never picked: the torch path gives the same numbers (tested "
        "against each other), only slower") for i in (70, 71)},
    **{f"pgmath.advantages.x_gae__mutmut_{i}": (
        "one of r, V, V' not upcast: arithmetic with the other two (compute dtype) promotes it "
        "exactly (its values are representable there)") for i in (96, 97, 98)},
    "pgmath.advantages.x_gae_reference__mutmut_44": (
        "the reference's last-step branch only resets a carry that is already 0 at t = T − 1"),
    "pgmath.advantages.x_lambda_returns__mutmut_19": (
        "backend not passed on: every backend gives the same numbers (tested), only speed differs"),
    "pgmath.advantages.x_normalize_advantages__mutmut_4": _FALSY,
    "pgmath.losses.x_ppo_clip_loss__mutmut_135":
        "(dual_clip or 1.0): only reached with dual_clip None, where the dual mask is all false "
        "and the value is never selected",
}

# Mutants that only change the text of an error message built outside the ``raise`` statement
# (the classifier sees only strings inside it): counted as message text, like those.
MESSAGE_TEXT: set[str] = {
    *(f"{_T}xǁTabularMDPǁ_validate_terminates__mutmut_{i}" for i in (70, 71, 73, 74, 75)),
    *(f"{_T}xǁTabularMDPǁvalidate_policy__mutmut_{i}" for i in (12, 18, 19)),
}

COPY = ["pgmath", "proofs", "tests", "pyproject.toml", "README.md", "docs", "CHANGELOG.md",
        "mkdocs.yml", "pytest_pgmath.py"]
# Copied into mutmut's own tree (``mutants/``, where the tests run): tests that read the docs
# (tests/test_specs.py::test_spec_links_resolve checks each spec's doc page) need them there, and
# the pytest plugin (an entry point of the installed package) must import from there too.
ALSO_COPY = ["docs", "README.md", "CHANGELOG.md", "mkdocs.yml", "pytest_pgmath.py"]


# Appended to the copy's tests/conftest.py: derandomized, fewer examples and NO shrinking. A
# mutant that a property test catches otherwise spends minutes shrinking its counterexample
# (on 2 shared cores most such mutants then ended as timeouts); the first failing example is
# all mutation testing needs.
HYPOTHESIS_PROFILE = """

# --- added by tools/mutation.py (mutation-testing copy only) ---
from hypothesis import Phase as _Phase  # noqa: E402

settings.register_profile(
    "mutation",
    derandomize=True,
    max_examples=30,
    deadline=None,
    database=None,
    phases=[_Phase.explicit, _Phase.reuse, _Phase.generate],
    suppress_health_check=list(HealthCheck),
)
settings.load_profile("mutation")
"""


def _selection(module: str, tests: list[str]) -> list[str]:
    """pytest arguments: the test files, and a -k narrowing the spec test files to the module's specs."""
    specs = MODULE_SPECS.get(module, [])
    spec_files = [t for t in tests if t in _SPEC_TESTS]
    if not spec_files:
        return list(tests)
    if not specs:
        return [t for t in tests if t not in _SPEC_TESTS]
    # a test of another file matches "not test_specs and not test_dtypes" (its module name)
    others = " and ".join(f"not {pathlib_stem(t)}" for t in spec_files)
    return [*tests, "-k", f"({others}) or " + " or ".join(specs)]


def pathlib_stem(path: str) -> str:
    return Path(path).stem


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in items) + "]"


def _mutmut_section(module: str, tests: list[str]) -> str:
    lines = [
        "",
        "[tool.mutmut]",
        'source_paths = ["pgmath"]',
        f'only_mutate = ["{module}"]',
        f"also_copy = {_toml_list(ALSO_COPY)}",
        f"pytest_add_cli_args_test_selection = {_toml_list(_selection(module, tests))}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-p", "no:randomly"]',
        'process_isolation = "forkserver"',
        # CPU-time limit per mutant = (expected test time + 1 s) * multiplier * 2 (mutmut 3.8)
        "timeout_multiplier = 5.0",
        "",
    ]
    return "\n".join(lines)


def prepare(module: str, workdir: Path, tests: list[str] | None = None,
            drop: list[str] | None = None) -> None:
    """Copy the repository into ``workdir`` and configure mutmut for ``module``.

    ``proofs/`` is also copied to ``pgmath/proofs`` (the package the editable install maps it
    to): mutmut's tests import ``pgmath`` from its ``mutants/`` copy, where the editable
    install's mapping of ``pgmath.proofs`` does not apply. ``drop`` removes paths from the copy
    (e.g. another engineer's half-written spec module that breaks test collection).
    """
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
    shutil.copytree(ROOT / "proofs", workdir / "pgmath" / "proofs", ignore=ignore)
    for rel in drop or []:
        target = workdir / rel
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    with (workdir / "tests" / "conftest.py").open("a") as f:
        f.write(HYPOTHESIS_PROFILE)
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
    # PYTHONPATH: the editable install's finder would otherwise import the unmutated /work
    # tree; CI: the derandomized hypothesis profile (the same examples for every mutant); one
    # thread per test process: on a shared machine torch's idle intra-op threads spin and burn
    # CPU time, which mutmut's CPU-time limit then reports as a timeout
    env = _pytest_env(workdir)
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    return subprocess.call(cmd, cwd=workdir, env=env)


def _pytest_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(workdir / "mutants")
    env["CI"] = "true"
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    return env


def recheck(workdir: Path, module: str, test_files: list[str]) -> dict[str, int]:
    """Run ``test_files`` (copied from the working tree) against every survivor of a finished run.

    For tests written after the run: each survivor is activated with mutmut's
    ``MUTANT_UNDER_TEST`` in the run's own ``mutants/`` tree and the files are run with ``-x``;
    exit code 1 (a test failed) kills it. The files must pass with no mutant active first.
    The exit codes are stored in ``<workdir>/recheck.json`` and merged by :func:`results`.
    """
    for rel in [*test_files, "pytest_pgmath.py"]:
        for dest in (workdir / rel, workdir / "mutants" / rel):
            shutil.copy2(ROOT / rel, dest)
    env = _pytest_env(workdir)
    cmd = [sys.executable, "-m", "pytest", *test_files, "-x", "-q", "-p", "no:cacheprovider",
           "-p", "no:randomly"]

    def run_with(mutant: str) -> int:
        return subprocess.call(cmd, cwd=workdir / "mutants", stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**env, "MUTANT_UNDER_TEST": mutant})

    if run_with("none") != 0:
        raise SystemExit(f"{test_files} fail without a mutant: fix them first")
    path = workdir / "recheck.json"
    done: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    for key in results(workdir, module)["survived"]:  # over the survivors not yet rechecked
        if key in done or key in EQUIVALENT:  # resumes an interrupted recheck
            continue
        done[key] = run_with(key)
        path.write_text(json.dumps(done, indent=1))
    return done


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

        def visit_JoinedStr(self, n: ast.JoinedStr) -> ast.AST:  # an f-string message
            if self.in_raise:
                return ast.copy_location(ast.Constant(value=""), n)
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
    out = {"module": module, "killed": [], "timeout": [], "survived": [], "message": [],
           "not_run": [], "other": []}
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
        if is_message or key in MESSAGE_TEXT:
            out["message"].append(key)
        elif code is None:  # an interrupted run: not tested yet
            out["not_run"].append(key)
        elif code in (1, 3):  # killed by a failing test
            out["killed"].append(key)
        elif code in (36, -24, 24, 152):  # killed by mutmut's CPU-time limit
            out["timeout"].append(key)
        elif code == 0:
            out["survived"].append(key)
        else:
            out["other"].append((key, code))
    rechecked = workdir / "recheck.json"
    if rechecked.exists():  # survivors killed by tests written after the run (see recheck)
        codes = json.loads(rechecked.read_text())
        out["killed_by_recheck"] = [k for k in out["survived"] if codes.get(k) == 1]
        out["survived"] = [k for k in out["survived"] if codes.get(k) != 1]
        out["killed"] += out["killed_by_recheck"]
    out["diffs"] = {k: diffs.get(k, "") for k in out["survived"]}
    return out


def report(res: dict) -> str:
    """Score = (killed + timeout) / (killed + timeout + survived − equivalent), tested mutants only."""
    equivalent = sum(k in EQUIVALENT for k in res["survived"])
    killed, timeout, survived = len(res["killed"]), len(res["timeout"]), len(res["survived"])
    behaviour = killed + timeout + survived
    score = (killed + timeout) / max(behaviour - equivalent, 1)
    lines = [
        f"{res['module']}: killed {killed}, timeout {timeout}, survived {survived}, message-text "
        f"{len(res['message'])}, not run {len(res['not_run'])}, other {len(res['other'])}"
        f"{', of the killed by the recheck ' + str(len(res['killed_by_recheck'])) if res.get('killed_by_recheck') else ''}; "
        f"score {100 * score:.1f} %"
        + (f" (with {equivalent} equivalent excluded)" if equivalent else ""),
    ]
    for key in res["survived"]:
        if key in EQUIVALENT:
            lines.append(f"  EQUIVALENT {key}: {EQUIVALENT[key]}")
            lines.extend("      " + d for d in res["diffs"][key].splitlines())
            continue
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
    parser.add_argument("--recheck", nargs="+", default=None, metavar="TEST_FILE",
                        help="after a finished run: run these test files against its survivors")
    parser.add_argument("--drop", nargs="+", default=None,
                        help="paths to remove from the copy (files that break test collection)")
    args = parser.parse_args(argv)
    if args.list or not args.module:
        for module, tests in MODULE_TESTS.items():
            print(module, "<-", " ".join(tests))
        return 0
    if args.module not in MODULE_TESTS:
        parser.error(f"module must be one of {sorted(MODULE_TESTS)}")
    workdir = args.workdir or Path("/tmp/pgmath-mutation") / args.module.replace("/", "_")
    if args.recheck:
        recheck(workdir, args.module, args.recheck)
    elif not args.report_only:
        prepare(args.module, workdir, args.tests, args.drop)
        run(workdir, args.max_children)
    res = results(workdir, args.module)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
