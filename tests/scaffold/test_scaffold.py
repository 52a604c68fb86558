"""``encoder-recipes new-plugin``: the package it writes, loaded as the host loads plugins.

The fast tests load the generated package through a real entry point (its
folder on ``sys.path``, an ``EntryPoint`` of the ``encoder_recipes`` group)
into fresh registries. The slow test does what an outside author does:
generate an English plugin, ``pip install -e`` it into this environment, list,
validate, run its own tests and train it at the smoke scale through the CLI,
then uninstall it.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from encoder_recipes import __version__
from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.registry import build_registries, default_registries
from encoder_recipes.scaffold import (
    ScaffoldError,
    add_new_plugin_parser,
    default_extends,
    is_unspaced,
    new_plugin,
    plugin_names,
)
from encoder_recipes.validation import load_recipe

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[2]
GENERATED = {
    "pyproject.toml",
    "README.md",
    ".gitignore",
    "{pkg}/__init__.py",
    "{pkg}/plugin.py",
    "{pkg}/segmenter.py",
    "{pkg}/probes.py",
    "{pkg}/recipes/{lang}_starter.yaml",
    "tests/test_plugin.py",
}


@pytest.fixture
def load_generated(monkeypatch):
    """load_generated(root, lang) -> registries with the generated plugin loaded from a real entry point."""
    imported: list[str] = []

    def load(root: Path, lang: str, plugin_name: str | None = None):
        names = plugin_names(lang, plugin_name=plugin_name)
        monkeypatch.syspath_prepend(str(root))
        imported.append(names.package)
        ep = md.EntryPoint(name=names.plugin_name, value=f"{names.package}.plugin", group="encoder_recipes")
        # this project's plugins and the generated one only: another installed plugin cannot interfere
        shipped = [e for e in md.entry_points(group="encoder_recipes")
                   if getattr(e, "dist", None) is not None and e.dist.metadata["Name"] == "encoder-recipes"]
        return build_registries(load_plugins([*shipped, ep], strict=True, disabled=()))

    yield load
    for name in [m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in imported)]:
        del sys.modules[name]


def test_writes_an_installable_package(tmp_path, registries):
    root = new_plugin("ko", dest=tmp_path, registries=registries)
    assert root == tmp_path / "encoder-recipes-ko"
    written = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert written == {f.format(pkg="encoder_recipes_ko", lang="ko") for f in GENERATED}
    for path in root.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")  # every generated module is valid Python


def test_pyproject_declares_the_entry_point_and_the_host(tmp_path, registries):
    root = new_plugin("ko", dest=tmp_path, registries=registries)
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "encoder-recipes-ko"
    assert project["project"]["entry-points"]["encoder_recipes"] == {"ko": "encoder_recipes_ko.plugin"}
    assert project["project"]["dependencies"] == [f"encoder-recipes>={__version__}"]
    assert project["tool"]["setuptools"]["packages"] == ["encoder_recipes_ko"]
    assert project["tool"]["setuptools"]["package-data"] == {"encoder_recipes_ko": ["recipes/*.yaml"]}


@pytest.mark.parametrize("lang", ["ko", "th"])
def test_plugin_module_holds_only_hookimpls(tmp_path, registries, lang):
    root = new_plugin(lang, dest=tmp_path, registries=registries)
    tree = ast.parse((root / f"encoder_recipes_{lang}" / "plugin.py").read_text(encoding="utf-8"))
    functions = []
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        assert isinstance(node, ast.FunctionDef), f"{type(node).__name__} at line {node.lineno} is not a hookimpl"
        decorators = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
        assert [ast.unparse(d) for d in decorators] == ["hookimpl"], node.name
        functions.append(node.name)
    assert sorted(functions) == ["encoder_recipes_fill_mask_probes", "encoder_recipes_register_recipes",
                                 "encoder_recipes_word_segmenter"]


@pytest.mark.parametrize(
    "lang, unspaced, sample, words",
    [
        ("en", None, True, ["It's", "a", "test,", "isn't", "it?"]),  # spaced, has an offline sample corpus
        ("ko", None, False, ["It's", "a", "test,", "isn't", "it?"]),  # spaced, no sample corpus
        # unspaced (told, as no plugin registers th): characters
        ("th", True, False, ["It", "'", "s", "a", "test", ",", "isn", "'", "t", "it", "?"]),
    ],
)
def test_starter_recipe_validates_with_the_plugin_loaded(tmp_path, registries, load_generated, lang, unspaced,
                                                         sample, words):
    # this project's own en plugin holds the name "en"; a second English plugin takes another
    plugin_name = f"{lang}_extra" if lang in registries.loaded.plugins else None
    root = new_plugin(lang, dest=tmp_path, registries=registries, unspaced=unspaced, plugin_name=plugin_name)
    reg = load_generated(root, lang, plugin_name)
    assert reg.recipes.get(f"{lang}-starter").plugin == (plugin_name or lang)

    full = load_recipe(f"{lang}-starter", registries=reg).recipe
    parent = load_recipe(default_extends(lang, registries), registries=reg).recipe
    assert (full.metadata.name, full.metadata.language, full.metadata.requires) == (f"{lang}-starter", lang, [plugin_name or lang])
    assert full.model == parent.model and full.stages == parent.stages and full.tokenizer == parent.tokenizer
    assert [s.name for s in full.data.sources] == [s.name for s in parent.data.sources]
    assert all(s.paths == [f"/path/to/{lang}-corpus/{s.name}/**/*.jsonl"] for s in full.data.sources)

    smoke = load_recipe(f"{lang}-starter", scale="smoke", registries=reg).recipe
    if sample:
        assert [(s.name, s.sample) for s in smoke.data.sources] == [("sample", lang)]
    else:  # no sample corpus: the smoke scale keeps the author's sources
        assert smoke.data.sources == full.data.sources
    assert smoke.model.hidden_size < full.model.hidden_size

    segmenter = reg.word_segmenter(lang)
    assert segmenter.words("It's a test, isn't it?") == words
    assert reg.word_segmenter(lang, segmenter.name) is not None  # a recipe may name it
    assert reg.word_segmenter(lang, "no-such-segmenter") is None
    probes = reg.fill_mask_probes(lang)
    assert probes and all(p["text"].count("{mask}") == 1 and p["answers"] for p in probes)


def test_the_segmenter_defers_to_a_dedicated_one(tmp_path, registries, load_generated):
    """A second ja plugin's starter segmenter is trylast: the shipped MeCab segmenter still answers."""
    root = new_plugin("ja", dest=tmp_path, plugin_name="ja_extra", registries=registries)
    reg = load_generated(root, "ja", plugin_name="ja_extra")
    assert reg.word_segmenter("ja").name != "character"
    # the starter extends the registered Japanese recipe, whose pretrained tokenizer fits
    assert load_recipe("ja-starter", registries=reg).recipe.tokenizer.name == "pretrained"


def test_names_follow_the_distribution(tmp_path, registries):
    root = new_plugin("ko", dest=tmp_path, dist_name="korean-encoders", registries=registries)
    assert (root / "korean_encoders" / "plugin.py").is_file()
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["encoder_recipes"] == {"ko": "korean_encoders.plugin"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lang": "Korean"}, "ISO 639 code"),
        ({"lang": "ko", "dist_name": "-bad-"}, "not a valid distribution name"),
        ({"lang": "ko", "dist_name": "9lives"}, "not a Python identifier"),
        ({"lang": "ko", "extends": "fi-modernbrt"}, "not a registered recipe"),
        ({"lang": "ko", "extends": "ja-llmjp"}, "pretrained 'ja' tokenizer"),
        ({"lang": "ja"}, "already used by the installed distribution 'encoder-recipes'"),
    ],
)
def test_refuses_what_cannot_work(tmp_path, registries, kwargs, message):
    with pytest.raises(ScaffoldError, match=message):
        new_plugin(dest=tmp_path, registries=registries, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing is written before the checks pass


def test_an_existing_package_is_overwritten_only_with_force(tmp_path, registries):
    root = new_plugin("ko", dest=tmp_path, registries=registries)
    plugin = root / "encoder_recipes_ko" / "plugin.py"
    plugin.write_text("edited\n", encoding="utf-8")
    with pytest.raises(ScaffoldError, match="--force"):
        new_plugin("ko", dest=tmp_path, registries=registries)
    assert plugin.read_text(encoding="utf-8") == "edited\n"
    new_plugin("ko", dest=tmp_path, force=True, registries=registries)
    assert "@hookimpl" in plugin.read_text(encoding="utf-8")


def test_new_plugin_subcommand(tmp_path, capsys, registries):
    parser = argparse.ArgumentParser(prog="encoder-recipes")
    add_new_plugin_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["new-plugin", "ko", "--dest", str(tmp_path), "--name", "ko-encoders"])
    args.registries = lambda: registries  # what the CLI's main hands every command
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"pip install -e {tmp_path / 'ko-encoders'}" in out and "encoder-recipes validate ko-starter" in out
    assert (tmp_path / "ko-encoders" / "ko_encoders" / "recipes" / "ko_starter.yaml").is_file()

    assert args.func(args) == 1  # exists, no --force
    assert "--force" in capsys.readouterr().err


def test_templates_ship_with_the_package():
    """Every template matches a package-data glob, so `pip install .` (not only -e) carries it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = project["tool"]["setuptools"]["package-data"]["encoder_recipes"]
    templates = [p.relative_to(REPO / "core") for p in (REPO / "core" / "scaffold_templates").rglob("*") if p.is_file()]
    assert templates
    for path in templates:
        assert any(path.match(g) and len(path.parts) == len(Path(g).parts) for g in globs), path


# --- the outside author's path, end to end -------------------------------------------------


def _offline_env() -> dict[str, str]:
    """pip without network: the host is installed, and setuptools is taken from this environment."""
    return {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=_offline_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _cli(*args: str, cwd: Path | None = None) -> str:
    return _run(sys.executable, "-m", "encoder_recipes", *args, cwd=cwd).stdout


@pytest.mark.slow
def test_generate_install_list_validate_test_and_run_an_english_plugin(tmp_path):
    # "en" is this project's own plugin, so the generated English one is named en_extra
    root = new_plugin("en", dest=tmp_path, registries=default_registries(), plugin_name="en_extra")
    pip = (sys.executable, "-m", "pip")
    try:
        _run(*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(root))
        assert md.distribution("encoder-recipes-en").version == "0.1.0"

        plugins = {p["name"]: p for p in json.loads(_cli("plugins", "--json"))["plugins"]}
        assert plugins["en_extra"]["distribution"] == "encoder-recipes-en"
        assert plugins["en_extra"]["contributes"] == {"recipe": ["en-starter"]}
        assert set(plugins["en_extra"]["hooks"]) == {"encoder_recipes_register_recipes", "encoder_recipes_word_segmenter",
                                               "encoder_recipes_fill_mask_probes"}

        listed = {r["name"]: r for r in json.loads(_cli("list", "--json"))}
        assert (listed["en-starter"]["language"], listed["en-starter"]["plugin"]) == ("en", "en_extra")

        recipe_file = root / "encoder_recipes_en" / "recipes" / "en_starter.yaml"
        assert _cli("validate", str(recipe_file), "--scale", "smoke").strip() == f"{recipe_file}: ok"

        tests = _run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
        assert "5 passed" in tests.stdout

        out = tmp_path / "run"
        _cli("run", "en-starter", "log_every=1", "--scale", "smoke", "--output", str(out), "--max-steps", "3",
             "--device", "cpu")
        losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
                  if '"loss"' in line]
        assert len(losses) == 3 and all(0 < x < 20 for x in losses)
        assert "language: en" in (out / "resolved.yaml").read_text(encoding="utf-8")
    finally:
        subprocess.run([*pip, "uninstall", "-y", "encoder-recipes-en"], env=_offline_env(), capture_output=True)
    with pytest.raises(md.PackageNotFoundError):
        md.distribution("encoder-recipes-en")


def test_the_parent_recipe_is_chosen_from_what_is_registered(registries_with):
    """No language is wired into the scaffold: the parent and the spacing come from the registered plugins."""
    registries = registries_with()
    assert default_extends("ja", registries) == "ja-llmjp"  # a recipe of the language comes first
    assert default_extends("ko", registries) == "fi-modernbert"  # else the first that trains its tokenizer
    assert is_unspaced("ja", registries) and is_unspaced("zh", registries)
    assert not is_unspaced("fi", registries) and not is_unspaced("th", registries)  # th: nothing registered
    without_fi = registries_with(disabled=["fi"])
    assert "fi-modernbert" not in without_fi.recipes
    assert default_extends("ko", without_fi) in without_fi.recipes  # new-plugin still works without fi
