"""Exported directories reload faithfully: stock LayerNorm ModernBERT and the RMSNorm variant (remote code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    pipeline,
)
from transformers.dynamic_module_utils import get_imports

from encoder_recipes.modeling.build import build_model, special_ids_from_tokenizer
from encoder_recipes.modeling.export import export_model, load_model
from encoder_recipes.modeling.modeling_modernbert_rms import ModernBertRMSForMaskedLM
from encoder_recipes.schema import ModelConfig

SENTENCES = [
    "the cat sat on the mat",
    "the dog ate the bone in the garden",
    "a small bird sang in the old tree",
    "the cat chased the bird across the garden",
    "my dog sleeps on the mat every night",
]
CARD = "# tiny-test\n\nA test export.\n"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> PreTrainedTokenizerFast:
    """A real WordLevel tokenizer trained on a few sentences, saved and reloaded like a recipe's."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def tiny(**overrides) -> ModelConfig:
    base = dict(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=2,
        local_attention=4,
        global_attn_every_n_layers=2,
        max_position_embeddings=64,
        initializer_range=0.2,  # sharper than the default so the reload comparison means something
    )
    return ModelConfig(**{**base, **overrides})


def make(tokenizer, norm: str) -> nn.Module:
    specials = special_ids_from_tokenizer(tokenizer)
    model = build_model(tiny(norm=norm), vocab_size=len(tokenizer), special_ids=specials, seed=0)
    return model.eval()


def encode(tokenizer) -> dict[str, torch.Tensor]:
    return tokenizer(["the cat [MASK] on the mat", "a bird"], padding=True, return_tensors="pt")


@torch.no_grad()
def logits(model: nn.Module, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    return model.eval()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


@pytest.fixture(scope="module")
def ln_export(tokenizer, tmp_path_factory) -> tuple[nn.Module, Path]:
    model = make(tokenizer, "layernorm")
    return model, export_model(model, tokenizer, tmp_path_factory.mktemp("exports") / "ln", card=CARD)


@pytest.fixture(scope="module")
def rms_export(tokenizer, tmp_path_factory) -> tuple[nn.Module, Path]:
    model = make(tokenizer, "rmsnorm")
    return model, export_model(model, tokenizer, tmp_path_factory.mktemp("exports") / "rms", card=CARD)


def test_special_ids_from_tokenizer(tokenizer):
    ids = special_ids_from_tokenizer(tokenizer)
    assert ids == {"pad": tokenizer.convert_tokens_to_ids("[PAD]"), "cls": tokenizer.convert_tokens_to_ids("[CLS]"),
                   "sep": tokenizer.convert_tokens_to_ids("[SEP]")}  # fmt: skip


# -- LayerNorm (stock ModernBERT) --------------------------------------------


def test_layernorm_export_layout(ln_export):
    _, out = ln_export
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["ModernBertForMaskedLM"]
    assert config["model_type"] == "modernbert" and "auto_map" not in config
    assert config["layer_types"] == ["full_attention", "sliding_attention", "full_attention"]
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert (out / "README.md").read_text() == CARD
    assert not list(out.glob("*.py"))  # stock model: no code shipped
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_layernorm_reload_gives_same_logits(ln_export, tokenizer):
    model, out = ln_export
    enc = encode(tokenizer)
    reloaded = AutoModelForMaskedLM.from_pretrained(out)
    assert type(reloaded) is type(model)
    torch.testing.assert_close(logits(reloaded, enc), logits(model, enc), rtol=0, atol=1e-5)
    torch.testing.assert_close(logits(load_model(out), enc), logits(model, enc), rtol=0, atol=1e-5)


def test_fill_mask_pipeline_on_layernorm_export(ln_export, tokenizer):
    model, out = ln_export
    fill = pipeline("fill-mask", model=str(out), tokenizer=str(out))
    answers = fill("the cat [MASK] on the mat", top_k=3)
    assert len(answers) == 3
    # The pipeline's ranking is the in-memory model's ranking at the mask.
    enc = tokenizer("the cat [MASK] on the mat", return_tensors="pt")
    at_mask = logits(model, enc)[0, (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().item()]
    assert [a["token"] for a in answers] == at_mask.topk(3).indices.tolist()
    assert all(a["token_str"] == tokenizer.decode([a["token"]]) for a in answers)


# -- RMSNorm variant (custom code in the directory) ---------------------------


def test_rmsnorm_export_ships_self_contained_code(rms_export):
    _, out = rms_export
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "modernbert_rms" and config["norm_type"] == "rmsnorm"
    assert config["architectures"] == ["ModernBertRMSForMaskedLM"]
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_modernbert_rms.ModernBertRMSForMaskedLM"
    assert config["auto_map"]["AutoConfig"] == "modeling_modernbert_rms.ModernBertRMSConfig"
    shipped = sorted(out.glob("*.py"))
    assert [p.name for p in shipped] == ["modeling_modernbert_rms.py"]
    for path in shipped:
        assert "encoder_recipes" not in path.read_text()
        assert set(get_imports(path)) <= {"torch", "transformers"}  # what transformers checks before running it


def test_rmsnorm_reload_with_remote_code_gives_same_logits(rms_export, tokenizer):
    model, out = rms_export
    enc = encode(tokenizer)
    reloaded = AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=True)
    # Loaded from the directory's copy, not from this package.
    assert type(reloaded).__module__.startswith("transformers_modules.")
    assert type(reloaded).__name__ == "ModernBertRMSForMaskedLM"
    assert not any(isinstance(m, nn.LayerNorm) for m in reloaded.modules())
    assert sum(isinstance(m, nn.RMSNorm) for m in reloaded.modules()) == 1 + 2 + 3 + 1 + 1
    torch.testing.assert_close(logits(reloaded, enc), logits(model, enc), rtol=0, atol=1e-5)

    base = AutoModel.from_pretrained(out, trust_remote_code=True)
    with torch.no_grad():
        hidden = base.eval()(**enc).last_hidden_state
        expected = model.model(**enc).last_hidden_state
    torch.testing.assert_close(hidden, expected, rtol=0, atol=1e-5)


def test_rmsnorm_load_model_uses_package_class(rms_export, tokenizer):
    model, out = rms_export
    enc = encode(tokenizer)
    loaded = load_model(out)
    assert type(loaded) is ModernBertRMSForMaskedLM  # this package's class, nothing executed from the directory
    torch.testing.assert_close(logits(loaded, enc), logits(model, enc), rtol=0, atol=1e-5)
    remote = load_model(out, trust_remote_code=True)
    assert type(remote).__module__.startswith("transformers_modules.")


def test_rmsnorm_without_remote_code_fails_loudly(rms_export):
    _, out = rms_export
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=False)
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoConfig.from_pretrained(out, trust_remote_code=False)
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("fill-mask", model=str(out), tokenizer=str(out), trust_remote_code=False)


def test_fill_mask_pipeline_on_rmsnorm_export(rms_export):
    _, out = rms_export
    fill = pipeline("fill-mask", model=str(out), tokenizer=str(out), trust_remote_code=True)
    assert len(fill("the dog [MASK] the bone", top_k=4)) == 4


def test_rmsnorm_export_loads_without_this_package(rms_export, tmp_path):
    """A user without encoder_recipes: block the package in a fresh interpreter and load from the directory."""
    _, out = rms_export
    script = (
        "import sys; sys.modules['encoder_recipes'] = None\n"  # any import of it now raises
        "import torch; from transformers import AutoModelForMaskedLM\n"
        f"m = AutoModelForMaskedLM.from_pretrained({str(out)!r}, trust_remote_code=True)\n"
        "print(type(m).__name__, sum(isinstance(x, torch.nn.RMSNorm) for x in m.modules()))\n"
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ModernBertRMSForMaskedLM", "8"]


# -- atomic writes -------------------------------------------------------------


def test_export_replaces_an_earlier_export(tokenizer, tmp_path):
    out = tmp_path / "model"
    export_model(make(tokenizer, "layernorm"), tokenizer, out, card="old")
    export_model(make(tokenizer, "rmsnorm"), tokenizer, out)
    assert json.loads((out / "config.json").read_text())["model_type"] == "modernbert_rms"
    assert not (out / "README.md").exists()  # nothing left over from the first export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_failed_export_leaves_nothing(tokenizer, tmp_path):
    out = tmp_path / "model"
    with pytest.raises(TypeError):
        export_model(make(tokenizer, "layernorm"), tokenizer, out, card=123)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_foreign_directory(tokenizer, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        export_model(make(tokenizer, "layernorm"), tokenizer, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
