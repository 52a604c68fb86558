"""The ja, fi and zh language plugins: their hooks, word segmenters and fill-mask probes.

The segmenters are the real ones (fugashi with UniDic-lite, jieba); the
plugins are loaded through their installed entry points into a fresh plugin
manager, as the host loads them.
"""

from __future__ import annotations

import importlib.metadata as md
import pickle
import subprocess
import sys

import pytest

from encoder_recipes.components.segmenters import WhitespaceSegmenter, WordSegmenter
from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.plugins.ja.segmenter import MeCabSegmenter
from encoder_recipes.plugins.zh.segmenter import JiebaSegmenter
from encoder_recipes.registry import build_registries

LANGUAGE_PLUGINS = ("ja", "fi", "zh")


@pytest.fixture(scope="module")
def loaded():
    """Only the three language plugins, from their entry points, strict (a failure raises)."""
    eps = [ep for ep in md.entry_points(group="encoder_recipes") if ep.name in LANGUAGE_PLUGINS]
    assert sorted(ep.name for ep in eps) == sorted(LANGUAGE_PLUGINS)
    return load_plugins(eps, strict=True, disabled=())


@pytest.fixture(scope="module")
def hook(loaded):
    return loaded.pm.hook


def assert_spans_consistent(text: str, spans: list[tuple[int, int]]) -> None:
    """Spans are in order, non-overlapping, non-empty, inside the text, and cover every non-space character."""
    last_end = 0
    for start, end in spans:
        assert last_end <= start < end <= len(text), (start, end)
        assert text[start:end].strip() == text[start:end], f"whitespace in a word: {text[start:end]!r}"
        last_end = end
    covered = "".join(text[a:b] for a, b in spans)
    assert covered == "".join(text.split())


# --- recipes -----------------------------------------------------------------------------


def test_plugins_register_their_recipes(loaded) -> None:
    registries = build_registries(loaded)
    owners = {name: registries.recipes.get(name).plugin for name in registries.recipes.names()}
    assert owners == {
        "ja-llmjp": "ja",
        "ja-modernbert-ja": "ja",
        "fi-modernbert": "fi",
        "fi-modernbert-large-short": "fi",
        "zh-modernbert-wwm": "zh",
    }
    for name in owners:
        assert registries.recipes.get(name).path.is_file()


def test_each_plugin_implements_every_language_hook(loaded) -> None:
    expected = {
        "encoder_recipes_register_recipes",
        "encoder_recipes_word_segmenter",
        "encoder_recipes_fill_mask_probes",
        "encoder_recipes_register_sample_corpora",
    }
    for name in LANGUAGE_PLUGINS:
        assert set(loaded.plugins[name].hooks) == expected


# --- segmenters through the hook ---------------------------------------------------------------


@pytest.mark.parametrize(
    "language, cls",
    [("ja", MeCabSegmenter), ("zh", JiebaSegmenter), ("fi", WhitespaceSegmenter)],
)
def test_segmenter_hook_answers_for_its_language(hook, language: str, cls: type) -> None:
    segmenter = hook.encoder_recipes_word_segmenter(language=language, name=None)
    assert isinstance(segmenter, cls) and isinstance(segmenter, WordSegmenter)


def test_segmenter_hook_has_no_answer_for_other_languages(hook) -> None:
    assert hook.encoder_recipes_word_segmenter(language="en", name=None) is None


@pytest.mark.parametrize("language, name", [("ja", "mecab"), ("zh", "jieba"), ("fi", "whitespace")])
def test_each_plugin_answers_for_its_segmenter_by_name_and_for_no_other(hook, language: str, name: str) -> None:
    assert hook.encoder_recipes_word_segmenter(language=language, name=name).name == name
    assert hook.encoder_recipes_word_segmenter(language=language, name="pkuseg") is None


def test_japanese_segmenter_finds_words(hook) -> None:
    segmenter = hook.encoder_recipes_word_segmenter(language="ja", name=None)
    text = "今日は天気が良い"
    words = segmenter.words(text)
    assert "今日" in words and "天気" in words
    assert "".join(words) == text
    assert_spans_consistent(text, segmenter.spans(text))


def test_japanese_spans_skip_whitespace_exactly(hook) -> None:
    segmenter = hook.encoder_recipes_word_segmenter(language="ja", name=None)
    text = "東京都に 行きました。\n明日は　雨です"  # ASCII space, newline, full-width space
    spans = segmenter.spans(text)
    assert_spans_consistent(text, spans)
    words = [text[a:b] for a, b in spans]
    assert "東京" in words and "明日" in words and "雨" in words


def test_chinese_segmenter_finds_words(hook) -> None:
    segmenter = hook.encoder_recipes_word_segmenter(language="zh", name=None)
    text = "我爱北京天安门"
    assert segmenter.words(text) == ["我", "爱", "北京", "天安门"]
    assert_spans_consistent(text, segmenter.spans(text))


def test_chinese_segmenter_drops_whitespace_words(hook) -> None:
    segmenter = hook.encoder_recipes_word_segmenter(language="zh", name=None)
    text = "我在 Google 工作，\n天气  很好"
    spans = segmenter.spans(text)
    assert_spans_consistent(text, spans)
    words = [text[a:b] for a, b in spans]
    assert "天气" in words and "Google" in words and "工作" in words


def test_finnish_segmenter_splits_at_whitespace(hook) -> None:
    segmenter = hook.encoder_recipes_word_segmenter(language="fi", name=None)
    text = "Suomen pääkaupunki  on Helsinki."
    assert segmenter.words(text) == ["Suomen", "pääkaupunki", "on", "Helsinki."]
    assert_spans_consistent(text, segmenter.spans(text))


@pytest.mark.parametrize("segmenter_cls, text", [(MeCabSegmenter, "今日は天気が良い"), (JiebaSegmenter, "我爱北京天安门")])
def test_segmenters_survive_pickling_after_use(segmenter_cls: type, text: str) -> None:
    """Data-loader workers receive the segmenter pickled; the tagger is rebuilt there."""
    segmenter = segmenter_cls()
    before = segmenter.spans(text)
    clone = pickle.loads(pickle.dumps(segmenter))
    assert clone.spans(text) == before


def test_missing_fugashi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import fugashi` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "fugashi", None)
    with pytest.raises(ImportError, match=r"pip install 'encoder-recipes\[ja\]'"):
        MeCabSegmenter().spans("今日は")


def test_missing_jieba_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jieba", None)
    with pytest.raises(ImportError, match=r"pip install 'encoder-recipes\[zh\]'"):
        JiebaSegmenter().spans("我爱北京")


def test_plugins_load_without_the_language_extras() -> None:
    """fugashi and jieba are imported lazily: the plugins (recipes, probes) load without them."""
    code = (
        "import sys\n"
        "for name in ('fugashi', 'unidic_lite', 'jieba'):\n"
        "    sys.modules[name] = None\n"
        "from encoder_recipes.plugins.ja import plugin as ja\n"
        "from encoder_recipes.plugins.zh import plugin as zh\n"
        "assert len(ja.encoder_recipes_register_recipes()) == 2\n"
        "assert ja.encoder_recipes_word_segmenter(language='ja', name=None) is not None\n"
        "assert len(zh.encoder_recipes_fill_mask_probes(language='zh')) >= 6\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_jieba_does_not_log_its_startup(capfd: pytest.CaptureFixture[str]) -> None:
    JiebaSegmenter().spans("我爱北京天安门")
    captured = capfd.readouterr()
    assert "Building prefix dict" not in captured.err + captured.out


# --- fill-mask probes -----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGE_PLUGINS)
def test_probes_have_one_mask_and_answers(hook, loaded, language: str) -> None:
    probes = build_registries(loaded).fill_mask_probes(language)
    assert len(probes) >= 6
    for probe in probes:
        assert set(probe) == {"text", "answers"}
        assert probe["text"].count("{mask}") == 1, probe["text"]
        assert probe["answers"] and all(isinstance(a, str) and a.strip() for a in probe["answers"])


def test_probes_come_only_for_the_plugins_language(hook) -> None:
    per_plugin = hook.encoder_recipes_fill_mask_probes(language="en")
    assert per_plugin == [] or all(result is None for result in per_plugin)
    by_language = {lang: hook.encoder_recipes_fill_mask_probes(language=lang) for lang in LANGUAGE_PLUGINS}
    for lang, results in by_language.items():
        assert len([r for r in results if r]) == 1, f"exactly one plugin answers for {lang}"


def test_japanese_probes_are_table_3_of_the_llmjp_paper(hook) -> None:
    """001 Table 3: six probes; the correct prediction for each comes first."""
    (probes,) = [r for r in hook.encoder_recipes_fill_mask_probes(language="ja") if r]
    assert [p["answers"][0] for p in probes] == ["エベレスト", "明治維新", "長江", "12", "サンキュー", "365"]
    assert probes[3]["text"] == "1年は{mask}ヶ月です。"
    assert probes[5]["text"] == "1年はおよそ{mask}日です。"


def test_probes_are_fresh_copies(hook) -> None:
    (first,) = [r for r in hook.encoder_recipes_fill_mask_probes(language="zh") if r]
    first[0]["answers"].append("wrong")
    (second,) = [r for r in hook.encoder_recipes_fill_mask_probes(language="zh") if r]
    assert "wrong" not in second[0]["answers"]
