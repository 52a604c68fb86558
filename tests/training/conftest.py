"""Training tests' corpus (the ``stdlib_docstrings`` fixture of tests/conftest.py) and tiny recipes."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def english_corpus(tmp_path_factory, stdlib_docstrings) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "docs.txt").write_text("\n".join(stdlib_docstrings), encoding="utf-8")
    return folder


TRAIN_RECIPE = """\
# encoder-recipes run THIS  (a tiny two-stage recipe on standard-library docstrings)
metadata: {{name: tiny-en, language: en, description: tiny test recipe}}
model: {{hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3, num_attention_heads: 2,
        max_position_embeddings: 256, local_attention: 32}}
tokenizer: {{name: bpe, vocab_size: 512}}
data:
  sources:
    - {{name: docs, paths: ["{corpus}/*.txt"]}}
  validation_fraction: 0.05
log_every: 2
checkpoint_every: {checkpoint_every}
seed: 3
evaluators:
  - {{name: mlm, num_sequences: 16, seq_len: 64, mask_rate: 0.3}}
stages:
  - name: short
    context: {{name: fixed, seq_len: 64}}
    steps: {steps1}
    batch_size: 8
    lr: 3.0e-3
    lr_schedule: {{name: linear_warmup_decay, warmup_steps: 3}}
    masking: {{name: mlm, rate: 0.3}}
    packing: naive
  - name: long
    context: {{name: fixed, seq_len: 128}}
    steps: {steps2}
    batch_size: 4
    lr: 1.0e-3
    masking: {{name: mlm, rate: 0.15}}
    packing: best_fit
    rope: {{global_theta: 80000}}
"""


@pytest.fixture
def train_recipe(tmp_path, english_corpus):
    def write(*, steps1: int = 12, steps2: int = 6, checkpoint_every: int = 4) -> Path:
        path = tmp_path / "tiny.yaml"
        path.write_text(TRAIN_RECIPE.format(corpus=english_corpus, steps1=steps1, steps2=steps2,
                                            checkpoint_every=checkpoint_every), encoding="utf-8")
        return path

    return write
