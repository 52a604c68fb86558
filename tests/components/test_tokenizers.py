"""The built-in tokenizers: trained BPE and Unigram, and loading a saved one."""

from __future__ import annotations

import importlib
import inspect

import fugashi
import pytest
import torch
from pydantic import ValidationError
from transformers import AutoTokenizer, ModernBertConfig, ModernBertForMaskedLM, pipeline

from encoder_recipes.components.segmenters import WordSegmenter
from encoder_recipes.components.tokenizers import BPE, BYTE_TOKENS, SPECIAL_TOKENS, Pretrained, UnigramTokenizer
from encoder_recipes.plugin_manager import new_plugin_manager
from encoder_recipes.plugins.builtin import plugin as builtin

STDLIB = ["os", "json", "re", "collections", "inspect", "functools", "itertools", "argparse",
          "logging", "pathlib", "textwrap", "string", "dataclasses", "enum", "abc", "shutil", "tempfile"]


def english_texts() -> list[str]:
    """A few hundred real English paragraphs: the docstrings the standard library ships."""
    texts = []
    for name in STDLIB:
        module = importlib.import_module(name)
        texts.append(inspect.getdoc(module) or "")
        for obj in vars(module).values():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == name:
                texts.append(inspect.getdoc(obj) or "")
    return [t for t in texts if t]


JA = [
    "今日は朝から雨が降っていた。", "東京駅の近くに新しい本屋ができた。", "私の兄は大学で物理学を勉強している。",
    "週末は家族と公園を散歩するのが好きです。", "この料理は少し辛いけれど美味しい。", "図書館で借りた本を明日返します。",
    "電車が遅れたので会議に遅刻した。", "富士山の頂上から日の出を見た。", "猫が窓の外をじっと見ている。",
    "駅前の喫茶店でコーヒーを飲んだ。", "子供たちが公園で元気に遊んでいる。", "来年は京都に旅行する予定です。",
    "彼女は毎朝六時に起きて走る。", "新しいパソコンを買うかどうか迷っている。", "先生の説明はとても分かりやすかった。",
    "冬になると北海道は雪で真っ白になる。", "友達と映画を見に行く約束をした。", "祖母は庭で野菜を育てている。",
    "このアプリは使い方が簡単だ。", "夏休みに海で泳ぐのが楽しみだ。", "会社の近くに大きな病院がある。",
    "日本語の文法は難しいと言われる。", "彼は毎晩遅くまで仕事をしている。", "桜の花が川沿いに咲いている。",
    "駅から家まで歩いて十分かかる。", "弟はサッカーの試合で点を取った。", "明日の天気は晴れのち曇りだそうだ。",
    "図書館は月曜日が休みです。", "母が作ったカレーは世界一美味しい。", "電車の中で本を読むのが好きだ。",
]
ZH = [
    "今天早上下了一场大雨。", "北京大学的图书馆很大。", "我哥哥在医院当医生。", "周末我们去公园散步。",
    "这道菜有点辣但很好吃。", "火车晚点了十分钟。", "他正在学习人工智能。", "从山顶上看日出很美。",
    "我每天早上喝一杯咖啡。", "孩子们在操场上踢足球。", "明年我打算去上海旅行。", "她的中文说得非常流利。",
    "这本小说我已经看完了。", "冬天北方经常下雪。", "我们明天下午开会。", "老师的解释很清楚。",
    "商店里的水果很新鲜。", "他每天晚上都工作到很晚。", "春天公园里开满了花。", "这个软件很容易使用。",
    "我的手机没有电了。", "爷爷喜欢在院子里种菜。", "地铁站离我家不远。", "妈妈做的饺子最好吃。",
    "我们一起去看电影吧。", "这条河的水很清澈。", "他考试得了第一名。", "图书馆星期一不开门。",
    "昨天晚上我睡得很早。", "学习外语需要耐心。",
]


class FugashiSegmenter(WordSegmenter):
    """MeCab words (unidic-lite) as character spans."""

    name = "fugashi"

    def __init__(self) -> None:
        self.tagger = fugashi.Tagger()

    def spans(self, text: str) -> list[tuple[int, int]]:
        spans, pos = [], 0
        for word in self.tagger(text):
            start = text.index(word.surface, pos)
            pos = start + len(word.surface)
            spans.append((start, pos))
        return spans


@pytest.fixture(scope="module")
def english():
    return english_texts()


@pytest.fixture(scope="module", params=[BPE, UnigramTokenizer], ids=["bpe", "unigram"])
def saved(request, english, tmp_path_factory):
    """A tokenizer trained on English, Japanese and Chinese, saved and reloaded with AutoTokenizer."""
    tok = request.param().build(texts=english + JA * 3 + ZH * 3, vocab_size=1000, language="en", segmenter=None)
    path = tmp_path_factory.mktemp(request.param.name)
    tok.save_pretrained(path)
    return path, AutoTokenizer.from_pretrained(path)


def test_english_texts_are_a_real_corpus(english):
    assert len(english) > 300


def test_vocab_is_a_multiple_of_64_with_specials_and_bytes(saved):
    _, tok = saved
    assert len(tok) % 64 == 0 and len(tok) >= 1000
    vocab = tok.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert [vocab[b] for b in BYTE_TOKENS] == list(range(5, 261))
    assert (tok.cls_token, tok.sep_token, tok.mask_token, tok.pad_token, tok.unk_token) == (
        "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]")


@pytest.mark.parametrize("text", [
    "Return a new dictionary initialized from an optional positional argument.",
    "今日は朝から雨が降っていた。",
    "我们一起去看电影吧。",
    "Mixed 日本語 and English, with 123 numbers!",
])
def test_round_trip(saved, text):
    _, tok = saved
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text


@pytest.mark.parametrize("text", ["I ❤ 🦜 parrots", "鬱蒼とした森", "𠮷野家"])
def test_unseen_characters_fall_back_to_bytes(saved, text):
    _, tok = saved
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert any(5 <= i < 261 for i in ids)  # some byte tokens were needed
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_pairs_and_inputs(saved):
    _, tok = saved
    enc = tok("first part", "second part")
    ids = enc["input_ids"]
    assert ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2 and ids[-1] == tok.sep_token_id
    assert set(enc) == {"input_ids", "attention_mask"}  # ModernBERT takes no token_type_ids


def test_fill_mask_pipeline_runs_with_a_tiny_modernbert(saved):
    path, tok = saved
    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=128, local_attention=16, pad_token_id=tok.pad_token_id,
        cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    )
    model = ModernBertForMaskedLM(config).eval()
    fill = pipeline("fill-mask", model=model, tokenizer=tok, device="cpu")
    out = fill("The module returns a [MASK] value.", top_k=3)
    assert len(out) == 3 and all(o["token"] < len(tok) for o in out)
    # [MASK] takes the space before it, so the pipeline scores a word, not a lone "▁".
    ids = tok("returns a [MASK] value")["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[ids.index(tok.mask_token_id) - 1] != "▁"


def test_rounding_to_another_multiple_and_without_byte_fallback(english):
    tok = BPE(round_to_multiple_of=96, byte_fallback=False).build(
        texts=english, vocab_size=500, language="en", segmenter=None)
    assert len(tok) % 96 == 0
    assert "<0x41>" not in tok.get_vocab()
    assert tok.unk_token_id in tok("a 🦜")["input_ids"]  # nothing to fall back to


def test_max_train_documents_stops_reading(english):
    consumed = []

    def stream():
        for text in english:
            consumed.append(text)
            yield text

    BPE(max_train_documents=5).build(texts=stream(), vocab_size=400, language="en", segmenter=None)
    assert len(consumed) == 5


def multi_char_tokens(tok) -> list[str]:
    pieces = [p.lstrip("▁") for p in tok.get_vocab()]
    return [p for p in pieces if len(p) > 1 and not p.startswith(("<", "["))]


def test_morphological_tokens_stay_inside_words():
    segmenter = FugashiSegmenter()
    words = {w for text in JA for w in segmenter.words(text)}
    inside_a_word = lambda piece: any(piece in w for w in words)  # noqa: E731
    morph = BPE(pre_tokenizer="morphological", min_frequency=1).build(
        texts=JA * 2, vocab_size=640, language="ja", segmenter=segmenter)
    plain = BPE(min_frequency=1).build(texts=JA * 2, vocab_size=640, language="ja", segmenter=None)
    assert multi_char_tokens(morph) and all(inside_a_word(p) for p in multi_char_tokens(morph))
    # Without the segmenter, BPE learns pieces across word boundaries (e.g. "は朝").
    assert not all(inside_a_word(p) for p in multi_char_tokens(plain))
    # At encode time no segmenter runs: raw text in, and it round-trips.
    text = "明日は雨が降るそうだ。"
    assert morph.decode(morph(text)["input_ids"], skip_special_tokens=True) == text


def test_morphological_needs_a_segmenter():
    with pytest.raises(ValueError, match="segmenter"):
        UnigramTokenizer(pre_tokenizer="morphological").build(texts=JA, vocab_size=512, language="xx", segmenter=None)


FI = ["Turkua on perinteisesti pidetty Suomen porttina länteen.",
      "Aurajoen suulle syntynyt kaupunki on aina ollut merkittävä satamakaupunki.",
      "Huset Montfort av Bretagne regerade i hertigdömet Bretagne från 1365 till 1514.",
      "Oaidnit tabeallas ahte leat unnán ohccit ja unnán oahppit."] * 5


def test_byte_level_bpe_with_nfc_as_the_finnish_modernberts_train_it(english):
    tok = BPE(pre_tokenizer="byte_level", byte_fallback=False, normalizer="nfc").build(
        texts=english + FI, vocab_size=800, language="fi", segmenter=None)
    assert len(tok) % 64 == 0
    vocab = tok.get_vocab()
    assert "<0x41>" not in vocab and "Ġ" in vocab  # byte-level symbols, not byte-fallback pieces
    for text in ["Suomen porttina länteen.", "I ❤ 🦜 parrots", "čađahit skuvlaoahpu"]:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids  # every byte is a symbol: nothing is unknown
        assert tok.decode(ids, skip_special_tokens=True) == text
    # NFC: a decomposed "a" + combining diaeresis encodes exactly as the composed "ä"
    assert tok("la\u0308nteen")["input_ids"] == tok("länteen")["input_ids"]
    plain = BPE(pre_tokenizer="byte_level", byte_fallback=False).build(
        texts=english + FI, vocab_size=800, language="fi", segmenter=None)
    assert plain("la\u0308nteen")["input_ids"] != plain("länteen")["input_ids"]


def test_vocab_size_is_required():
    with pytest.raises(ValueError, match="vocab_size"):
        BPE().build(texts=JA, vocab_size=None, language="ja", segmenter=None)
    # The component's own vocab_size applies when the recipe passes none.
    assert len(BPE(vocab_size=300, min_frequency=1).build(texts=JA, vocab_size=None, language="ja",
                                                          segmenter=None)) % 64 == 0


@pytest.mark.parametrize(
    "cls,params",
    [
        (UnigramTokenizer, {"min_frequency": 2}),
        (BPE, {"pre_tokenizer": "whitespace"}),
        (BPE, {"pre_tokenizer": "byte_level"}),  # byte-level takes no byte fallback
        (BPE, {"normalizer": "nfkc"}),
        (BPE, {"vocab_size": 0}),
        (BPE, {"round_to_multiple_of": 0}),
        (BPE, {"max_train_documents": -1}),
        (Pretrained, {}),
    ],
)
def test_bad_params_are_refused(cls, params):
    with pytest.raises(ValidationError):
        cls(**params)


def test_pretrained_loads_a_saved_folder(saved):
    path, tok = saved
    loaded = Pretrained(path=str(path)).build(texts=None, vocab_size=None, language="en", segmenter=None)
    text = "Return the value of the named attribute."
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.mask_token == "[MASK]"


def test_tokenizers_are_registered_by_name():
    pm = new_plugin_manager()
    pm.register(builtin, name="builtin")
    classes = [c for group in pm.hook.encoder_recipes_register_tokenizers() for c in group]
    assert {c.name: c for c in classes} == {"bpe": BPE, "unigram": UnigramTokenizer, "pretrained": Pretrained}
    assert all(c.kind == "tokenizer" and c.summary() for c in classes)
    assert "min_frequency" in BPE.Params.model_fields and "min_frequency" not in UnigramTokenizer.Params.model_fields


def test_trained_tokenizers_say_they_learn_from_texts_and_a_pretrained_one_does_not():
    """``new-plugin`` extends a recipe for a new language only when its tokenizer learns (asked, not read from params)."""
    assert BPE(vocab_size=512).learns_from_texts() and UnigramTokenizer(vocab_size=512).learns_from_texts()
    assert not Pretrained(path="some/hub-name").learns_from_texts()
