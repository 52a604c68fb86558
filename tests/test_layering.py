"""The engine is handed its registries; only composition roots (the CLI, pytest fixtures) build them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import encoder_recipes.registry as registry_module
from encoder_recipes.plan import build_plan
from encoder_recipes.scaffold import new_plugin
from encoder_recipes.validation import load_recipe


@pytest.fixture
def no_default_registries(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the engine built the installed plugins' registries itself")

    monkeypatch.setattr(registry_module, "default_registries", refuse)
    monkeypatch.setattr(registry_module, "load_plugins", refuse)


def test_the_engine_uses_the_registries_it_is_given(registries, no_default_registries, tmp_path):
    resolved = load_recipe("ja-llmjp", scale="smoke", registries=registries)
    build_plan(resolved.recipe, registries)
    new_plugin("ko", dest=tmp_path, registries=registries)


def test_load_recipe_needs_registries():
    with pytest.raises(TypeError, match="registries"):
        load_recipe("ja-llmjp")


def test_the_registry_package_imports_first_without_a_cycle():
    done = subprocess.run([sys.executable, "-c", "import encoder_recipes.registry, encoder_recipes.validation"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
