"""Recipes are data and checkpoints are tensors: nothing in either can run code.

Each attack below would leave a marker file if it ran; the tests check the
input is refused *and* the marker never appears.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import pickle
import sys

import pytest
import torch
from torch.distributed.checkpoint import FileSystemReader

from encoder_recipes.data.sources import DataSourceError, iter_documents
from encoder_recipes.recipe_files import RecipeError
from encoder_recipes.registry import default_registries
from encoder_recipes.schema import DataSource
from encoder_recipes.training import checkpoint as ckpt
from encoder_recipes.training.trainer import RunOptions, train
from encoder_recipes.validation import load_recipe

from .conftest import TRAIN_RECIPE

# --- recipes: the safe loader only ------------------------------------------------------

TAGGED = {
    "object/apply on a list": "!!python/object/apply:builtins.open [{marker}, w]",
    "object/new on a mapping": "!!python/object/new:builtins.open {{args: [{marker}, w]}}",
    "name on a scalar": "!!python/name:builtins.open",
    "module on a scalar": "!!python/module:antigravity",
    "a local tag": "!open {marker}",
}


@pytest.mark.parametrize("tag", list(TAGGED))
def test_python_tags_are_refused_in_files_and_overrides(tag, tmp_path, train_recipe):
    marker = tmp_path / "pwned"
    value = TAGGED[tag].format(marker=json.dumps(str(marker)))
    path = train_recipe()
    text = path.read_text().replace("seed: 3", f"seed: {value}")
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(str(path), registries=default_registries())
    (issue,) = info.value.issues
    assert issue.file == str(path) and issue.line == text.splitlines().index(f"seed: {value}") + 1
    assert issue.field == "seed" and "YAML" in issue.message
    # the same value given as a command-line override
    with pytest.raises(RecipeError, match=r"override 'seed=.*': the value is not plain YAML data"):
        load_recipe(str(train_recipe()), overrides=[f"seed={value}"], registries=default_registries())
    assert not marker.exists()
    assert "antigravity" not in sys.modules


def test_component_names_are_registry_keys_never_import_paths(train_recipe):
    path = train_recipe()
    path.write_text(path.read_text().replace("{name: bpe, vocab_size: 512}", "{name: antigravity}")
                    .replace("{name: mlm, rate: 0.3}", "{name: encoder_recipes.components.masking.TokenMasking}"))
    with pytest.raises(RecipeError) as info:
        load_recipe(str(path), registries=default_registries())
    messages = [i.message for i in info.value.issues]
    assert any(m.startswith("unknown tokenizer 'antigravity'") for m in messages), messages
    assert any(m.startswith("unknown masking 'encoder_recipes.components.masking.TokenMasking'") for m in messages)
    assert "antigravity" not in sys.modules


# --- paths: taken literally, never by a shell ----------------------------------------------


def test_paths_are_not_expanded_by_a_shell_or_for_the_user(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "x.txt").write_text("in the home folder\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for pattern in ["~/x.txt", "$HOME/x.txt", "${HOME}/x.txt", "~/*.txt"]:
        with pytest.raises(DataSourceError, match=r"paths are not expanded: no ~ and no \$VARIABLES"):
            list(iter_documents(DataSource(name="d", paths=[pattern])))
    # the same strings are ordinary names: a folder literally called "$HOME" or "~" is what they mean
    for literal in ["$HOME", "~"]:
        (tmp_path / literal).mkdir()
        (tmp_path / literal / "x.txt").write_text(f"in a folder named {literal}\n")
        assert list(iter_documents(DataSource(name="d", paths=[f"{literal}/x.txt"]))) == [f"in a folder named {literal}"]
    # command substitution is just characters
    marker = tmp_path / "pwned"
    for pattern in [f"$(touch {marker}).txt", f"`touch {marker}`.txt", f"x.txt; touch {marker}"]:
        with pytest.raises(DataSourceError, match="no such file"):
            list(iter_documents(DataSource(name="d", paths=[pattern])))
    assert not marker.exists()


# --- checkpoints: DCP metadata through an allowlist, shards with weights_only ----------------------


class OpensAFile:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the pickle runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _plant(checkpoint, name: str, payload: bytes, *, fix_manifest: bool) -> None:
    """Replace one file of a checkpoint; with ``fix_manifest`` the attacker also rewrites its checksum."""
    (checkpoint / name).write_bytes(payload)
    if fix_manifest:
        manifest = json.loads((checkpoint / ckpt.MANIFEST).read_text())
        manifest["files"][name] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
        (checkpoint / ckpt.MANIFEST).write_text(json.dumps(manifest))


METADATA = "dcp/.metadata"  # DCP's index of a checkpoint, a pickle that torch's own reader loads as it is


@pytest.fixture
def two_checkpoints(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    for step in (1, 2):
        ckpt.save_checkpoint(root, step, model_state={"w": torch.full((4,), float(step))},
                             optimizer_state={"state": {}, "param_groups": []}, state={"step": step}, keep=5)
    return root


def test_planted_metadata_that_runs_code_is_refused_at_load_and_never_runs(two_checkpoints, tmp_path):
    marker = tmp_path / "pwned"
    newest = two_checkpoints / "step_00000002"
    _plant(newest, METADATA, pickle.dumps(OpensAFile(str(marker))), fix_manifest=True)
    found = ckpt.latest_complete(two_checkpoints)
    assert found.path == newest  # the checksums match: only the loader can refuse it
    with pytest.raises(ckpt.CheckpointError, match=rf"{newest / 'dcp'} cannot be loaded safely: .*io.open is not part of a "
                                                 "checkpoint's metadata"):
        ckpt.load_checkpoint(found)
    assert not marker.exists()
    # the guard is what stands in the way: torch's own reader runs the planted code
    FileSystemReader(newest / "dcp").read_metadata()
    assert marker.exists()


def test_planted_metadata_without_its_checksum_is_skipped_as_corrupted(two_checkpoints, tmp_path):
    marker = tmp_path / "pwned"
    newest = two_checkpoints / "step_00000002"
    _plant(newest, METADATA, pickle.dumps(OpensAFile(str(marker))), fix_manifest=False)
    with pytest.warns(ckpt.CheckpointWarning, match=rf"skipping checkpoint {newest}: {METADATA}"):
        found = ckpt.latest_complete(two_checkpoints)
    assert found.step == 1
    ckpt.load_checkpoint(found)
    assert not marker.exists()


def test_a_pickle_inside_a_shard_is_refused(tmp_path):
    """Non-tensor entries sit in the shards as torch.save pickles; DCP loads them with weights_only."""
    marker = tmp_path / "pwned"
    root = tmp_path / "checkpoints"
    ckpt.save_checkpoint(root, 1, model_state={"w": torch.zeros(4)},
                         optimizer_state={"state": {}, "param_groups": [], "planted": OpensAFile(str(marker))},
                         state={"step": 1}, keep=2)
    assert not marker.exists()  # pickling the object ran nothing; unpickling it would open the file
    with pytest.raises(ckpt.CheckpointError, match="cannot be loaded safely"):
        ckpt.load_checkpoint(ckpt.latest_complete(root))
    assert not marker.exists()


def test_resume_refuses_a_checkpoint_with_a_planted_pickle(tmp_path, english_corpus):
    """End to end: ``--resume auto`` on a real run whose newest checkpoint carries the pickle."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TRAIN_RECIPE.format(corpus=english_corpus, steps1=2, steps2=1, checkpoint_every=1))
    registries = default_registries()
    resolved = load_recipe(str(recipe), registries=registries, overrides=["data_workers=0", "evaluators=[]"])
    run = tmp_path / "run"
    train(resolved, registries, RunOptions(output=run, max_steps=2, progress=False))
    marker = tmp_path / "pwned"
    newest = run / "checkpoints" / "step_00000002"
    _plant(newest, METADATA, pickle.dumps(OpensAFile(str(marker))), fix_manifest=True)
    with pytest.raises(ckpt.CheckpointError, match="cannot be loaded safely"):
        train(resolved, registries, RunOptions(output=run, resume="auto", progress=False))
    assert not marker.exists()
