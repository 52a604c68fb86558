"""The four seed recipes hold exactly the values of their source documents.

Each value a seed states is one parametrised case whose id names the recipe,
the field and the seed reference (e.g. ``ja_llmjp stages.stage1.lr [001
Table 1 Peak learning rate, Stage 1]``). Derived checks recompute what a seed
states from the recipe's own numbers: the llm-jp stage-1 token count
(001 §2.3), and the parameter counts of the models (001 §2.1, 002, 003),
counted on a real ``ModernBertForMaskedLM`` built on the meta device.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from encoder_recipes.plan import build_plan
from encoder_recipes.testing import recipe_value as pick
from encoder_recipes.recipes import recipe_path
from encoder_recipes.schema import Recipe

RECIPE_FILES = ["ja_llmjp.yaml", "ja_modernbert_ja.yaml", "fi_modernbert.yaml", "zh_modernbert_wwm.yaml"]


@cache
def raw(filename: str) -> dict:
    return yaml.safe_load(recipe_path(filename).read_text(encoding="utf-8"))


@cache
def recipe(filename: str) -> Recipe:
    return Recipe.model_validate(raw(filename))




def case(filename: str, path: str, expected: Any, ref: str) -> Any:
    return pytest.param(filename, path, expected, id=f"{filename.removesuffix('.yaml')} {path} [{ref}]")


LLMJP = "ja_llmjp.yaml"
JA130 = "ja_modernbert_ja.yaml"
FI = "fi_modernbert.yaml"
ZH = "zh_modernbert_wwm.yaml"

SEED_VALUES = [
    # --- llm-jp-modernbert-base: 001 Table 1 and §2.1 -------------------------------
    case(LLMJP, "metadata.language", "ja", "001 §2.2 Japanese corpus"),
    case(LLMJP, "stages.stage1.context.seq_len", 1024, "001 Table 1 Max sequence length, Stage 1"),
    case(LLMJP, "stages.stage2.context.seq_len", 8192, "001 Table 1 Max sequence length, Stage 2"),
    case(LLMJP, "stages.stage1.steps", 500_000, "001 Table 1 Training steps, Stage 1"),
    case(LLMJP, "stages.stage2.steps", 200_000, "001 Table 1 Training steps, Stage 2"),
    case(LLMJP, "stages.stage1.batch_size", 3328, "001 Table 1 Total batch size, Stage 1"),
    case(LLMJP, "stages.stage2.batch_size", 384, "001 Table 1 Total batch size, Stage 2"),
    case(LLMJP, "stages.stage1.lr", 5e-4, "001 Table 1 Peak learning rate, Stage 1"),
    case(LLMJP, "stages.stage2.lr", 5e-5, "001 Table 1 Peak learning rate, Stage 2"),
    case(LLMJP, "stages.stage1.lr_schedule.warmup_steps", 24_000, "001 Table 1 Warmup steps"),
    case(LLMJP, "stages.stage2.lr_schedule.warmup_steps", 24_000, "001 Table 1 Warmup steps (spans both stages)"),
    case(LLMJP, "stages.stage1.lr_schedule.name", "linear_warmup_decay", "001 Table 1 LR schedule Linear decay"),
    case(LLMJP, "stages.stage2.lr_schedule.name", "linear_warmup_decay", "001 Table 1 LR schedule Linear decay"),
    case(LLMJP, "stages.stage1.lr_schedule.scope", "stage", "001 §2.3 stage 2 restarts from stage 1"),
    case(LLMJP, "stages.stage2.lr_schedule.scope", "stage", "001 §2.3 stage 2 restarts from stage 1"),
    case(LLMJP, "optimizer.name", "adamw", "001 Table 1 Optimizer AdamW"),
    case(LLMJP, "optimizer.betas", [0.9, 0.98], "001 Table 1 Adam beta1 beta2"),  # a param as written: the schema alone does not know the component
    case(LLMJP, "optimizer.eps", 1e-6, "001 Table 1 Adam epsilon"),
    case(LLMJP, "optimizer.weight_decay", 1e-5, "001 Table 1 Weight decay"),
    case(LLMJP, "optimizer.grad_clip", 1.0, "001 Table 1 Gradient clip"),
    case(LLMJP, "stages.stage1.masking.name", "mlm", "001 §2.3 MLM objective"),
    case(LLMJP, "stages.stage1.masking.rate", 0.30, "001 Table 1 MLM probability, Stage 1"),
    case(LLMJP, "stages.stage2.masking.rate", 0.30, "001 Table 1 MLM probability, Stage 2"),
    case(LLMJP, "model.global_rope_theta", 10_000, "001 Table 1 Global RoPE theta"),
    case(LLMJP, "stages.stage1.packing", "none", "001 Table 1 Line by line True, Stage 1"),
    case(LLMJP, "stages.stage2.packing", "none", "001 Table 1 Line by line True, Stage 2"),
    case(LLMJP, "model.vocab_size", 99_574, "001 §2.1 vocabulary 99,574"),
    case(LLMJP, "model.max_position_embeddings", 8192, "001 Table 1 Max sequence length, Stage 2"),
    case(LLMJP, "model.hidden_size", 768, "001 §2.1 ModernBERT-base"),
    case(LLMJP, "model.intermediate_size", 1152, "001 §2.1 ModernBERT-base"),
    case(LLMJP, "model.num_hidden_layers", 22, "001 §2.1 ModernBERT-base"),
    case(LLMJP, "model.num_attention_heads", 12, "001 §2.1 ModernBERT-base"),
    case(LLMJP, "tokenizer.name", "pretrained", "001 §2.1 llm-jp-tokenizer v3"),
    case(LLMJP, "stages.stage1.reset_optimizer", False, "schema default"),
    case(LLMJP, "stages.stage2.reset_optimizer", True, "llm-jp train_main_extension.sh l. 31, 56 new AdamW"),
    case(LLMJP, "evaluators.pppl.positions", 100, "001 §3.5, llm-jp pseudo_perplexity.py l. 146"),
    case(LLMJP, "evaluators.alignment_uniformity.num_random", 2000, "001 §3.6 2,000 random pairs"),
    # --- ModernBERT-Ja-130M: 002 model card ------------------------------------------
    case(JA130, "model.vocab_size", 102_400, "002 Model Series vocabulary 102,400"),
    case(JA130, "model.hidden_size", 512, "002 Model Series Dim 512"),
    case(JA130, "model.intermediate_size", 2048, "002 Model Series Inter Dim 2048"),
    case(JA130, "model.num_hidden_layers", 19, "002 Model Series Layers 19"),
    case(JA130, "model.num_attention_heads", 8, "002 Model Series head dim 64"),
    case(JA130, "model.hidden_activation", "gelu", "002 Model Series GELU"),
    case(JA130, "model.local_attention", 128, "002 Model Series window 128"),
    case(JA130, "model.global_attn_every_n_layers", 3, "002 Model Series global-local-local"),
    case(JA130, "model.global_rope_theta", 160_000, "002 Model Series global_rope_theta"),
    case(JA130, "model.local_rope_theta", 10_000, "002 Model Series local_rope_theta"),
    case(JA130, "model.max_position_embeddings", 8192, "002 sequence length 8,192"),
    case(JA130, "stages.pretraining.context.seq_len", 1024, "002 Pre-training 1,024"),
    case(JA130, "stages.pretraining.tokens", 3.51e12, "002 Pre-training 3.51T tokens"),
    case(JA130, "stages.pretraining.packing", "naive", "002 Pre-training naive packing"),
    case(JA130, "stages.pretraining.masking.rate", 0.30, "002 Pre-training masking 30%"),
    case(JA130, "stages.ce_phase1.context.seq_len", 8192, "002 CE Phase 1 8,192"),
    case(JA130, "stages.ce_phase1.tokens", 430e9, "002 CE Phase 1 430B tokens"),
    case(JA130, "stages.ce_phase1.packing", "best_fit", "002 CE Phase 1 best-fit packing"),
    case(JA130, "stages.ce_phase1.masking.rate", 0.30, "002 CE Phase 1 masking 30%"),
    case(JA130, "stages.ce_phase2.context.seq_len", 8192, "002 CE Phase 2 8,192"),
    case(JA130, "stages.ce_phase2.tokens", 450e9, "002 CE Phase 2 450B tokens"),
    case(JA130, "stages.ce_phase2.epochs", 3, "002 CE Phase 2 3 epochs of 150B"),
    case(JA130, "stages.ce_phase2.packing", "none", "002 CE Phase 2 without packing"),
    case(JA130, "stages.ce_phase2.masking.rate", 0.15, "002 CE Phase 2 masking 15%"),
    *[case(JA130, f"stages.{s}.masking.{k}", v, "002 80-10-10 rule")
      for s in ("pretraining", "ce_phase1", "ce_phase2")
      for k, v in (("mask_replace_prob", 0.8), ("random_replace_prob", 0.1))],
    # values 002 leaves open, from ModernBERT-base's configs (branch pretraining_documentation)
    case(JA130, "stages.pretraining.lr", 8e-4, "ModernBERT pretrain.yaml l. 106"),
    case(JA130, "stages.pretraining.batch_size", 4608, "ModernBERT pretrain.yaml l. 117"),
    case(JA130, "stages.ce_phase1.lr", 3e-4, "ModernBERT context-extension.yaml l. 109"),
    case(JA130, "stages.ce_phase1.batch_size", 576, "ModernBERT context-extension.yaml l. 120"),
    case(JA130, "stages.ce_phase2.lr", 3e-4, "ModernBERT learning-rate-decay.yaml l. 110"),
    case(JA130, "stages.ce_phase2.lr_schedule.final_ratio", 0.001, "ModernBERT learning-rate-decay.yaml l. 104"),
    case(JA130, "stages.ce_phase2.lr_schedule.decay_shape", "1-sqrt", "ModernBERT learning-rate-decay.yaml l. 103"),
    case(JA130, "stages.pretraining.rope.global_theta", 10_000, "choice: ModernBERT pretrain.yaml l. 52"),
    case(JA130, "stages.ce_phase1.rope.global_theta", 160_000, "002 Model Series; ModernBERT CE yaml l. 56"),
    case(JA130, "stages.ce_phase2.rope.global_theta", 160_000, "002 Model Series global_rope_theta"),
    # --- Finnish ModernBERT-large: 003, the TurkuNLP card ("card") and the authors' code --------
    case(FI, "metadata.language", "fi", "003 Finnish"),
    case(FI, "model.vocab_size", 55_616, "card vocab_size 55,616"),
    case(FI, "tokenizer.vocab_size", 55_616, "card; train_tokenizer_hf.py:61-75 55,571 to x64"),
    case(FI, "model.num_hidden_layers", 28, "card n_layers 28"),
    case(FI, "model.max_position_embeddings", 16384, "card 16,000 / 003 16K, read as 16,384"),
    case(FI, "model.global_rope_theta", 1_000_000, "003 Method Summary rotary base 1,000,000"),
    case(FI, "model.local_attention", 128, "example_config.yaml:52 window_size"),
    case(FI, "model.local_rope_theta", 10_000, "example_config.yaml:67"),
    case(FI, "stages.stable.rope.global_theta", 10_000, "card theta 10,000; example_config.yaml:70"),
    case(FI, "stages.context_extension.rope.global_theta", 1_000_000, "card; 003 §2.4 rotary base 1,000,000"),
    case(FI, "stages.annealing.rope.global_theta", 1_000_000, "card; 003 §2.4 rotary base 1,000,000"),
    case(FI, "stages.stable.context.seq_len", 1024, "card; 003 Method Summary stable phase 1024"),
    case(FI, "stages.context_extension.context.name", "stepwise", "003 Method Summary six steps"),
    case(FI, "stages.annealing.context.seq_len", 16384, "card: length kept in annealing"),
    case(FI, "stages.stable.steps", 117_300, "card 117,300 steps"),
    case(FI, "stages.context_extension.steps", 16_560, "card 16,560 steps"),
    case(FI, "stages.annealing.steps", 4_140, "train_modernbert.py:273 138,000 - 133,860"),
    case(FI, "stages.stable.batch_size", 9216, "example_config.yaml:114,135 18 x 8 x 64"),
    case(FI, "stages.context_extension.batch_size", 1024, "example_config.yaml:118,137 1 x 16 x 64"),
    case(FI, "stages.annealing.batch_size", 1024, "example_config.yaml:118,137 1 x 16 x 64"),
    case(FI, "stages.stable.lr", 3e-4, "card 3e-4; example_config.yaml:91"),
    case(FI, "stages.context_extension.lr", 5e-5, "card 5e-5; example_config.yaml:93 seq_len_lr"),
    case(FI, "stages.annealing.lr", 3e-4, "sheduler.py:70-73 decay scaled from base_lr"),
    case(FI, "stages.stable.masking.rate", 0.30, "003 Method Summary 30% masking"),
    case(FI, "stages.context_extension.masking.rate", 0.30, "003 Method Summary 30% masking"),
    case(FI, "stages.annealing.masking.rate", 0.30, "003 Method Summary 30% masking"),
    *[case(FI, f"stages.{s}.packing", "none", "streaming_data.py:200-240 padded, not packed")
      for s in ("stable", "context_extension", "annealing")],
    case(FI, "tokenizer.name", "bpe", "003 Method Summary BPE tokenizers"),
    case(FI, "tokenizer.round_to_multiple_of", 64, "003 Critical path divisible by 64"),
    case(FI, "tokenizer.pre_tokenizer", "byte_level", "train_tokenizer_hf.py:98 ByteLevel"),
    case(FI, "tokenizer.byte_fallback", False, "train_tokenizer_hf.py:96 byte_fallback=False"),
    case(FI, "tokenizer.normalizer", "nfc", "train_tokenizer_hf.py:97 NFC"),
    case(FI, "optimizer.name", "adamw", "003 Method Summary AdamW"),
    case(FI, "optimizer.betas", [0.9, 0.98], "train_modernbert.py:235"),
    case(FI, "optimizer.eps", 1e-6, "train_modernbert.py:236"),
    case(FI, "optimizer.weight_decay", 1e-6, "example_config.yaml:64"),
    case(FI, "stages.stable.lr_schedule.name", "wsd", "003 Method Summary trapezoidal WSD"),
    case(FI, "stages.stable.lr_schedule.scope", "run", "003 Method Summary one trapezoid"),
    case(FI, "stages.stable.lr_schedule.warmup_steps", 1380, "train_modernbert.py:261 1% of 138,000"),
    case(FI, "stages.stable.lr_schedule.decay_start_stage", "annealing", "train_modernbert.py:273 97%"),
    case(FI, "stages.stable.lr_schedule.decay_origin_stage", "context_extension", "sheduler.py:65-67 from 85%"),
    case(FI, "stages.stable.lr_schedule.decay_shape", "1-sqrt", "sheduler.py:68"),
    # --- Chinese ModernBERT: 004 -------------------------------------------------------
    case(ZH, "metadata.language", "zh", "004 Chinese"),
    case(ZH, "model.num_hidden_layers", 28, "004 Method Summary 28 layers"),
    case(ZH, "model.hidden_size", 1024, "004 Method Summary 1024 hidden"),
    case(ZH, "model.num_attention_heads", 16, "004 Method Summary 16 heads"),
    case(ZH, "model.norm", "rmsnorm", "004 Method Summary RMSNorm"),
    case(ZH, "model.hidden_activation", "gelu", "004 Method Summary GeGLU"),
    case(ZH, "model.attention_bias", False, "004 Method Summary bias-free"),
    case(ZH, "model.mlp_bias", False, "004 Method Summary bias-free"),
    case(ZH, "model.norm_bias", False, "004 Method Summary bias-free"),
    case(ZH, "model.decoder_bias", False, "004 Method Summary bias-free"),
    case(ZH, "model.global_rope_theta", 80_000, "004 Foundational Learning theta 80,000 global"),
    case(ZH, "model.local_rope_theta", 10_000, "004 Foundational Learning theta 10,000 local"),
    case(ZH, "model.max_position_embeddings", 8192, "004 Method Summary 8,192"),
    case(ZH, "model.vocab_size", 32_000, "004 §3.1 32k BPE"),
    case(ZH, "tokenizer.name", "bpe", "004 §3.1 BPE"),
    case(ZH, "tokenizer.vocab_size", 32_000, "004 §3.1 32k BPE"),
    case(ZH, "tokenizer.round_to_multiple_of", 64, "004 §3.1 multiple of 64"),
    case(ZH, "stages.stage1.masking.name", "whole_word", "004 §3.2 whole-word masking"),
    case(ZH, "stages.stage2.masking.name", "whole_word", "004 §3.2 whole-word masking"),
    case(ZH, "stages.stage1.context.seq_len", 1024, "004 Method Summary Stage I 1k"),
    case(ZH, "stages.stage1.tokens", 1.1e12, "004 Method Summary Stage I 1.1T"),
    case(ZH, "stages.stage2.context.seq_len", 8192, "004 Method Summary Stage II 8k"),
    case(ZH, "stages.stage2.tokens", 0.1e12, "004 Method Summary Stage II 0.1T"),
    case(ZH, "stages.stage1.lr_schedule.name", "damped_cosine", "004 Method Summary damped cosine"),
    case(ZH, "stages.stage2.lr_schedule.name", "damped_cosine", "004 Method Summary damped cosine"),
    case(ZH, "stages.stage1.lr_schedule.cycles", 1, "choice: the outline's N"),
    case(ZH, "stages.stage2.lr_schedule.cycles", 1, "choice: the outline's N"),
]


@pytest.mark.parametrize("filename, path, expected", SEED_VALUES)
def test_seed_value(filename: str, path: str, expected: Any) -> None:
    got = pick(recipe(filename), path)
    if isinstance(expected, bool):  # False == 0 in Python; a flag must be the flag
        assert got is expected, f"{path}: {got!r} is not {expected!r}"
    else:
        assert got == expected, f"{path}: {got!r} != {expected!r}"


# --- each recipe as a whole ---------------------------------------------------------------


REGISTERED_NAMES = {
    LLMJP: "ja-llmjp",
    JA130: "ja-modernbert-ja",
    FI: "fi-modernbert",
    ZH: "zh-modernbert-wwm",
}


@pytest.mark.parametrize("filename", RECIPE_FILES)
def test_recipe_validates_against_schema(filename: str) -> None:
    r = recipe(filename)  # Recipe.model_validate: extra keys are refused
    assert r.metadata.name == REGISTERED_NAMES[filename]
    assert "mlm" in [e.name for e in r.evaluators]  # validation loss at every stage end


@pytest.mark.parametrize("filename", RECIPE_FILES)
def test_recipe_opens_with_its_commands(filename: str) -> None:
    text = recipe_path(filename).read_text(encoding="utf-8")
    header = text.split("\nmetadata:", 1)[0]
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines())
    assert f"encoder-recipes run recipes/{filename} --scale smoke" in header
    # the full-scale command: torchrun starts one process per GPU on `python -m encoder_recipes`
    assert re.search(rf"torchrun .*\n?.*-m encoder_recipes run recipes/{re.escape(filename)}", header)


@pytest.mark.parametrize("filename", RECIPE_FILES)
def test_recipe_sources_cover_cited_seeds(filename: str) -> None:
    """Every seed cited in a comment ("001 Table 1") is listed in metadata.sources."""
    text = recipe_path(filename).read_text(encoding="utf-8")
    comments = " ".join(line.partition("#")[2] for line in text.splitlines())
    cited = set(re.findall(r"(?:(?<=\s)|(?<=\())(00\d)(?=\s)", comments))
    listed = {s.file[:3] for s in recipe(filename).metadata.sources if s.file}
    assert cited, "a seed recipe cites its seed"
    assert cited <= listed, f"cited seeds {sorted(cited - listed)} are missing from metadata.sources"
    for source in recipe(filename).metadata.sources:
        if source.file:
            assert re.fullmatch(r"00\d_[0-9a-f]{16}\.txt", source.file)


def _has_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, dict):
        return any(_has_number(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_number(v) for v in value)
    return False


def numeric_lines(text: str) -> list[tuple[int, str, bool]]:
    """``(line number, line, has comment)`` for every YAML line whose value holds a number."""
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        code, hash_, _ = line.partition("#")
        value = code.strip()
        if not value:
            continue
        if value.startswith("- "):
            value = value[2:].strip()
        key_value = re.match(r"^[A-Za-z_][\w\-]*:\s*(.*)$", value)
        if key_value:
            value = key_value.group(1)
        if not value:
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            continue
        if _has_number(parsed):
            out.append((lineno, line, bool(hash_)))
    return out


def test_numeric_line_scanner_finds_uncommented_numbers() -> None:
    text = "a: 1  # cited\nb: 2\nc: {x: 3}\nd: text\n- 4.0e-4\ne: [1, 2]  # ok\n"
    found = [(n, has) for n, _, has in numeric_lines(text)]
    assert found == [(1, True), (2, False), (3, False), (5, False), (6, True)]


@pytest.mark.parametrize("filename", RECIPE_FILES)
def test_every_number_has_a_comment(filename: str) -> None:
    """A crude guard that no number went in without its citation (or its "not in the seed")."""
    text = recipe_path(filename).read_text(encoding="utf-8")
    lines = numeric_lines(text)
    assert len(lines) > 20
    bare = [f"{filename}:{n}: {line.strip()}" for n, line, has_comment in lines if not has_comment]
    assert not bare, "numbers without a comment:\n" + "\n".join(bare)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("filename", RECIPE_FILES)
def test_no_number_was_read_as_a_string(filename: str) -> None:
    """PyYAML reads ``5e-4`` (no dot) as a string; recipes write ``5.0e-4``."""
    suspicious = []
    for s in _strings(raw(filename)):
        try:
            float(s.replace("_", ""))
        except ValueError:
            continue
        suspicious.append(s)
    assert not suspicious


# --- derived checks -----------------------------------------------------------------------


def test_llmjp_stage1_tokens_match_paper() -> None:
    """001 §2.3: "up to 1.7T tokens during Stage 1 ... (500k steps × 3328 × 1024)"; Stage 2 0.6T."""
    r = recipe(LLMJP)
    s1, s2 = pick(r, "stages.stage1"), pick(r, "stages.stage2")
    tokens1 = s1.steps * s1.batch_size * s1.context.params["seq_len"]
    tokens2 = s2.steps * s2.batch_size * s2.context.params["seq_len"]
    assert tokens1 == 500_000 * 3328 * 1024
    assert tokens1 == pytest.approx(1.7e12, rel=0.01)
    assert tokens2 == pytest.approx(0.6e12, rel=0.05)


def test_llmjp_schedule_is_the_same_in_both_stages() -> None:
    r = recipe(LLMJP)
    assert pick(r, "stages.stage1.lr_schedule") == pick(r, "stages.stage2.lr_schedule")
    assert pick(r, "stages.stage1.masking") == pick(r, "stages.stage2.masking")


def test_ja130m_borrowed_configs_link_the_branch_that_holds_them() -> None:
    """ModernBERT's pre-training YAMLs live on the pretraining_documentation branch, not main."""
    urls = [s.url for s in recipe(JA130).metadata.sources if "AnswerDotAI/ModernBERT" in (s.url or "")]
    assert len(urls) == 3
    assert all("/blob/pretraining_documentation/yamls/modernbert/modernbert-base-" in u for u in urls)


def test_ja130m_head_dim_and_total_tokens() -> None:
    r = recipe(JA130)
    assert r.model.hidden_size // r.model.num_attention_heads == 64  # 002: head dimension 64
    # 002: "a total of approximately 4.39T training tokens"
    assert sum(s.tokens for s in r.stages) == pytest.approx(4.39e12, rel=1e-9)
    ce2 = pick(r, "stages.ce_phase2")
    assert ce2.tokens / ce2.epochs == pytest.approx(150e9)  # 002: "150B tokens ... for 3 epochs"


def test_finnish_context_extension_reaches_16k_in_six_steps() -> None:
    r = recipe(FI)
    lengths = pick(r, "stages.context_extension.context.lengths")
    assert len(lengths) == 6  # 003 Method Summary: "in six steps"
    assert lengths[-1] == 16384  # 003: "up to 16K tokens"
    assert lengths == sorted(set(lengths)) and lengths[0] > 1024
    assert pick(r, "stages.annealing.context.seq_len") == 16384
    assert r.model.max_position_embeddings >= 16384
    assert [s.name for s in r.stages] == ["stable", "context_extension", "annealing"]


def test_finnish_vocabulary_is_the_codes_large_size_rounded_to_64() -> None:
    r = recipe(FI)
    vocab = r.tokenizer.params["vocab_size"]
    assert vocab == -(-55_571 // 64) * 64  # train_tokenizer_hf.py:61-62 and its rounding loop, :68-75
    assert 27_000 <= vocab <= 128_000  # 003 Method Summary: 27K-128K
    assert r.model.vocab_size == vocab


# --- the authors' code, written out independently, against the recipe's plan -------------
# rakseli/finnish-modernberts: config-files/example_config.yaml and train_modernbert.py.
FI_RUN_STEPS = 8_832_000 // 64  # example_config.yaml:49 max_steps over 64 GPUs (train_modernbert.py:123)


def finnish_code_seq_len(step: int, final: int) -> int:
    """train_modernbert.py:340-367, seq_length_scheduler, for seq_length 1024."""
    warmup = int(FI_RUN_STEPS * 0.85)
    per_phase = (FI_RUN_STEPS - warmup) // 7
    idx = (step - warmup) // per_phase if step >= warmup else -1
    idx = max(-1, min(idx, 6))
    if idx == -1:
        return 1024
    return min(int(1024 + (idx + 1) * (final - 1024) / 6), final)


def finnish_code_lr(step: int) -> float:
    """sheduler.py:46-73, TrapezoidalLRSheduler, as built at train_modernbert.py:261-280."""
    warmup, constant, constant_2 = int(FI_RUN_STEPS * 0.01), int(FI_RUN_STEPS * 0.85), int(FI_RUN_STEPS * 0.97)
    base, seq_len_lr, min_lr = 3e-4, 5e-5, 1e-8
    if step <= warmup:
        return base * step / warmup
    if step <= constant:
        return base
    if step <= constant_2:
        return seq_len_lr
    progress = (step - constant) / (FI_RUN_STEPS - constant)
    return max(min_lr, min_lr + (base - min_lr) * (1 - progress ** 0.5))


@pytest.mark.parametrize("name, final", [("fi-modernbert", 16384), ("fi-modernbert-large-short", 8192)])
def test_finnish_plan_follows_the_released_code(registries, name: str, final: int) -> None:
    from encoder_recipes.components.context import Fixed, Stepwise
    from encoder_recipes.components.lr_schedules import WarmupStableDecay
    from encoder_recipes.validation import load_recipe

    r = load_recipe(name, registries=registries).recipe
    plan = build_plan(r, registries)
    assert plan.total_steps == FI_RUN_STEPS == 138_000
    assert [s.steps for s in plan.stages] == [117_300, 16_560, 4_140]  # card: 117,300 and 16,560 steps
    assert all(s.lr_schedule == r.stages[0].lr_schedule for s in r.stages)  # one trapezoid over the run
    schedule = WarmupStableDecay(**r.stages[0].lr_schedule.params)
    assert schedule.params.warmup_steps == int(plan.total_steps * 0.01)  # not stale against plan's steps
    contexts = [Fixed(**r.stages[0].context.params), Stepwise(**r.stages[1].context.params),
                Fixed(**r.stages[2].context.params)]
    # every step where the code changes something, and around it
    probes = sorted({0, 1, 700, 1379, 1380, 1381, 50_000, 117_299, 117_301, 120_000, 133_859, 133_861,
                     137_999} | {117_300 + 2957 * k + d for k in range(7) for d in (-1, 0, 1)})
    for step in probes:
        clock = plan.clock(step)
        stage = plan.stage_at(step)
        assert contexts[stage.index].seq_len(clock) == finnish_code_seq_len(step, final), step
        if step in (117_300, 133_860):  # the code switches LR one step after the phase starts
            continue
        ours = stage.lr * schedule.multiplier(clock)
        assert ours == pytest.approx(finnish_code_lr(step), rel=1e-4, abs=1e-12), step
    # the annealing opens at 3e-4 · (1 - sqrt(0.8)) ≈ 3.17e-5 and ends near 1e-8
    assert plan.stages[2].lr * schedule.multiplier(plan.clock(133_861)) == pytest.approx(3.17e-5, rel=1e-2)
    assert plan.stages[2].lr * schedule.multiplier(plan.clock(137_999)) < 5e-7


def test_chinese_mask_curriculum_rises_over_warmup_then_falls_to_15_percent(registries) -> None:
    """Paper §3.2: 15% -> 30% during warmup, then a linear decay to 15% (004 §3.2: "30% -> 15%")."""
    r = recipe(ZH)
    plan = build_plan(r, registries)
    warmup_end = pick(r, "stages.stage1.lr_schedule.warmup_steps") / plan.total_steps
    for stage in r.stages:
        masking = stage.masking.params
        schedule = [tuple(point) for point in masking["schedule"]]
        assert masking["scope"] == "run"
        assert schedule[0] == (0.0, 0.15)  # starts at 15%
        (peak_at, peak), last = schedule[1], schedule[-1]
        assert peak == 0.30 and peak_at == pytest.approx(warmup_end, abs=5e-6)  # 30% when warmup ends
        assert last == (1.0, 0.15)  # back to 15% at the end of the run
        assert len(schedule) == 3  # one rise, one straight fall


def test_chinese_data_sources_are_the_three_the_abstract_names() -> None:
    assert [s.name for s in recipe(ZH).data.sources] == ["cci3_hq", "cci4_zh", "cosmopedia_zh"]


def test_chinese_vocab_and_stage_two_has_lower_lr() -> None:
    r = recipe(ZH)
    assert r.model.vocab_size % 64 == 0 and r.model.vocab_size == 64 * 500
    s1, s2 = pick(r, "stages.stage1"), pick(r, "stages.stage2")
    assert s2.lr < s1.lr  # 004 Method Summary: Stage II "with lower learning rates"
    assert s1.tokens + s2.tokens == pytest.approx(1.2e12)  # 004: ~1.2 trillion tokens


# --- parameter counts on a real model (meta device: no memory, no weights) -----------------


def count_parameters(r: Recipe) -> tuple[int, int]:
    """(total, input embedding) parameters of ModernBertForMaskedLM with the recipe's shape."""
    torch = pytest.importorskip("torch")
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    m = r.model
    config = ModernBertConfig(
        vocab_size=m.vocab_size,
        hidden_size=m.hidden_size,
        intermediate_size=m.intermediate_size,
        num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads,
        attention_bias=m.attention_bias,
        mlp_bias=m.mlp_bias,
        norm_bias=m.norm_bias,
        decoder_bias=m.decoder_bias,
        # special-token ids must lie inside the vocabulary (the defaults are ModernBERT's 50k ids)
        pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
    )
    with torch.device("meta"):
        model = ModernBertForMaskedLM(config)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.model.embeddings.tok_embeddings.weight.numel()
    return total, embedding


@pytest.mark.parametrize(
    "filename, expected, ref",
    [
        pytest.param(LLMJP, 187e6, "001 §2.1", id="ja_llmjp 187M [001 §2.1]"),
        pytest.param(JA130, 132e6, "002 Model Series", id="ja_modernbert_ja 132M [002 Model Series]"),
        pytest.param(FI, 401e6, "card n_parameters 401M", id="fi_modernbert 401M [finnish-modernbert-large card]"),
    ],
)
def test_parameter_count_matches_source(filename: str, expected: float, ref: str) -> None:
    total, _ = count_parameters(recipe(filename))
    assert abs(total - expected) < 1e6, f"{total / 1e6:.2f}M parameters, {ref} says {expected / 1e6:.0f}M"


def test_finnish_large_short_is_the_475m_model(registries) -> None:
    """finnish-modernbert-large-short-cpt card: 475M, vocabulary 128K, sequence length 8192; 003's largest."""
    from encoder_recipes.validation import load_recipe

    r = load_recipe("fi-modernbert-large-short", registries=registries).recipe
    total, _ = count_parameters(r)
    assert abs(total - 475e6) < 1e6
    assert r.model.vocab_size == r.tokenizer.params["vocab_size"] == 128_000
    assert r.model.max_position_embeddings == 8192
    assert pick(r, "stages.context_extension.context.lengths") == [2218, 3413, 4608, 5802, 6997, 8192]
    assert pick(r, "stages.annealing.context.seq_len") == 8192
    base = recipe(FI)  # everything else is fi-modernbert's
    assert [(s.steps, s.batch_size, s.lr) for s in r.stages] == [(s.steps, s.batch_size, s.lr) for s in base.stages]


def test_ja130m_embedding_and_transformer_split() -> None:
    """002: "52M parameters in the embedding layer, 80M parameters in the Transformer layers"."""
    total, embedding = count_parameters(recipe(JA130))
    assert abs(embedding - 52e6) < 1e6
    assert abs((total - embedding) - 80e6) < 1e6


def test_chinese_embedding_share_is_near_the_reported_nine_percent() -> None:
    """004 Mechanism 1: the 32k vocabulary is 9.0% of the parameters; checks the chosen intermediate size."""
    total, embedding = count_parameters(recipe(ZH))
    assert embedding / total == pytest.approx(0.090, abs=0.005)
