"""The micro-batch estimate: a pure function of the model's shape, the sequence length and the device's memory."""

from __future__ import annotations

import pytest

from encoder_recipes.plan import build_plan
from encoder_recipes.schema import ComponentRef
from encoder_recipes.training.memory import (
    GPU_MEMORY, USABLE, Shape, activation_bytes_per_token, micro_batch_for, micro_batch_lines, micro_batch_size,
    head_chunk_bytes, pick_micro_batch,
    shape_of, static_bytes,
)
from encoder_recipes.validation import load_recipe

BASE = Shape(hidden_size=768, intermediate_size=1152, num_layers=22, vocab_size=50368, parameters=150_000_000)


def test_the_cost_grows_with_depth_and_shrinks_with_checkpointing_and_sparse_prediction():
    cost = activation_bytes_per_token(BASE, seq_len=1024, mask_rate=0.3)
    deeper = activation_bytes_per_token(Shape(768, 1152, 44, 50368, 300_000_000), seq_len=1024, mask_rate=0.3)
    assert 1.5 * cost < deeper < 2 * cost  # the layers dominate; head and embeddings do not double
    assert activation_bytes_per_token(BASE, seq_len=1024, mask_rate=0.3, checkpointing=True) < cost / 3
    dense_head = Shape(768, 1152, 22, 50368, 150_000_000, sparse_prediction=False)
    assert activation_bytes_per_token(dense_head, seq_len=1024, mask_rate=0.3) > cost
    # SDPA's dense masks grow with the length; FlashAttention 2 needs none
    assert (activation_bytes_per_token(BASE, seq_len=8192, mask_rate=0.3)
            > activation_bytes_per_token(BASE, seq_len=8192, mask_rate=0.3, flash_attention=True))


def test_micro_batches_are_balanced_and_never_zero():
    per_token, static = 1e6, 3e9
    fit = int((80e9 * USABLE - static) // (per_token * 1024))  # 67 sequences of 1,024 tokens
    assert pick_micro_batch(share=208, seq_len=1024, per_token=per_token, static=static, memory=80e9) == 52  # 4 × 52
    assert pick_micro_batch(share=fit, seq_len=1024, per_token=per_token, static=static, memory=80e9) == fit
    assert pick_micro_batch(share=8, seq_len=1024, per_token=per_token, static=static, memory=80e9) == 8
    assert pick_micro_batch(share=8, seq_len=10**6, per_token=per_token, static=static, memory=80e9) == 1


def test_ja_llmjp_on_16_h100s_gets_micro_batches_that_fit_and_its_whole_share_would_not(registries):
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    plan = build_plan(recipe, registries)
    shape = shape_of(recipe.model, recipe.model.vocab_size)
    for stage in plan.stages:
        choice = micro_batch_for(recipe, stage, gpus=16, memory=GPU_MEMORY["h100"], vocab_size=recipe.model.vocab_size)
        assert choice.share == stage.batch_size // 16
        assert 1 <= choice.micro < choice.share
        assert choice.peak <= 80e9 * USABLE
        whole = static_bytes(shape) + choice.share * choice.seq_len * activation_bytes_per_token(
            shape, seq_len=choice.seq_len, mask_rate=stage.mask_rate_end)
        assert whole > 80e9, stage.name  # without micro-batches the stage would not fit
    lines = micro_batch_lines(recipe, plan, gpus=16, gpu="h100")
    assert len(lines) == 1 + len(plan.stages) and all(line.endswith(": fits") for line in lines[1:]), lines


def test_an_unknown_gpu_is_refused_naming_the_known_ones(registries):
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    with pytest.raises(ValueError, match="h100"):
        micro_batch_lines(recipe, build_plan(recipe, registries), gpus=16, gpu="tpu")


SIZED_TOKENIZER = '''
from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Tokenizer
from encoder_recipes.hookspecs import hookimpl


class Sized(Tokenizer):
    """A tokenizer whose vocabulary param is not called vocab_size."""
    name = "sized"

    class Params(Params):
        entries: int

    def build(self, *, texts, vocab_size, language, segmenter):
        raise NotImplementedError("only planned here")

    def planned_vocab_size(self):
        return self.params.entries


@hookimpl
def encoder_recipes_register_tokenizers():
    return [Sized]
'''


def test_the_estimate_asks_the_tokenizer_for_its_vocabulary(write_plugin, registries_with):
    """``plan --gpus`` sizes the head by the tokenizer's own answer, whatever its params are called."""
    registries = registries_with(write_plugin("tplug_sized", SIZED_TOKENIZER))
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    sized = recipe.model_copy(update={"tokenizer": ComponentRef(name="sized", entries=recipe.model.vocab_size),
                                      "model": recipe.model.model_copy(update={"vocab_size": None})})
    plan = build_plan(sized, registries)
    assert plan.vocab_size == recipe.model.vocab_size
    assert (micro_batch_lines(sized, plan, gpus=16, gpu="h100")
            == micro_batch_lines(recipe, build_plan(recipe, registries), gpus=16, gpu="h100"))


def test_the_trainer_runs_the_micro_batch_the_recipe_asks_for(registries):
    """``micro_batch_size`` as the trainer reads it: whole share, a capped number, or ``auto`` on a device."""
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    stage = build_plan(recipe, registries).stages[0]
    vocab = recipe.model.vocab_size

    def with_micro(value):
        stages = [recipe.stages[0].model_copy(update={"micro_batch_size": value}), *recipe.stages[1:]]
        return recipe.model_copy(update={"stages": stages})

    share = stage.batch_size // 16
    assert micro_batch_size(with_micro(None), stage, gpus=16, memory=80e9, vocab_size=vocab).micro == share
    assert micro_batch_size(with_micro(8), stage, gpus=16, memory=80e9, vocab_size=vocab).micro == 8
    assert micro_batch_size(with_micro(10**6), stage, gpus=16, memory=80e9, vocab_size=vocab).micro == share
    auto = micro_batch_size(with_micro("auto"), stage, gpus=16, memory=80e9, vocab_size=vocab)
    assert auto == micro_batch_for(recipe, stage, gpus=16, memory=80e9, vocab_size=vocab) and auto.micro < share
    # no device figure (a CPU run): the whole share
    assert micro_batch_size(with_micro("auto"), stage, gpus=16, memory=None, vocab_size=vocab).micro == share


def test_the_chunked_head_loss_leaves_room_for_larger_micro_batches(registries):
    """ja-llmjp's 99,574-token head: unchunked its logits are ~30% of a token's cost; chunked, one chunk once."""
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    unchunked = recipe.model_copy(update={"head_loss_chunk_rows": None})
    shape = shape_of(recipe.model, recipe.model.vocab_size)
    full = activation_bytes_per_token(shape, seq_len=1024, mask_rate=0.3)
    chunked = activation_bytes_per_token(shape, seq_len=1024, mask_rate=0.3, head_chunked=True)
    assert 0.25 < (full - chunked) / full < 0.35
    assert 4e9 < head_chunk_bytes(shape, 4096) < 6e9
    for stage in build_plan(recipe, registries).stages:
        with_chunks = micro_batch_for(recipe, stage, gpus=16, memory=GPU_MEMORY["h100"], vocab_size=shape.vocab_size)
        without = micro_batch_for(unchunked, stage, gpus=16, memory=GPU_MEMORY["h100"], vocab_size=shape.vocab_size)
        assert with_chunks.micro > without.micro and with_chunks.peak <= 80e9 * USABLE, stage.name
    assert "head loss in chunks of 4096 rows" in micro_batch_lines(recipe, build_plan(recipe, registries), gpus=16,
                                                                    gpu="h100")[0]
