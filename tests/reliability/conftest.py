"""Fixtures for the reliability tests.

The training tests' corpus (standard-library docstrings) and their tiny
two-stage recipe are reused, not copied: ``tests/training/conftest.py`` is
loaded from its file because the test folders are not packages of one
another. ``reference_run`` is one uninterrupted ``encoder-recipes run`` of
the kill recipe in a subprocess, shared by every test that compares a
killed-and-resumed run with it.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from .helpers import Life, RunResult, result_of


def _load_training_conftest():
    path = Path(__file__).resolve().parents[1] / "training" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_reliability_training_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_training = _load_training_conftest()
TRAIN_RECIPE: str = _training.TRAIN_RECIPE
english_corpus = _training.english_corpus  # re-exported fixtures
train_recipe = _training.train_recipe

#: the kill recipe: 12 + 6 steps, a checkpoint after every step, an evaluator at each stage end
KILL_STEPS = (12, 6)


@pytest.fixture(scope="session")
def kill_recipe(tmp_path_factory, english_corpus) -> Path:
    path = tmp_path_factory.mktemp("kill_recipe") / "tiny-kill.yaml"
    path.write_text(TRAIN_RECIPE.format(corpus=english_corpus, steps1=KILL_STEPS[0], steps2=KILL_STEPS[1],
                                        checkpoint_every=1), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, kill_recipe) -> RunResult:
    """The kill recipe run once without interruption, in a subprocess like the runs it is compared with."""
    if not sys.platform.startswith("linux"):
        pytest.skip("process-group handling uses Linux /proc")
    folder = tmp_path_factory.mktemp("reference")
    life = Life(kill_recipe, folder / "run", folder / "logs", "reference")
    code = life.wait(timeout=600)
    assert code == 0, life.stderr[-3000:]
    result = result_of(folder / "run")
    result.seconds = time.monotonic() - life.started
    return result
