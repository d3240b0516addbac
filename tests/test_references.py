"""Every reference in the code and the docs resolves.

Checked in every Python file of ``pgmath/``, ``proofs/``, ``benchmarks/`` and ``tests/`` and in every
Markdown page of ``docs/`` (plus ``README.md``):

* test references — ``tests/test_x.py`` and ``tests/test_x.py::test_name`` (``test_name_*``: some
  test function starts with ``test_name_``) anywhere, and the bare ``test_name`` /
  ``test_name_*`` of a "Checked by:" paragraph, resolved against the test file named before them
  in that paragraph: the file exists and defines a matching test function; a backticked bare
  test name on a Markdown page must be a test of some file of ``tests/``;
* doc links — ``docs/….md`` paths cited anywhere, and the relative links of the Markdown pages
  (``[text](target)``, anchors stripped): the target exists;
* proof names — ``proofs/x.py`` and ``pgmath.proofs.x`` (``:fn``): the proof module exists (and
  defines ``fn``);
* module references — dotted ``pgmath.a.b`` names: a module of the source tree, or a name defined
  or imported at the top level of one (``pgmath.mdp.TabularMDP``);
* every spec's doc page and proof module exist.

References are read from the text (no imports), so the check also runs while a module is broken.
A file with references owned by someone else that are known to be stale is listed in
:data:`KNOWN_STALE` and marked ``xfail(strict=True)``: the mark fails as soon as it is fixed.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODE_DIRS = ("pgmath", "proofs", "benchmarks", "tests")

#: Files whose stale references belong to another owner, known today and to be fixed by the lead
#: (path -> what is stale). Each is an xfail(strict=True) case: once the file is fixed, its case
#: XPASSes, which fails, and the entry must be removed. (Empty now: the four found in pgmath/llm —
#: advantages.py, kl.py, model.py, oracle.py — were fixed by their owner.)
KNOWN_STALE: dict[str, str] = {}

TEST_REF = re.compile(r"(?<![\w/])(?:tests/)?(test_\w+\.py)(?:::(test_\w+\*?))?")
BARE_TEST = re.compile(r"(?<![\w/.:])(test_\w+\*?)(?![\w.(])")
DOC_PATH = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(?![\w/])")
MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PROOF_FILE = re.compile(r"(?<![\w/.])proofs/(\w+)\.py")
DOTTED = re.compile(r"(?<![\w./])(pgmath(?:\.\w+)+)(:\w+)?(?![\w/*-])")
#: Dotted names that are placeholders in prose, not references.
PLACEHOLDERS = {"pgmath.proofs.module", "pgmath.proofs.x"}
#: This file states stale references on purpose (the checker's own tests).
SELF = pathlib.Path(__file__).resolve()
CHECKED_BY = re.compile(r"Checked by:(.*?)(?:\n\s*\n|\"\"\"|$)", re.S)
MD_TEST_NAME = re.compile(r"`(?:::)?(test_\w+\*?)(?:\[[^\]`]*\])?`")


def _files() -> list[pathlib.Path]:
    out = []
    for d in CODE_DIRS:
        out += sorted((ROOT / d).rglob("*.py"))
    out += sorted((ROOT / "docs").rglob("*.md"))
    out.append(ROOT / "README.md")
    return [p for p in out if p.is_file() and "__pycache__" not in p.parts and p.resolve() != SELF]


def _rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


@functools.cache
def _test_functions(name: str) -> frozenset[str] | None:
    """Test function names defined in tests/<name> (at any depth), or None if the file is missing."""
    path = ROOT / "tests" / name
    if not path.is_file():
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(n.name for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test"))


def _test_problem(file: str, name: str | None) -> str | None:
    defined = _test_functions(file)
    if defined is None:
        return f"tests/{file} does not exist"
    if name is None:
        return None
    ok = any(f.startswith(name[:-1]) for f in defined) if name.endswith("*") else name in defined
    return None if ok else f"tests/{file} defines no test matching {name}"


def _any_test_defines(name: str) -> bool:
    return any(_test_problem(p.name, name) is None for p in sorted((ROOT / "tests").glob("test_*.py")))


def _md_test_names(text: str) -> list[str]:
    """Backticked bare test names of a Markdown page (```test_x```, ```::test_x[param]```): some
    test file defines them (pages often name the file once, in another paragraph)."""
    return [f"`{m.group(1)}` is not a test of any tests/ file" for m in MD_TEST_NAME.finditer(text)
            if not _any_test_defines(m.group(1))]


def _test_references(text: str) -> list[str]:
    problems = [p for m in TEST_REF.finditer(text) if (p := _test_problem(m.group(1), m.group(2)))]
    for para in CHECKED_BY.finditer(text):
        body = para.group(1)
        files = [(m.start(), m.group(1)) for m in TEST_REF.finditer(body)]
        for m in BARE_TEST.finditer(body):
            before = [f for pos, f in files if pos < m.start()]
            if m.group(1).endswith(".py") or body[max(0, m.start() - 2):m.start()] == "::":
                continue
            if not before:
                problems.append(f"Checked by: {m.group(1)} names no test file before it")
            elif problem := _test_problem(before[-1], m.group(1)):
                problems.append(f"Checked by: {problem}")
    return problems


def _doc_links(path: pathlib.Path, text: str) -> list[str]:
    problems = [f"{m.group(1)} does not exist" for m in DOC_PATH.finditer(text) if not (ROOT / m.group(1)).exists()]
    if path.suffix == ".md":
        for m in MD_LINK.finditer(text):
            target = m.group(1).split("#")[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
                continue  # anchor in the same page, URL, or site-absolute link
            if not (path.parent / target).resolve().exists():
                problems.append(f"link ({m.group(1)}) does not resolve")
    return problems


def _module_file(dotted: str) -> pathlib.Path | None:
    """The source file of module ``dotted`` (``pgmath.proofs`` lives in ``proofs/``), or None."""
    parts = dotted.split(".")
    base = ROOT / "proofs" if parts[:2] == ["pgmath", "proofs"] else ROOT / "pgmath"
    rest = parts[2:] if parts[:2] == ["pgmath", "proofs"] else parts[1:]
    stem = base.joinpath(*rest) if rest else base
    for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _top_level_names(module_file: pathlib.Path) -> frozenset[str]:
    """Names a module defines or imports at its top level (and its submodules' names)."""
    tree = ast.parse(module_file.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    if module_file.name == "__init__.py":
        names |= {p.stem for p in module_file.parent.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    return frozenset(names)


def _dotted_problem(dotted: str, fn: str | None) -> str | None:
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):  # longest module prefix first
        module = _module_file(".".join(parts[:k]))
        if module is None:
            continue
        attrs = parts[k:] + ([fn] if fn else [])
        if attrs and attrs[0] not in _top_level_names(module):
            return f"{dotted}{':' + fn if fn else ''}: {'.'.join(parts[:k])} has no {attrs[0]!r}"
        return None
    return f"{dotted}: no such module"


def _module_references(text: str) -> list[str]:
    problems = []
    for m in DOTTED.finditer(text):
        dotted = m.group(1)
        if dotted in PLACEHOLDERS or dotted.endswith("_") or text[m.end():m.end() + 1] == "*":
            continue  # a placeholder or a glob (pgmath.testing.check_*)
        if problem := _dotted_problem(dotted, m.group(2)[1:] if m.group(2) else None):
            problems.append(problem)
    return problems


def _proof_files(text: str) -> list[str]:
    return [f"proofs/{m.group(1)}.py does not exist" for m in PROOF_FILE.finditer(text)
            if not (ROOT / "proofs" / f"{m.group(1)}.py").is_file()]


def stale_references(path: pathlib.Path) -> list[str]:
    """Every reference of ``path`` that does not resolve, as ``"what: why"`` lines."""
    text = path.read_text(encoding="utf-8")
    found = _test_references(text) + _doc_links(path, text) + _proof_files(text) + _module_references(text)
    if path.suffix == ".md":
        found += _md_test_names(text)
    return sorted(set(found))


def _cases():
    for path in _files():
        rel = _rel(path)
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_STALE[rel])] if rel in KNOWN_STALE else []
        yield pytest.param(path, id=rel, marks=marks)


@pytest.mark.parametrize("path", list(_cases()))
def test_references_resolve(path):
    assert not stale_references(path), stale_references(path)


def test_known_stale_files_exist():
    missing = [f for f in KNOWN_STALE if not (ROOT / f).is_file()]
    assert not missing, missing


def test_spec_docs_and_proofs_exist():
    from pgmath.specs import SPECS

    problems = []
    for spec in SPECS.values():
        if not spec.doc or not (ROOT / spec.doc).is_file():
            problems.append(f"{spec.name}: doc {spec.doc!r}")
        if spec.proof is not None:
            module, _, fn = spec.proof.partition(":")
            if problem := _dotted_problem(module, fn or "prove"):
                problems.append(f"{spec.name}: proof {problem}")
    assert not problems, problems


# --- the checker itself can fail -------------------------------------------------------------


def test_the_checker_flags_each_kind_of_stale_reference(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Checked by: tests/test_specs.py::test_no_such_test, ``test_no_such_either_*``.\n\n"
        "See docs/no/such/page.md, [a link](missing.md), proofs/no_such_proof.py,\n"
        "`pgmath.no_such_module`, `pgmath.mdp.NoSuchName` and tests/test_no_such_file.py.\n"
        "A bare `test_not_defined_anywhere[case]`.\n",
        encoding="utf-8",
    )
    found = " | ".join(stale_references(page))
    for needle in ("test_no_such_test", "test_no_such_either_*", "docs/no/such/page.md", "(missing.md)",
                   "proofs/no_such_proof.py", "pgmath.no_such_module", "NoSuchName",
                   "tests/test_no_such_file.py", "test_not_defined_anywhere"):
        assert needle in found, (needle, found)


def test_the_checker_accepts_references_that_resolve(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Checked by: tests/test_specs.py::test_spec_links_resolve, ``test_reference_passes_*``.\n\n"
        "See docs/index.md, [a link](page.md#anchor), [site](https://example.org), proofs/gae.py,\n"
        "`pgmath.mdp.TabularMDP.state_values`, `pgmath.specs.mdp`, `pgmath.proofs.gae:prove`,\n"
        "`test_weights_match_hand_computation[gae]`.\n",
        encoding="utf-8",
    )
    assert stale_references(page) == []
