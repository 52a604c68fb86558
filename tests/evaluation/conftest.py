"""Fixtures for the evaluator tests: a real tokenizer trained in a temp dir, tiny real models, and a
small sample corpus written into a temp cache (so the tests never need the fetched one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM

from encoder_recipes.components.tokenizers import BPE
from encoder_recipes.data.samples import FORMAT_VERSION

#: Help-page-like documents: a section, a page path, paragraphs on one topic each.
TOPICS = {
    "swriter": ["text documents", "paragraph styles", "page margins", "footnotes", "tables of contents"],
    "scalc": ["spreadsheet cells", "formulas in cells", "sorting rows", "pivot tables", "cell references"],
    "sbasic": ["basic macros", "the macro editor", "string functions", "loops in basic", "dialogs in basic"],
}
TEMPLATES = [
    "How to work with {t}",
    "This page explains {t} and the commands that change {t} in the current document.",
    "Choose the menu entry for {t} and set the options you need in the dialog that opens.",
    "Tip: you can also reach {t} from the context menu, which lists the most used commands.",
]


def help_pages() -> list[dict]:
    pages = []
    for section, topics in TOPICS.items():
        for i, topic in enumerate(topics):
            paras = [t.format(t=topic) for t in TEMPLATES]
            pages.append({"text": "\n".join(paras), "source": "test", "page": f"text/{section}/01/{i:04d}.html"})
    return pages


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory) -> Path:
    """A complete sample corpus for "en" and "fi" (with pairs) in a temp cache dir."""
    root = tmp_path_factory.mktemp("cache")
    pages = help_pages()
    for lang in ("en", "fi"):
        folder = root / "samples" / lang
        folder.mkdir(parents=True)
        # train and validation hold the same pages here: the tests check machinery, not generalisation
        for split in ("train", "validation"):
            (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(p) for p in pages) + "\n", encoding="utf-8")
        if lang == "fi":
            rows = [{"page": p["page"], "id": f"par{i}", "text": para.upper(), "en": para, "split": "validation"}
                    for p in pages for i, para in enumerate(p["text"].split("\n"))]
            (folder / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
        (folder / "meta.json").write_text(json.dumps({"format": FORMAT_VERSION}), encoding="utf-8")
    return root


@pytest.fixture
def use_sample_cache(sample_cache, monkeypatch) -> Path:
    monkeypatch.setenv("ENCODER_RECIPES_CACHE", str(sample_cache))
    return sample_cache


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """A real BPE tokenizer (the project's own component) trained on the help pages, saved and reloaded."""
    from transformers import AutoTokenizer

    texts = [p["text"] for p in help_pages()] * 3
    tok = BPE(vocab_size=384, byte_fallback=False).build(texts=texts, language="en")
    path = tmp_path_factory.mktemp("tokenizer")
    tok.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def tiny_modernbert(tokenizer, *, seed: int = 0, max_positions: int = 256, **overrides) -> ModernBertForMaskedLM:
    torch.manual_seed(seed)
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=max_positions, local_attention=16, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id, **overrides,
    )
    return ModernBertForMaskedLM(config).eval()


@pytest.fixture
def model(tokenizer):
    return tiny_modernbert(tokenizer)
