"""Core knows no language and reads no component's params by name: components answer for themselves.

A static check of the engine's source (``core/`` and ``registry/``, outside
``core/components/``, where the built-in components live). It looks at code,
not prose: docstrings, comments and words inside messages are not read.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = [REPO / "core", REPO / "registry"]
COMPONENTS = REPO / "core" / "components"

#: ISO 639-1 codes of the shipped plugins' languages and of a few others; a string
#: constant equal to one of them is core choosing by language ("th", "pt", "es" are left out:
#: an HTML tag, PyTorch tensors, a plural ending)
LANGUAGE_CODES = {"ja", "fi", "zh", "en", "ko", "de", "fr", "ru", "ar", "hi", "vi", "sv"}

#: Where core may name a language, and why.
ALLOWED_LANGUAGES = {
    # The one source core converts is LibreOffice's help, written in English and translated
    # from it: untranslated paragraphs are found against it, and the cached pairs files key the
    # original text by "en" (a field of the cache format, not a choice of language).
    ("core/data/samples.py", "en"),
    ("core/evaluation/offline_data.py", "en"),
}

#: Component param names core once read by name (issue 10); no string constant may be one of
#: them where it indexes a component reference's params
PARAM_SUFFIX = "_steps"


def engine_files() -> list[Path]:
    return sorted(p for root in ENGINE for p in root.rglob("*.py") if COMPONENTS not in p.parents)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constants that are docstrings (of the module, classes and functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _is_params(node: ast.AST) -> bool:
    """``<something>.params`` or ``<something>.Params.model_fields``: a component's params."""
    if isinstance(node, ast.Attribute) and node.attr == "params":
        # ``plan.params`` is the plan's own parameter counts ("total", "layers"), not a component's params
        receiver = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        return receiver != "plan"
    return isinstance(node, ast.Attribute) and node.attr == "model_fields" and (
        isinstance(node.value, ast.Attribute) and node.value.attr == "Params")


def findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(REPO).as_posix()
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                and node.value in LANGUAGE_CODES and (rel, node.value) not in ALLOWED_LANGUAGES):
            found.append(f"{where}: language code {node.value!r}")
        # params["x"], params.get("x"): reading a component's param by name
        if isinstance(node, ast.Subscript) and _is_params(node.value) and isinstance(node.slice, ast.Constant):
            found.append(f"{where}: reads the param {node.slice.value!r} by name")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and _is_params(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)):
            found.append(f"{where}: reads the param {node.args[0].value!r} by name")
        # "x" in Params.model_fields / params: telling a component by the names of its params
        if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant)
                and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
                and any(_is_params(c) for c in node.comparators)):
            found.append(f"{where}: looks for the param {node.left.value!r} by name")
        # a naming convention among params ("every *_steps param scales with the steps")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"endswith", "startswith"} and node.args
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == PARAM_SUFFIX):
            found.append(f"{where}: a param naming convention ({node.args[0].value!r})")
    return found


def test_core_names_no_language_and_reads_no_param_by_name():
    files = engine_files()
    assert len(files) > 30  # the walk found the engine
    found = [f for path in files for f in findings(path)]
    assert found == [], "\n".join(found)


def test_the_check_finds_what_it_looks_for(tmp_path):
    """The check itself can fail: each pattern it refuses, in a throw-away module."""
    bad = tmp_path / "core" / "bad.py"
    bad.parent.mkdir()
    bad.write_text('"""Docstring naming ja is fine."""\n'
                   'SEGMENTERS = {"ja": 1}\n'
                   'v = recipe.tokenizer.params.get("vocab_size")\n'
                   's = ref.params["decay_start_stage"]\n'
                   't = "vocab_size" in cls.Params.model_fields\n'
                   'u = [k for k in ref.params if k.endswith("_steps")]\n', encoding="utf-8")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        got = findings(bad)
    finally:
        REPO = saved
    assert sorted(g.split(": ", 1)[1] for g in got) == sorted([
        "language code 'ja'", "reads the param 'vocab_size' by name", "reads the param 'decay_start_stage' by name",
        "looks for the param 'vocab_size' by name", "a param naming convention ('_steps')"])
