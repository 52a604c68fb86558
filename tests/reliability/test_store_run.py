"""``encoder-recipes run`` reading a prepared store: N processes equal one, resumes are exact, bad stores are refused.

Real components: a store written by ``prepare`` (BPE tokenizer, the Finnish
plugin's whitespace word segmenter, Arrow shards on disk), real ``run``
processes, two gloo processes under torchrun. Stage 1 masks whole words from
the stored word starts (no segmenter at training time), stage 2 masks tokens
and packs anew from where stage 1 left the documents.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoder_recipes.cli import main
from encoder_recipes.data.prepare import PrepareOptions, prepare
from encoder_recipes.registry import default_registries
from encoder_recipes.validation import load_recipe

from .helpers import ENV, Life, listed_steps, result_of

STEPS = (6, 4)
RECIPE = """\
# encoder-recipes prepare THIS --output STORE, then: encoder-recipes run THIS data.store=STORE
metadata: {{name: tiny-store-run, language: fi, description: training from a prepared store}}
model: {{hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 128, local_attention: 32}}
tokenizer: {{name: bpe, vocab_size: 512}}
data:
  sources:
    - {{name: a, paths: ["{corpus}/a.txt"]}}
    - {{name: b, paths: ["{corpus}/b.txt"]}}
  mixture: {{a: 2, b: 1}}
  validation_fraction: 0.05
  store: "{store}"
log_every: 1
checkpoint_every: 2
keep_checkpoints: 10
seed: 3
data_workers: 0
stages:
  - name: short
    context: {{name: fixed, seq_len: 64}}
    steps: {steps1}
    batch_size: 8
    lr: 3.0e-3
    masking: {{name: whole_word, rate: 0.3}}
    packing: best_fit
  - name: long
    context: {{name: fixed, seq_len: 128}}
    steps: {steps2}
    batch_size: 4
    lr: 1.0e-3
    masking: {{name: mlm, rate: 0.15}}
    packing: naive
"""


@pytest.fixture(scope="module")
def store_recipe(tmp_path_factory, english_corpus) -> Path:
    """The recipe, its store prepared once (two sources, so the mixture counts)."""
    folder = tmp_path_factory.mktemp("store_run")
    texts = (english_corpus / "docs.txt").read_text(encoding="utf-8").splitlines()
    (folder / "a.txt").write_text("\n".join(texts[::2]), encoding="utf-8")
    (folder / "b.txt").write_text("\n".join(texts[1::2]), encoding="utf-8")
    recipe = folder / "recipe.yaml"
    recipe.write_text(RECIPE.format(corpus=folder, store=folder / "store", steps1=STEPS[0], steps2=STEPS[1]),
                      encoding="utf-8")
    registries = default_registries()
    prepare(load_recipe(str(recipe), registries=registries), registries,
            PrepareOptions(output=str(folder / "store"), workers=1, part_documents=200, progress=False))
    return recipe


def run_cli(recipe: Path, out: Path, *extra: str) -> int:
    return main(["run", str(recipe), "--output", str(out), "--device", "cpu", *extra])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# --- refusals through `run`: one line, before anything in the run directory changes -----------------


@pytest.fixture
def earlier_run(tmp_path) -> Path:
    """A run directory holding an earlier run's checkpoint (what --overwrite would delete)."""
    out = tmp_path / "run"
    (out / "checkpoints" / "step_00000002").mkdir(parents=True)
    (out / "checkpoints" / "step_00000002" / "state.json").write_text("{}")
    return out


def copy_store(recipe: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(recipe.parent / "store", copy)
    return copy


@pytest.mark.parametrize("damage, message", [
    ("missing", "shard b/part-00000.arrow is missing"),
    ("torn", "shard a/part-00000.arrow is torn"),
])
def test_a_missing_or_torn_shard_is_refused_and_the_earlier_run_kept(damage, message, store_recipe, earlier_run,
                                                                      tmp_path, capsys):
    store = copy_store(store_recipe, tmp_path)
    if damage == "missing":
        (store / "b/part-00000.arrow").unlink()
    else:
        shard = store / "a/part-00000.arrow"
        shard.write_bytes(shard.read_bytes()[:-10])
    assert run_cli(store_recipe, earlier_run, "--overwrite", f"data.store={store}") == 1
    assert message in one_line_error(capsys)
    assert (earlier_run / "checkpoints" / "step_00000002" / "state.json").exists()


def test_a_store_from_other_data_is_refused(store_recipe, tmp_path, capsys):
    assert run_cli(store_recipe, tmp_path / "run", "data.validation_fraction=0.1") == 1
    assert "was made from other data" in one_line_error(capsys)
    assert not (tmp_path / "run" / "tokenizer").exists()


def test_a_run_with_another_tokenizer_is_refused(store_recipe, tmp_path, capsys):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(store_recipe.parent / "store" / "tokenizer")
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.add_tokens(["zzzz"])
    out = tmp_path / "run"
    PreTrainedTokenizerFast(tokenizer_object=backend).save_pretrained(out / "tokenizer")
    assert run_cli(store_recipe, out) == 1
    assert "made with another tokenizer" in one_line_error(capsys)


def test_a_store_too_small_for_the_steps_is_refused_before_training(store_recipe, tmp_path, capsys):
    assert run_cli(store_recipe, tmp_path / "run", "stages.long.steps=100000") == 1
    assert "prepare more data or ask for fewer steps" in one_line_error(capsys)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_mask_group_that_splits_a_ranks_share_is_refused(store_recipe, tmp_path, capsys):
    assert run_cli(store_recipe, tmp_path / "run", "data.store_mask_group=3") == 1
    assert "not whole mask groups of 3 (data.store_mask_group)" in one_line_error(capsys)


def test_the_store_is_the_only_data_path_of_its_run(store_recipe, tmp_path):
    from encoder_recipes.validation import RecipeError

    registries = default_registries()
    with pytest.raises(RecipeError, match="shard_by_rank applies to tokenising on the fly"):
        load_recipe(str(store_recipe), registries=registries, overrides=["data.shard_by_rank=true"])
    with pytest.raises(RecipeError, match="data_workers: 2 needs data.store"):
        load_recipe(str(store_recipe), registries=registries, overrides=["data.store=null", "data_workers=2"])


def test_a_resume_may_not_switch_between_a_store_and_tokenising_on_the_fly(store_recipe):
    from encoder_recipes.data.store_format import StoreError
    from encoder_recipes.data.store_run import check_run, open_for_run
    from encoder_recipes.plan import build_plan

    registries = default_registries()
    resolved = load_recipe(str(store_recipe), registries=registries)
    plan = build_plan(resolved.recipe, registries, vocab_size=512)
    store = open_for_run(resolved.recipe.data.store, resolved, registries)
    from_store = {"stage": "short", "stream": {"sources": ["a", "b"], "drawn": 40, "position": [27, 13],
                                                "epochs": [0, 0], "seq_len": 64, "pending": [], "buffer": [],
                                                "items": []}}
    check_run(store, resolved, registries, plan, first=2, last=10, data=from_store, world=2)
    with pytest.raises(StoreError, match="read a prepared store; resume with the same data.store"):
        check_run(None, resolved, registries, plan, first=2, last=10, data=from_store, world=1)
    on_the_fly = {"stage": "short", "stream": {"documents": {}, "seq_len": 64, "pending": []}}
    with pytest.raises(StoreError, match="tokenised on the fly; resume it without data.store"):
        check_run(store, resolved, registries, plan, first=2, last=10, data=on_the_fly, world=1)


# --- training from the store: N processes = 1, SIGKILL and resume, 2 processes then 1 ---------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(recipe: Path, out: Path, nproc: int, *extra: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--nnodes=1",
           f"--master-port={free_port()}", "-m", "encoder_recipes", "run", str(recipe), "--output", str(out),
           "--device", "cpu", *extra]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def checkpoint_weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        # DDP averages gradients in another order: float rounding, nothing more
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups via Linux /proc")
def test_two_processes_match_one_and_a_killed_resume_on_one_process_continues_exactly(store_recipe, tmp_path):
    """One chain, so that the test starts few processes (each pays torch's import):

    1. the reference: one process, the whole run, batches made in the trainer's process;
    2. two gloo processes, each reading only its half of every batch, stop after step 4:
       their losses and step-4 weights equal the reference's;
    3. one process with two data workers resumes their checkpoint and is SIGKILLed once the
       stage-boundary checkpoint (step 6) is complete;
    4. one process resumes that and finishes: losses and weights equal the reference's. A step
       replayed or skipped anywhere would change them far beyond float rounding.
    """
    logs = tmp_path / "logs"
    reference = Life(store_recipe, tmp_path / "one", logs, "one")
    assert reference.wait(timeout=600) == 0, reference.stderr[-3000:]
    one = result_of(tmp_path / "one")
    assert [s for s, _ in one.losses] == list(range(1, sum(STEPS) + 1))

    run = tmp_path / "run"
    torchrun(store_recipe, run, 2, "--max-steps", "4")
    two = losses_of(run)
    assert [s for s, _ in two] == [1, 2, 3, 4]
    assert [x for _, x in two] == pytest.approx([x for _, x in one.losses[:4]], rel=1e-4)
    assert_close(checkpoint_weights(run, 4), checkpoint_weights(tmp_path / "one", 4))

    life = Life(store_recipe, run, logs, "killed", "--resume", "auto", "data_workers=2")
    try:
        assert life.wait_until(lambda: any(s >= 6 for s in listed_steps(run)), timeout=600), life.stderr[-3000:]
        assert life.kill()
        life.wait(timeout=60)
    finally:
        life.end_group()
    assert life.resumed_from()[1] == 4
    rest = Life(store_recipe, run, logs, "resumed", "--resume", "auto")
    assert rest.wait(timeout=600) == 0, rest.stderr[-3000:]
    assert rest.resumed_from()[1] >= 6
    got = result_of(run)
    assert [s for s, _ in got.losses] == [s for s, _ in one.losses]
    assert [x for _, x in got.losses] == pytest.approx([x for _, x in one.losses], rel=1e-4)
    assert_close(got.weights, one.weights)


def losses_of(run: Path) -> list[tuple[int, float]]:
    from encoder_recipes.training.metrics import read_metrics

    return [(r["step"], r["loss"]) for r in read_metrics(run) if "loss" in r and r.get("event") is None]
