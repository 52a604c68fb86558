"""Packaging: every package is listed, and the installed (non-editable) wheel finds its recipes and plugins."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPING = {"core": "encoder_recipes", "registry": "encoder_recipes.registry",
           "plugins": "encoder_recipes.plugins", "recipes": "encoder_recipes.recipes"}


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {v: k for k, v in config["package-dir"].items()} == MAPPING
    found = set()
    for folder, name in MAPPING.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == set(config["packages"]), "pyproject.toml [tool.setuptools] packages is out of date"


@pytest.mark.slow
def test_installed_wheel_finds_recipes_and_plugins(tmp_path):
    # build from a copy: setuptools writes build/ and *.egg-info into the source tree
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "runs", "__pycache__", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("encoder_recipes-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # the dependencies come from the project's own venv (no download); the package itself from the wheel
    site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    # a plain path entry (not a site dir): the editable install's .pth finder in it is not run
    Path(target, "deps.pth").write_text(site + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)

    def cli(*args):
        out = subprocess.run([str(python), "-m", "encoder_recipes", *args], capture_output=True, text=True,
                             cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert out.returncode == 0, out.stderr
        return out.stdout

    plugins = json.loads(cli("plugins", "--json"))
    by_name = {p["name"]: p for p in plugins["plugins"]}
    assert {"builtin", "ja", "fi", "zh", "mul", "en"} <= set(by_name), plugins
    assert all(p["path"].startswith(str(env_dir)) for p in by_name.values()), "plugins must come from the wheel"
    assert plugins["failures"] == []  # the editable install on the deps path is not loaded a second time
    recipes = {r["name"]: r for r in json.loads(cli("list", "--json"))}
    assert set(recipes) == {"ja-llmjp", "ja-modernbert-ja", "fi-modernbert", "fi-modernbert-large-short",
                            "zh-modernbert-wwm", "mmbert-base", "en-modernbert-base"}
    assert all(r["path"].startswith(str(env_dir)) for r in recipes.values())
    assert "stage1" in cli("show", "ja-llmjp")
