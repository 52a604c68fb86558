"""Shared fixtures: real plugins written to a temp dir and loaded through real entry points."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import inspect
import sys
import textwrap
from pathlib import Path

import pytest

from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.registry import build_registries

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path where tests write plugin modules."""
    folder = tmp_path / "plugins_src"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.startswith("tplug_")]:
        del sys.modules[name]


@pytest.fixture
def write_plugin(plugin_dir):
    """write_plugin("tplug_x", source) -> an EntryPoint named after the module's suffix."""

    def write(module: str, source: str, name: str | None = None) -> md.EntryPoint:
        (plugin_dir / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return md.EntryPoint(name=name or module.removeprefix("tplug_"), value=module, group="encoder_recipes")

    return write


def installed_entry_points() -> list[md.EntryPoint]:
    return list(md.entry_points(group="encoder_recipes"))


@pytest.fixture
def registries_with():
    """Fresh registries from the installed plugins plus extra entry points (a new manager per call)."""

    def build(*extra: md.EntryPoint, disabled=(), strict=False):
        return build_registries(load_plugins([*installed_entry_points(), *extra], strict=strict, disabled=disabled))

    return build


@pytest.fixture
def registries(registries_with):
    return registries_with()


TINY_RECIPE = """\
# A tiny recipe for tests: encoder-recipes run THIS --scale smoke
metadata: {{name: {name}, language: {language}, description: a tiny test recipe}}
model: {{hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3, num_attention_heads: 2,
        max_position_embeddings: 512}}
tokenizer: {{name: bpe, vocab_size: 512}}
data:
  sources:
    - {{name: web, paths: ["corpus/*.txt"]}}
stages:
  - name: short
    context: {{name: fixed, seq_len: 128}}
    steps: 100
    batch_size: 8
    lr: {lr}
    lr_schedule: {{name: linear_warmup_decay, warmup_steps: 10}}
    masking: {{name: mlm, rate: 0.3}}
"""


@pytest.fixture
def recipe_file():
    def write(path: Path, *, name: str = "tiny", language: str = "fi", lr: str = "1.0e-3") -> Path:
        path.write_text(TINY_RECIPE.format(name=name, language=language, lr=lr), encoding="utf-8")
        return path

    return write


#: standard-library modules whose docstrings make the tests' small real corpus
STDLIB_MODULES = ["os", "json", "argparse", "collections", "functools", "itertools", "pathlib", "re", "subprocess",
                  "typing", "email", "logging", "unittest", "asyncio", "datetime", "decimal", "fractions",
                  "statistics", "random", "string", "textwrap", "shutil", "tarfile", "zipfile", "csv", "sqlite3",
                  "threading"]


@pytest.fixture(scope="session")
def stdlib_docstrings() -> list[str]:
    """A small real corpus: the standard library's docstrings of 80+ characters, one line each, sorted.

    Text an installed package ships (CPython's own), so tests need no download
    and no fetched sample corpus.
    """
    texts = []
    for name in STDLIB_MODULES:
        for _, obj in inspect.getmembers(importlib.import_module(name)):
            doc = inspect.getdoc(obj)
            if doc and len(doc) >= 80:
                texts.append(" ".join(doc.split()))
    return sorted(set(texts))
