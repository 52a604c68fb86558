"""The rjieba segmenter: the zh plugin's hook offers it by name, and it gives jieba's words.

rjieba (jieba-rs) implements jieba's algorithm and ships its dictionary, so
on Chinese it must find exactly jieba's words. The one known difference is
documented in :mod:`encoder_recipes.plugins.zh.segmenter`: a run of Latin
letters and digits joined by ``.``, ``_`` or ``-`` (``com.sun.star``,
``UTF-8``) is one word for rjieba and several for jieba. The corpus test
measures the agreement on the sample Chinese corpus and checks that every
disagreement is of that kind and nothing else.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import pickle
import re
import sys

import pytest

from encoder_recipes.components.segmenters import WordSegmenter
from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.plugins.zh.segmenter import JiebaSegmenter, RjiebaSegmenter

pytest.importorskip("rjieba", reason="rjieba is not installed (pip install 'encoder-recipes[zh]')")

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: what a word may look like where the two segmenters disagree
JOINED_IDENTIFIER = re.compile(r"[0-9A-Za-z._\-]+")


@pytest.fixture(scope="module")
def hook():
    (zh,) = [ep for ep in md.entry_points(group="encoder_recipes") if ep.name == "zh"]
    return load_plugins([zh], strict=True, disabled=()).pm.hook


@pytest.fixture(scope="module")
def jieba() -> JiebaSegmenter:
    return JiebaSegmenter()


@pytest.fixture(scope="module")
def rjieba() -> RjiebaSegmenter:
    return RjiebaSegmenter()


# --- the hook ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, cls", [(None, JiebaSegmenter), ("jieba", JiebaSegmenter), ("rjieba", RjiebaSegmenter)])
def test_hook_answers_by_name(hook, name: str | None, cls: type) -> None:
    segmenter = hook.encoder_recipes_word_segmenter(language="zh", name=name)
    assert type(segmenter) is cls and isinstance(segmenter, WordSegmenter)
    assert segmenter.name == (name or "jieba")


def test_hook_has_no_answer_for_unknown_names_or_languages(hook) -> None:
    assert hook.encoder_recipes_word_segmenter(language="zh", name="pkuseg") is None
    assert hook.encoder_recipes_word_segmenter(language="ja", name="rjieba") is None
    assert hook.encoder_recipes_word_segmenter(language="ja", name=None) is None


def test_hook_has_no_answer_when_rjieba_is_missing(hook, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation then reports the missing segmenter before a run starts."""
    monkeypatch.setitem(sys.modules, "rjieba", None)  # not importable, as if not installed
    assert hook.encoder_recipes_word_segmenter(language="zh", name="rjieba") is None
    assert type(hook.encoder_recipes_word_segmenter(language="zh", name=None)) is JiebaSegmenter


def test_missing_rjieba_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rjieba", None)  # `import rjieba` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'encoder-recipes\[zh\]'"):
        RjiebaSegmenter().spans("我爱北京")


# --- the segmenter -------------------------------------------------------------------------


def test_rjieba_finds_jiebas_words(jieba, rjieba) -> None:
    text = "我爱北京天安门。我们在 Google 工作，\n天气　很好"  # ASCII space, newline, full-width space
    assert rjieba.words(text) == jieba.words(text)
    assert "天安门" in rjieba.words(text) and "Google" in rjieba.words(text)
    spans = rjieba.spans(text)
    assert all(a < b and text[a:b].strip() == text[a:b] for a, b in spans)
    assert "".join(text[a:b] for a, b in spans) == "".join(text.split())


def test_offsets_count_characters_beyond_the_bmp(rjieba) -> None:
    text = "𠀀中国😀人民"  # U+20000 and an emoji take one Python character each
    spans = rjieba.spans(text)
    assert [text[a:b] for a, b in spans] == rjieba.words(text)
    assert "".join(rjieba.words(text)) == text


def test_joined_identifiers_are_the_documented_difference(jieba, rjieba) -> None:
    text = "调用 com.sun.star 接口，编码 UTF-8"
    assert rjieba.words(text) == ["调用", "com.sun.star", "接口", "，", "编码", "UTF-8"]
    assert jieba.words(text) == ["调用", "com", ".", "sun", ".", "star", "接口", "，", "编码", "UTF", "-", "8"]


def test_survives_pickling_after_use(rjieba) -> None:
    """The data worker receives the segmenter pickled; the Rust object is rebuilt there."""
    text = "我爱北京天安门"
    before = rjieba.spans(text)
    assert pickle.loads(pickle.dumps(rjieba)).spans(text) == before


# --- agreement on the sample corpus -----------------------------------------------------------


def _sample_documents() -> list[str]:
    from encoder_recipes.data.samples import SampleCorpusMissing, sample_files

    try:
        files = sample_files("zh")
    except SampleCorpusMissing:
        pytest.skip("the zh sample corpus is not in the cache (encoder-recipes data samples)")
    docs = []
    for split in ("train", "validation"):
        with open(files[split], encoding="utf-8") as fh:
            docs.extend(json.loads(line)["text"] for line in fh if line.strip())
    return docs


def test_agreement_on_the_sample_corpus(jieba, rjieba) -> None:
    """Every Chinese word agrees; every disagreement is a joined identifier that jieba splits."""
    docs = _sample_documents()
    both = either = han_both = han_either = 0
    for text in docs:
        a, b = set(jieba.spans(text)), set(rjieba.spans(text))
        both, either = both + len(a & b), either + len(a | b)
        han_a = {s for s in a if HAN.search(text[s[0]:s[1]])}
        han_b = {s for s in b if HAN.search(text[s[0]:s[1]])}
        han_both, han_either = han_both + len(han_a & han_b), han_either + len(han_a | han_b)
        only_jieba, only_rjieba = sorted(a - b), sorted(b - a)
        for start, end in only_rjieba:
            word = text[start:end]
            assert JOINED_IDENTIFIER.fullmatch(word), f"rjieba's {word!r} is not a joined identifier"
            # jieba's words inside it tile it exactly: rjieba only joins, never re-cuts
            inner = [s for s in only_jieba if start <= s[0] and s[1] <= end]
            assert len(inner) >= 2 and inner[0][0] == start and inner[-1][1] == end, word
            assert all(x[1] == y[0] for x, y in zip(inner, inner[1:])), word
        for start, end in only_jieba:
            assert any(s <= start and end <= e for s, e in only_rjieba), f"jieba's {text[start:end]!r} stands alone"
    agreement, han_agreement = both / either, han_both / han_either
    print(f"\nrjieba vs jieba on {len(docs)} zh sample documents: {agreement:.4%} of words agree "
          f"({han_agreement:.4%} of the {han_either} words with a Han character)")
    assert han_either > 10_000  # the corpus really is Chinese
    assert han_agreement == 1.0
    assert agreement > 0.98


def test_a_recipe_can_ask_for_rjieba(registries):
    from encoder_recipes.recipe_files import RecipeError
    from encoder_recipes.validation import load_recipe

    assert type(registries.word_segmenter("zh", "rjieba")).__name__ == "RjiebaSegmenter"
    recipe = load_recipe("zh-modernbert-wwm", registries=registries,
                         overrides=["stages.0.masking.segmenter=rjieba"]).recipe
    assert recipe.stages[0].masking.params["segmenter"] == "rjieba"
    with pytest.raises(RecipeError, match="needs the word segmenter 'nope' for language 'zh'"):
        load_recipe("zh-modernbert-wwm", registries=registries, overrides=["stages.0.masking.segmenter=nope"])
