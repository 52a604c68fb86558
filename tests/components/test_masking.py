"""The built-in masking strategies: rates, the 80/10/10 split, whole words, schedules."""

from __future__ import annotations

import fugashi
import jieba
import pytest
import torch
from pydantic import ValidationError

from encoder_recipes.clock import Clock
from encoder_recipes.components.masking import TokenMasking, WholeWordMasking, word_ids_from_offsets
from encoder_recipes.components.tokenizers import BPE
from encoder_recipes.plugin_manager import new_plugin_manager
from encoder_recipes.plugins.builtin import plugin as builtin

VOCAB = 1000
CLS, SEP, MASK, PAD = 0, 1, 2, 3
SPECIAL_IDS = torch.tensor([CLS, SEP, MASK, PAD, 4])


def batch(rows: int = 270, length: int = 1000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of random ordinary tokens framed by [CLS] ... [SEP] and right-padded."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, length), generator=g)
    lengths = torch.randint(length // 2, length - 1, (rows,), generator=g)
    pos = torch.arange(length)
    ids[:, 0] = CLS
    ids[pos.expand(rows, -1) == lengths[:, None]] = SEP
    ids[pos[None, :] > lengths[:, None]] = PAD
    special = torch.isin(ids, SPECIAL_IDS)
    return ids, special


def run(masking, ids, special, rate, seed=0, word_ids=None):
    return masking.mask(ids, rate=rate, special_tokens_mask=special, mask_token_id=MASK, vocab_size=VOCAB,
                        generator=torch.Generator().manual_seed(seed), word_ids=word_ids, special_ids=SPECIAL_IDS)


def check_split(ids, special, inputs, labels, rate):
    """Selected share within a point of ``rate``; 80/10/10 within a point; specials untouched."""
    selected = labels != -100
    assert not selected[special].any()
    assert torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[selected], ids[selected])
    n = int(selected.sum())
    assert abs(n / int((~special).sum()) - rate) < 0.01
    masked = selected & (inputs == MASK)
    kept = selected & (inputs == ids)
    randomised = selected & ~masked & ~kept
    # A random draw can hit the original token (p ≈ 1/995); it then counts as kept, well inside a point.
    assert abs(int(masked.sum()) / n - 0.8) < 0.01
    assert abs(int(kept.sum()) / n - 0.1) < 0.01
    assert abs(int(randomised.sum()) / n - 0.1) < 0.01
    assert not torch.isin(inputs[randomised], SPECIAL_IDS).any()
    assert torch.equal(inputs[~selected], ids[~selected])


@pytest.mark.parametrize("rate", [0.3, 0.15])
def test_mlm_rate_and_split(rate):
    ids, special = batch()  # ~200k ordinary tokens
    inputs, labels = run(TokenMasking(), ids, special, rate)
    check_split(ids, special, inputs, labels, rate)


def test_mlm_is_reproducible_from_the_generator():
    ids, special = batch(rows=8, length=128)
    first = run(TokenMasking(), ids, special, 0.3, seed=7)
    again = run(TokenMasking(), ids, special, 0.3, seed=7)
    other = run(TokenMasking(), ids, special, 0.3, seed=8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


def test_random_replacements_never_special_even_from_a_tiny_vocab():
    ids = torch.full((4, 400), 6)
    special = torch.zeros_like(ids, dtype=torch.bool)
    masking = TokenMasking(mask_replace_prob=0.0, random_replace_prob=1.0)
    inputs, labels = masking.mask(ids, rate=0.9, special_tokens_mask=special, mask_token_id=MASK, vocab_size=8,
                                  generator=torch.Generator().manual_seed(0), special_ids=SPECIAL_IDS)
    drawn = inputs[labels != -100]
    assert set(drawn.tolist()) == {5, 6, 7}


def test_special_ids_are_never_selected_even_if_the_mask_misses_them():
    ids, _ = batch(rows=4, length=64)
    inputs, labels = run(TokenMasking(), ids, torch.zeros_like(ids, dtype=torch.bool), 0.9)
    assert not torch.isin(ids[labels != -100], SPECIAL_IDS).any()


def clock(step: int, total: int = 100) -> Clock:
    return Clock(step=step, total_steps=total, stage="s", stage_index=0, stage_step=step, stage_steps=total,
                 stage_starts={"s": 0})


def test_rate_schedule_is_piecewise_linear_and_flat_outside():
    masking = TokenMasking(schedule=[(0.1, 0.3), (0.6, 0.15)])
    assert masking.rate(clock(0)) == pytest.approx(0.3)
    assert masking.rate(clock(10)) == pytest.approx(0.3)
    assert masking.rate(clock(35)) == pytest.approx(0.225)
    assert masking.rate(clock(60)) == pytest.approx(0.15)
    assert masking.rate(clock(99)) == pytest.approx(0.15)
    assert TokenMasking(rate=0.2).rate(clock(50)) == 0.2


def test_rate_schedule_over_the_run():
    masking = WholeWordMasking(schedule=[(0.0, 0.3), (1.0, 0.1)], scope="run")
    c = Clock(step=50, total_steps=100, stage="b", stage_index=1, stage_step=0, stage_steps=50,
              stage_starts={"a": 0, "b": 50})
    assert masking.rate(c) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "params",
    [
        {"rate": 0.0},
        {"rate": 1.0},
        {"schedule": [(0.5, 0.3), (0.2, 0.15)]},
        {"schedule": [(0.0, 0.3), (1.5, 0.15)]},
        {"schedule": [(0.0, 1.3)]},
        {"schedule": []},
        {"mask_replace_prob": 0.8, "random_replace_prob": 0.3},
        {"scope": "epoch"},
        {"mlm_probability": 0.3},
    ],
)
def test_bad_params_are_refused(params):
    with pytest.raises(ValidationError):
        TokenMasking(**params)


# --- whole words -----------------------------------------------------------------


def test_word_ids_from_offsets_hand_made():
    text = "the cat sat"
    spans = [(0, 3), (4, 7), (8, 11)]
    # [CLS] ▁the ▁c at ▁ sat [SEP]: "▁c" starts at the space, a lone "▁" glues onto "sat".
    offsets = [(0, 0), (0, 3), (3, 5), (5, 7), (7, 8), (8, 11), (0, 0)]
    assert word_ids_from_offsets(offsets, spans) == [-1, 0, 1, 1, 2, 2, -1]
    assert text[4:7] == "cat"
    # Unspaced text: tokens inside and across words; a token outside all words.
    spans = [(0, 2), (2, 3), (3, 5)]
    offsets = [(0, 1), (1, 2), (2, 3), (3, 5), (5, 6)]
    assert word_ids_from_offsets(offsets, spans) == [0, 0, 1, 2, -1]
    assert word_ids_from_offsets([], spans) == []


def fugashi_spans(tagger: fugashi.Tagger, text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for word in tagger(text):
        start = text.index(word.surface, pos)
        spans.append((start, start + len(word.surface)))
        pos = start + len(word.surface)
    return spans


def jieba_spans(text: str) -> list[tuple[int, int]]:
    return [(start, end) for _, start, end in jieba.tokenize(text) if text[start:end].strip()]


JA = [
    "今日は朝から雨が降っていたので、傘を持って出かけました。",
    "東京駅の近くに新しい本屋ができたそうです。",
    "私の兄は大学で物理学を勉強しています。",
    "週末には家族と一緒に公園を散歩するのが好きです。",
    "この料理は少し辛いけれど、とても美味しい。",
    "図書館で借りた本を明日までに返さなければならない。",
    "電車が遅れたので、会議に十分ほど遅刻してしまった。",
    "富士山の頂上から見た日の出は忘れられない。",
]
ZH = [
    "今天早上下了一场大雨，我带着雨伞去上班。",
    "北京大学的图书馆里有很多珍贵的古书。",
    "我哥哥在医院当医生，每天工作都很忙。",
    "周末我们全家一起去公园散步。",
    "这道菜虽然有点辣，但是非常好吃。",
    "火车晚点了，所以我开会迟到了十分钟。",
    "他正在学习人工智能和机器学习。",
    "从山顶上看日出，真是令人难忘。",
]


@pytest.fixture(scope="module")
def cjk_tokenizer(tmp_path_factory):
    """A real BPE trained on the sentences, saved and reloaded from a temp dir."""
    from transformers import AutoTokenizer

    tok = BPE(min_frequency=1).build(texts=(JA + ZH) * 3, vocab_size=640, language="ja", segmenter=None)
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def word_batch(tokenizer, texts, spans_of):
    enc = tokenizer(texts, padding=True, return_offsets_mapping=True, return_special_tokens_mask=True,
                    return_tensors="pt")
    word_ids = torch.tensor([
        word_ids_from_offsets([tuple(o) for o in offsets.tolist()], spans_of(text))
        for text, offsets in zip(texts, enc["offset_mapping"])
    ])
    # Padding has offsets (0, 0) too, so it gets -1 like the other specials.
    return enc["input_ids"], enc["special_tokens_mask"].bool(), word_ids


@pytest.mark.parametrize("language", ["ja", "zh"])
def test_whole_word_masks_every_word_entirely_or_not_at_all(cjk_tokenizer, language):
    if language == "ja":
        tagger = fugashi.Tagger()
        texts, spans_of = JA, lambda t: fugashi_spans(tagger, t)
    else:
        texts, spans_of = ZH, jieba_spans
    ids, special, word_ids = word_batch(cjk_tokenizer, texts, spans_of)
    assert (word_ids[~special] >= 0).all() and (word_ids[special] == -1).all()
    # Some word spans more than one token, so the test can tell words from tokens.
    row_words = [w[w >= 0].tolist() for w in word_ids]
    assert any(len(ws) > len(set(ws)) for ws in row_words)
    masking = WholeWordMasking()
    special_ids = torch.tensor(cjk_tokenizer.all_special_ids)
    saw_partial_treatment = False
    for seed in range(20):
        inputs, labels = masking.mask(
            ids, rate=0.4, special_tokens_mask=special, mask_token_id=cjk_tokenizer.mask_token_id,
            vocab_size=len(cjk_tokenizer), generator=torch.Generator().manual_seed(seed), word_ids=word_ids,
            special_ids=special_ids)
        selected = labels != -100
        assert not selected[special].any()
        for r in range(ids.shape[0]):
            for w in set(row_words[r]):
                in_word = word_ids[r] == w
                assert selected[r, in_word].all() or not selected[r, in_word].any()
                if selected[r, in_word].any():
                    # One treatment per word: all [MASK], or none of them.
                    is_mask = inputs[r, in_word] == cjk_tokenizer.mask_token_id
                    assert is_mask.all() or not is_mask.any()
                    saw_partial_treatment |= bool(in_word.sum() > 1)
    assert saw_partial_treatment


def test_whole_word_rate_and_split_statistics():
    ids, special = batch()
    # Words of 1–4 tokens, numbered within each row; specials and padding are -1.
    g = torch.Generator().manual_seed(3)
    word_len = torch.randint(1, 5, ids.shape, generator=g)
    starts = torch.rand(ids.shape, generator=g) < 1 / word_len.float()
    word_ids = torch.cumsum(starts.long(), dim=1) - 1
    word_ids[special] = -1
    inputs, labels = run(WholeWordMasking(), ids, special, 0.3, word_ids=word_ids)
    selected = labels != -100
    n = int(selected.sum())
    # Token share ≈ rate (within 1.5 points: fewer independent draws than token masking).
    assert abs(n / int((~special).sum()) - 0.3) < 0.015
    masked = selected & (inputs == MASK)
    assert abs(int(masked.sum()) / n - 0.8) < 0.015
    assert not torch.isin(inputs[selected & (inputs != MASK)], SPECIAL_IDS).any()


def test_whole_word_needs_word_ids():
    ids, special = batch(rows=2, length=16)
    assert WholeWordMasking.needs_words and not TokenMasking.needs_words
    with pytest.raises(ValueError, match="word_ids"):
        run(WholeWordMasking(), ids, special, 0.3)


def test_maskings_are_registered_by_name():
    pm = new_plugin_manager()
    pm.register(builtin, name="builtin")
    classes = [c for group in pm.hook.encoder_recipes_register_maskings() for c in group]
    assert {c.name: c for c in classes} == {"mlm": TokenMasking, "whole_word": WholeWordMasking}
    assert all(c.kind == "masking" and c.summary() for c in classes)
