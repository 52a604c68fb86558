"""Plugins that raise during import or inside a hook: the rest of the CLI keeps working, and says who broke where.

The faulty plugins are installed the way a real one is: a distribution's
``*.dist-info`` folder with an ``entry_points.txt`` in the ``encoder_recipes``
group, on ``PYTHONPATH``, so ``importlib.metadata`` finds them in a fresh
``encoder-recipes`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from encoder_recipes.plugin_manager import PluginWarning

from .conftest import TRAIN_RECIPE
from .helpers import ENV

IMPORT_FAILS = "raise RuntimeError('boom while importing')\n"
HOOKS_FAIL = """
from encoder_recipes.hookspecs import hookimpl

@hookimpl
def encoder_recipes_register_maskings():
    raise ValueError("boom inside register_maskings")

@hookimpl
def encoder_recipes_word_segmenter(language, name):
    raise ValueError("boom inside word_segmenter")

@hookimpl
def encoder_recipes_fill_mask_probes(language):
    raise ValueError("boom inside fill_mask_probes")
"""


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory) -> Path:
    """A site folder holding distribution ``tplug-faults`` with two broken plugins, ``importfail`` and ``hookfail``."""
    site = tmp_path_factory.mktemp("faulty_site")
    (site / "tplug_importfail.py").write_text(IMPORT_FAILS)
    (site / "tplug_hookfail.py").write_text(textwrap.dedent(HOOKS_FAIL))
    info = site / "tplug_faults-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tplug-faults\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[encoder_recipes]\nimportfail = tplug_importfail\n"
                                           "hookfail = tplug_hookfail\n")
    return site


def _cli(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "encoder_recipes", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_list_and_plugins_work_and_name_the_broken_plugins(faulty_site):
    done = _cli(faulty_site, "list", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"ja-llmjp", "fi-modernbert", "zh-modernbert-wwm"} <= {r["name"] for r in json.loads(done.stdout)}
    assert ("plugin 'importfail' (distribution 'tplug-faults') failed in import: "
            "RuntimeError: boom while importing; skipped") in done.stderr
    assert ("plugin 'hookfail' (distribution 'tplug-faults') failed in encoder_recipes_register_maskings: "
            "ValueError: boom inside register_maskings; skipped") in done.stderr
    done = _cli(faulty_site, "plugins", "--json")
    report = json.loads(done.stdout)
    assert {(f["name"], f["stage"]) for f in report["failures"]} == {
        ("importfail", "import"), ("hookfail", "encoder_recipes_register_maskings")}
    assert {"builtin", "ja", "fi", "zh", "hookfail"} <= {p["name"] for p in report["plugins"]}


def test_run_of_a_recipe_that_does_not_need_them_trains(faulty_site, tmp_path, english_corpus):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TRAIN_RECIPE.format(corpus=english_corpus, steps1=2, steps2=1, checkpoint_every=10))
    done = _cli(faulty_site, "run", str(recipe), "--output", str(tmp_path / "run"), "--device", "cpu",
                "data_workers=0", "evaluators=[]")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    # the trainer asks every plugin for an English word segmenter: the broken one is named, once
    message = ("plugin 'hookfail' (distribution 'tplug-faults') failed in encoder_recipes_word_segmenter: "
               "ValueError: boom inside word_segmenter; skipped")
    assert done.stderr.count(message) == 1, done.stderr[-3000:]


def test_a_recipe_that_needs_a_broken_plugin_is_refused_naming_it(faulty_site, tmp_path):
    recipe = tmp_path / "needs.yaml"
    recipe.write_text(TRAIN_RECIPE.format(corpus=tmp_path, steps1=2, steps2=1, checkpoint_every=1)
                      .replace("description: tiny test recipe", "description: needs importfail, requires: [importfail]"))
    done = _cli(faulty_site, "run", str(recipe), "--output", str(tmp_path / "run"), "--device", "cpu")
    assert done.returncode == 2
    assert f"{recipe}:2:" in done.stderr and "metadata.requires[0]: needs plugin 'importfail', which is not " \
        "installed or failed to load" in done.stderr
    assert not (tmp_path / "run").exists()


def test_look_up_hooks_skip_a_raising_plugin_and_report_it_once(write_plugin, registries_with):
    broken = write_plugin("tplug_lookups", HOOKS_FAIL)
    with pytest.warns(PluginWarning, match=r"'lookups'.*encoder_recipes_register_maskings"):
        registries = registries_with(broken)
    with pytest.warns(PluginWarning, match=r"plugin 'lookups' .* failed in encoder_recipes_word_segmenter: "
                                           r"ValueError: boom inside word_segmenter"):
        segmenter = registries.word_segmenter("ja")
    assert segmenter is not None and segmenter.spans("東京に行く")  # the ja plugin still answers
    with pytest.warns(PluginWarning, match="encoder_recipes_fill_mask_probes"):
        assert registries.fill_mask_probes("fi")  # the fi plugin's probes still come back
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once: the second look-up is silent
        assert registries.word_segmenter("zh") is not None
        assert registries.word_segmenter("xx") is None
    stages = [(f.name, f.stage) for f in registries.loaded.failures]
    assert stages == [("lookups", "encoder_recipes_register_maskings"), ("lookups", "encoder_recipes_word_segmenter"),
                      ("lookups", "encoder_recipes_fill_mask_probes")]
