"""SIGKILL runs whose packers carry documents over between steps; the resumed run ends bit-identical.

The documents (standard-library docstrings, about 100 tokens) are longer
than the 32-token sequences, and a step of 256 sequences needs new documents
every step (naive) or a new best-fit window every few steps, so a checkpoint
taken while the data worker runs ahead holds packer buffers that the
following steps change: unless the worker's snapshot is taken by value at the
step it belongs to, the resumed run repeats or loses documents and its
weights differ. (Before the fix, 25 of 40 steps' states were
wrong with naive packing and 10 of 40 with best-fit:
tests/training/test_prefetch_state.py.)
"""

from __future__ import annotations

import sys

import pytest

from .helpers import Life, listed_steps, result_of, weight_differences

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups via Linux /proc")]

STEPS = 14
RECIPE = """\
# encoder-recipes run THIS  (packed documents that span sequences)
metadata: {{name: tiny-packing, language: en, description: packer buffers carried across steps}}
model: {{hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 64, local_attention: 16}}
tokenizer: {{name: bpe, vocab_size: 512}}
data:
  sources:
    - {{name: docs, paths: ["{corpus}/*.txt"]}}
  validation_fraction: 0.05
log_every: 1
checkpoint_every: 1
keep_checkpoints: 3
seed: 3
stages:
  - name: only
    context: {{name: fixed, seq_len: 32}}
    steps: {steps}
    batch_size: 256
    lr: 3.0e-3
    masking: {{name: mlm, rate: 0.3}}
    packing: {packing}
"""


@pytest.mark.parametrize("packing", ["naive", "best_fit"])
def test_killed_packed_runs_resume_to_the_same_weights(packing, english_corpus, tmp_path):
    recipe = tmp_path / f"{packing}.yaml"
    recipe.write_text(RECIPE.format(corpus=english_corpus, steps=STEPS, packing=packing), encoding="utf-8")
    logs = tmp_path / "logs"
    reference = Life(recipe, tmp_path / "reference", logs, "reference")
    assert reference.wait(timeout=600) == 0, reference.stderr[-3000:]

    run = tmp_path / "run"
    resumed_at = []
    for i, kill_after in enumerate([4, 9, None]):  # kill once the k-th step's checkpoint is complete
        life = Life(recipe, run, logs, f"{i:02d}", "--resume", "auto")
        try:
            if kill_after is None:
                assert life.wait(timeout=600) == 0, life.stderr[-3000:]
            else:
                assert life.wait_until(lambda: any(s >= kill_after for s in listed_steps(run)), timeout=600), \
                    life.stderr[-3000:]
                assert life.kill()
                life.wait(timeout=60)
        finally:
            life.end_group()
        if life.resumed_from():
            resumed_at.append(life.resumed_from()[1])
    assert len(resumed_at) == 2, resumed_at  # both later lives resumed from a checkpoint

    want, got = result_of(tmp_path / "reference"), result_of(run)
    assert weight_differences(got.weights, want.weights) == [], f"{packing}: final weights differ after resuming at {resumed_at}"
    assert got.losses == want.losses
