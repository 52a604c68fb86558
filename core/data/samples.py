"""The offline sample corpus: real running text fetched once at set-up, never committed.

The project ships no third-party text. ``encoder-recipes data samples`` (and
:func:`ensure_samples`) fetches Debian's LibreOffice help packages — the same
help pages translated into each language, licence MPL-2.0 — and converts them
into a small MLM corpus per language in the cache::

    <cache_dir()>/samples/<name>/
        train.jsonl         {"text": ..., "source": ..., "page": ...} one document a line
        validation.jsonl    the same, for the held-out pages
        pairs.jsonl         (not for en) {"page", "id", "text", "en", "split"}: one help
                            paragraph and its English original, for cross-lingual checks
        SOURCE.md           package, version, licence, date and counts, for people
        meta.json           the same, for code; its presence marks the cache complete

How the help HTML becomes training text (what gives the best MLM text):

* **Document = one help page.** A page is one topic written as continuous
  prose, the natural unit for packing; its kept paragraphs are joined with
  ``"\\n"`` (one paragraph a line).
* **Paragraph = one block element** (``<p>``, headings, list items, table
  cells). Markup is dropped and whitespace collapsed. Everything that is not
  the page's own prose is dropped: the head, scripts, the navigation header,
  sidebars and footer, "how to get here" menu paths, "related topics" link
  lists, code listings (Basic, Python, formulas), and the platform variants
  the help's JavaScript would hide (only the ``default`` case of a switch is
  kept, so a sentence does not read "Tools - OptionsLibreOffice - Preferences").
* **Very short or symbol-heavy fragments are dropped**: a paragraph needs a
  display width of at least :data:`MIN_PARAGRAPH_WIDTH` columns (a CJK
  character counts two, so the bar is about the same amount of text in every
  script) and letters must be at least half of its non-space characters
  (drops formula examples such as ``=SUM(A1:B3)``).
* **Untranslated paragraphs are dropped.** Translations are incomplete: a
  Finnish page still holds English paragraphs (over half of all Finnish
  paragraphs). A paragraph whose text occurs anywhere in the English help is
  left out (the English package is fetched as the reference for this).
  Japanese and Chinese paragraphs must also contain a CJK character.
* **Exact duplicate paragraphs are kept once per language**: the help embeds
  the same notes in many pages, and repeats teach memorisation, not language.
* **Pairs**: paragraph ids are the same in every language, so a kept
  paragraph and the English paragraph with the same page and id are a
  translation pair (``pairs.jsonl``).
* **Split**: a page is held out for validation when its stable hash (of the
  page path, which is the same in every language) falls below
  :data:`VALIDATION_FRACTION`; so the same pages are held out in every language.
* **Order**: documents are written in the order of their stable hash — a fixed
  pseudo-shuffle, identical across languages — so a reader that streams the
  file from the top sees every module of the help early, not all of Basic first.

Which languages have a sample corpus is not this module's business: a plugin
registers a :class:`SampleCorpus` for its language through the
``encoder_recipes_register_sample_corpora`` hook (the package to fetch, a
script check, optional extra documents), and :func:`registered_corpora`
collects them. This module only knows how to fetch and convert LibreOffice
help, whose original (reference) language is English.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from encoder_recipes.registry import Registries, Registry

#: The help's original language: other languages drop paragraphs identical to
#: its text, and pair theirs with its paragraphs. A plugin must register a
#: corpus of this language (the built-in plugin does) for the others to build.
REFERENCE_LANGUAGE = "en"
LICENSE = "MPL-2.0"
#: Share of help pages held out for validation (by stable hash of the page path).
VALIDATION_FRACTION = 0.05
#: Shortest paragraph kept, in display columns (a CJK character is two columns).
MIN_PARAGRAPH_WIDTH = 24
#: Bump when the conversion changes: caches written by another format are rebuilt.
FORMAT_VERSION = 1
CACHE_ENV = "ENCODER_RECIPES_CACHE"

_SPLITS = ("train", "validation")


@dataclass(frozen=True)
class SampleCorpus:
    """How to fetch and convert one language's offline sample corpus; a plugin registers it.

    Returned by ``encoder_recipes_register_sample_corpora``. ``--scale smoke``
    trains a recipe on the corpus registered for its ``metadata.language``.
    """

    name: str  #: the cache folder and a recipe's ``sample:`` value (by convention the language code)
    language: str  #: ISO 639-1 code of the text
    package: str  #: Debian package holding the LibreOffice help in this language
    #: a paragraph is kept only where this returns True (e.g. "holds a CJK
    #: character", so Latin-script UI names left in a Japanese page are dropped)
    in_script: Callable[[str], bool] | None = None
    #: words are not separated by spaces (starter plugins split such text into characters)
    unspaced: bool = False
    #: more documents ``{"text", "source", "page", "split"}`` added to the corpus (an optional source)
    extra_documents: Callable[[], Iterable[dict[str, str]]] | None = None
    #: a line for SOURCE.md about the extra documents' origin and terms
    extra_note: str | None = None
    #: fill-mask probes in the corpus's own domain (``{"text": "...{mask}...", "answers": [...]}``, sentences
    #: written for this project, not taken from the corpus): a model trained on this corpus alone cannot know
    #: the encyclopaedic facts of a paper's probes, so the end-of-run summary of a run on sample corpora
    #: shows these instead, and a newcomer sees what the model did learn
    probes: tuple[dict, ...] = ()


def registered_corpora(registries: Registries | None = None) -> Registry[SampleCorpus]:
    """The sample corpora the loaded plugins register, by name (a name claimed twice is an error)."""
    from encoder_recipes.registry import default_registries

    return (registries or default_registries()).sample_corpora


def sample_probes(sources: Iterable[object], registries: Registries | None = None) -> list[dict]:
    """The in-domain probes of the sample corpora ``sources`` name, when every source is a sample corpus (else [])."""
    names = [getattr(source, "sample", None) for source in sources]
    if not names or None in names:
        return []
    corpora = registered_corpora(registries)
    return [dict(probe) for name in dict.fromkeys(names) if name in corpora.names()
            for probe in corpora.get(name).probes]


def corpus_for_language(language: str, registries: Registries | None = None) -> SampleCorpus | None:
    """The sample corpus registered for ``language`` (the first by name), or None."""
    corpora = registered_corpora(registries)
    return next((corpora.get(n) for n in corpora.names() if corpora.get(n).language == language), None)


class SampleCorpusMissing(FileNotFoundError):
    """The sample corpus of a language has not been fetched into the cache."""


class SampleCorpusUnavailable(RuntimeError):
    """The sample corpus cannot be fetched here (no ``apt-get``/``dpkg-deb``, or the download failed)."""


class Paragraph(NamedTuple):
    id: str | None  #: the help's paragraph id (``par_id…``/``hd_id…``), the same in every language
    text: str


# --- where the corpus lives ---------------------------------------------------


def cache_dir() -> Path:
    """The project's cache root: ``$ENCODER_RECIPES_CACHE``, else ``~/.cache/encoder-recipes``
    (``$XDG_CACHE_HOME/encoder-recipes`` where that is set)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "encoder-recipes"


def sample_dir(name: str) -> Path:
    """The folder holding the sample corpus ``name`` (which may not exist yet)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"{name!r} is not a sample corpus name (letters, digits, '.', '_', '-')")
    return cache_dir() / "samples" / name


def sample_files(lang: str) -> dict[str, Path]:
    """The files of a fetched sample corpus: ``train``, ``validation`` (and ``pairs`` where written).

    Raises :class:`SampleCorpusMissing` when the corpus has not been fetched.
    """
    folder = sample_dir(lang)
    if not _is_complete(folder):
        raise SampleCorpusMissing(
            f"the {lang!r} sample corpus is not fetched (looked in {folder}); run "
            f"`encoder-recipes data samples --language {lang}`, or point the recipe's "
            "`data.sources` at your own files with `paths:` (.txt/.jsonl/.parquet)"
        )
    files = {split: folder / f"{split}.jsonl" for split in _SPLITS}
    if (folder / "pairs.jsonl").exists():
        files["pairs"] = folder / "pairs.jsonl"
    return files


def ensure_samples(
    names: Iterable[str],
    *,
    force: bool = False,
    log: Callable[[str], object] = print,
    registries: Registries | None = None,
) -> dict[str, Path]:
    """Fetch and convert each registered sample corpus named, unless already cached.

    Idempotent: a complete cache is reused (``force=True`` rebuilds it). Each
    corpus is written into a temporary folder and renamed into place, so an
    interrupted fetch never looks complete. Returns ``{name: sample_dir(name)}``.

    Raises :class:`ValueError` for a name no plugin registers, and
    :class:`SampleCorpusUnavailable` when the packages cannot be fetched.
    """
    corpora = registered_corpora(registries)
    names = list(dict.fromkeys(names))
    wanted = {name: corpora.get(name) for name in names}  # UnknownNameError lists the registered ones
    todo = [name for name in names if force or not _is_complete(sample_dir(name))]
    for name in sorted(set(names) - set(todo)):
        log(f"sample corpus {name}: cached in {sample_dir(name)}")
    if not todo:
        return {name: sample_dir(name) for name in names}
    # The English pages are the reference that finds untranslated paragraphs.
    reference = corpus_for_language(REFERENCE_LANGUAGE, registries)
    if reference is None:
        raise SampleCorpusUnavailable(_unavailable(f"no plugin registers a {REFERENCE_LANGUAGE!r} sample corpus, "
                                                   "the reference the others are checked against"))
    packages = list(dict.fromkeys([reference.package, *(wanted[name].package for name in todo)]))
    with tempfile.TemporaryDirectory(prefix="encoder-recipes-deb-") as tmp:
        fetched = {package: _fetch_package(package, Path(tmp), log) for package in packages}
        pages = {}
        for package in packages:
            log(f"sample corpus: reading {fetched[package].name}")
            pages[package] = read_help_pages(fetched[package])
        versions = {package: _package_version(deb) for package, deb in fetched.items()}
    reference_pages = Reference.from_pages(pages[reference.package])
    for name in todo:
        corpus = wanted[name]
        extra = list(corpus.extra_documents()) if corpus.extra_documents else []
        with _building(sample_dir(name)) as out:
            meta = write_corpus(
                out,
                lang=corpus.language,
                package=corpus.package,
                version=versions[corpus.package],
                pages=pages[corpus.package],
                reference=None if corpus.package == reference.package else reference_pages,
                extra_documents=extra,
                in_script=corpus.in_script,
                extra_note=corpus.extra_note if extra else None,
            )
        sizes = ", ".join(
            f"{split} {counts['documents']} docs / {counts['characters']:,} chars"
            for split, counts in meta["splits"].items()
        )
        log(f"sample corpus {name}: {sizes} -> {sample_dir(name)}")
    return {name: sample_dir(name) for name in names}


# --- HTML -> paragraphs ---------------------------------------------------------

# Elements whose whole content is not prose. HTML pages and the .xhp sources
# (the help's XML, which some packagings ship) share this parser.
_SKIP_TAGS = frozenset(
    {
        "head", "script", "noscript", "style", "template", "svg", "header", "aside", "footer", "nav",
        "button", "select", "textarea", "code", "pre", "object",
        # .xhp: index terms, comments, edit history, non-default switch cases, code
        "bookmark", "bookmark_value", "comment", "history", "case", "caseinline", "embedvar",
        "image", "bascode", "pycode",
    }
)
_SKIP_CLASSES = frozenset(
    {"bascode", "pycode", "code", "codeintable", "smathcode", "howtoget", "relatedtopics", "debug", "noteicon"}
)
_SKIP_IDS = frozenset({"SearchFrame", "DonationFrame", "DEBUG", "TopLeftHeader", "Contents", "Index", "Bookmarks"})
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
# A block element ends a paragraph (text on either side of it is not one sentence).
_BLOCK_TAGS = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd", "div", "table", "tr",
        "td", "th", "caption", "section", "article", "main", "blockquote", "figure", "figcaption", "body",
        "paragraph", "title", "tablecell", "listitem", "list", "tablerow", "topic",
    }
)


class _HelpPageParser(HTMLParser):
    """Collects the prose paragraphs of one help page (see the module docstring for the rules)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[Paragraph] = []
        self._stack: list[tuple[str, bool, str | None]] = []  # (tag, skipped, block id)
        self._buffer: list[str] = []
        self._skipping = 0  # number of open skipped elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            if tag == "br" and not self._skipping:
                self._buffer.append(" ")
            return
        attr = dict(attrs)
        classes = set((attr.get("class") or "").split())
        element_id = attr.get("id") or ""
        # The help's JavaScript shows one case of a platform/module switch; the
        # ``default…`` case is the generic text, the others are variants of it.
        hidden = "hidden" in attr and not element_id.startswith("default")
        skip = tag in _SKIP_TAGS or bool(classes & _SKIP_CLASSES) or element_id in _SKIP_IDS or hidden
        block = tag in _BLOCK_TAGS
        if block:
            self._flush()
        self._stack.append((tag, skip, (element_id or None) if block else None))
        self._skipping += skip

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <x/>: nothing inside; only a line break matters.
        if tag == "br" and not self._skipping:
            self._buffer.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if not any(open_tag == tag for open_tag, _, _ in self._stack):
            return  # a stray end tag (or one of a void element)
        while self._stack:
            open_tag, skipped, _ = self._stack[-1]
            if open_tag in _BLOCK_TAGS:
                self._flush()
            self._stack.pop()
            self._skipping -= skipped
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        text = " ".join("".join(self._buffer).split())
        self._buffer.clear()
        if text:
            block_id = next((bid for _, _, bid in reversed(self._stack) if bid), None)
            self.paragraphs.append(Paragraph(block_id, text))


def extract_paragraphs(html: str) -> list[Paragraph]:
    """The prose paragraphs of one help page (HTML or .xhp), markup and boilerplate removed.

    No length or language filter is applied here; see :func:`keep_paragraph`.
    """
    parser = _HelpPageParser()
    parser.feed(html)
    parser.close()
    return parser.paragraphs


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: wide (CJK) characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a Han, Hiragana or Katakana character."""
    return any(_is_cjk(ch) for ch in text)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x2FA1F  # extensions B–F
    )


def keep_paragraph(text: str, in_script: Callable[[str], bool] | None = None) -> bool:
    """Whether a paragraph is training text: long enough, mostly letters, in the language's script."""
    if display_width(text) < MIN_PARAGRAPH_WIDTH:
        return False
    visible = [ch for ch in text if not ch.isspace()]
    letters = sum(ch.isalpha() for ch in visible)
    if letters * 2 < len(visible):
        return False
    return in_script is None or in_script(text)


# --- .deb -> pages -----------------------------------------------------------------

_HELP_PAGE = re.compile(r"^(?:\./)?usr/share/libreoffice/help/[^/]+/(text/.+\.(?:html|xhp))$")


def read_help_pages(deb: Path) -> dict[str, list[Paragraph]]:
    """Every help page in a LibreOffice help ``.deb``: ``{page path: paragraphs}``.

    The page path (``text/shared/optionen/01010400.html``) leaves out the
    language folder, so it names the same page in every language. The package
    is read as a tar stream from ``dpkg-deb --fsys-tarfile``; nothing is unpacked to disk.
    """
    if shutil.which("dpkg-deb") is None:
        raise SampleCorpusUnavailable(_unavailable("`dpkg-deb` is not installed"))
    pages: dict[str, list[Paragraph]] = {}
    with subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                match = _HELP_PAGE.match(member.name)
                if not (match and member.isfile()):
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    pages[match.group(1)] = extract_paragraphs(handle.read().decode("utf-8", errors="replace"))
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        raise SampleCorpusUnavailable(_unavailable(f"`dpkg-deb --fsys-tarfile {deb.name}` failed: {stderr.strip()}"))
    if not pages:
        raise SampleCorpusUnavailable(_unavailable(f"{deb.name} holds no help pages under usr/share/libreoffice/help/"))
    return pages


class Reference(NamedTuple):
    """The reference (English) help, to recognise untranslated paragraphs."""

    by_id: dict[tuple[str, str], str]  #: ``{(page, paragraph id): text}``, first occurrence
    texts: frozenset[str]  #: every paragraph text anywhere in the reference

    @classmethod
    def from_pages(cls, pages: dict[str, list[Paragraph]]) -> Reference:
        by_id: dict[tuple[str, str], str] = {}
        for page, paragraphs in pages.items():
            for par in paragraphs:
                if par.id is not None:
                    by_id.setdefault((page, par.id), par.text)
        return cls(by_id, frozenset(par.text for paragraphs in pages.values() for par in paragraphs))


# --- pages -> corpus --------------------------------------------------------------


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone (same on every machine and Python run).

    Used for every deterministic hold-out: help pages here, documents in
    :mod:`encoder_recipes.data.sources`.
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(page: str) -> str:
    """``"validation"`` for the held-out pages, else ``"train"``."""
    return "validation" if stable_fraction(page) < VALIDATION_FRACTION else "train"


def build_documents(
    pages: dict[str, list[Paragraph]],
    lang: str,
    *,
    source: str,
    reference: Reference | None = None,
    in_script: Callable[[str], bool] | None = None,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Turn parsed help pages into documents, and paragraph pairs with the reference.

    Returns ``(documents, pairs)``: documents ``{"text", "source", "page", "split"}``
    in stable-hash order; pairs ``{"page", "id", "text", "en", "split"}`` for
    kept paragraphs whose reference paragraph is training text too (empty
    without a reference).
    """
    seen: set[str] = set()
    documents: list[dict[str, str]] = []
    pairs: list[dict[str, str]] = []
    paired: set[tuple[str, str]] = set()
    for page in sorted(pages, key=lambda p: (stable_fraction(p), p)):
        split = split_of(page)
        kept: list[str] = []
        for par in pages[page]:
            if reference is not None and par.text in reference.texts:
                continue  # untranslated: the English text, here or on another page
            if not keep_paragraph(par.text, in_script):
                continue
            original = reference.by_id.get((page, par.id)) if reference is not None and par.id else None
            if original is not None and (page, par.id) not in paired and keep_paragraph(original):
                paired.add((page, par.id))
                pairs.append({"page": page, "id": par.id, "text": par.text, REFERENCE_LANGUAGE: original, "split": split})
            if par.text in seen:
                continue
            seen.add(par.text)
            kept.append(par.text)
        if kept:
            documents.append({"text": "\n".join(kept), "source": source, "page": page, "split": split})
    return documents, pairs


def write_corpus(
    out: Path,
    *,
    lang: str,
    package: str,
    version: str,
    pages: dict[str, list[Paragraph]],
    reference: Reference | None,
    extra_documents: Iterable[dict[str, str]] = (),
    created: datetime | None = None,
    in_script: Callable[[str], bool] | None = None,
    extra_note: str | None = None,
) -> dict:
    """Write one language's corpus files into ``out`` and return its meta (also ``meta.json``)."""
    documents, pairs = build_documents(pages, lang, source=package, reference=reference, in_script=in_script)
    # Extra sources join the same fixed pseudo-shuffle, not a block at the end.
    documents = sorted([*documents, *extra_documents], key=lambda d: (stable_fraction(d["page"]), d["page"]))
    created = created or datetime.now(timezone.utc)
    splits = {}
    for split in _SPLITS:
        rows = [d for d in documents if d["split"] == split]
        _write_jsonl(out / f"{split}.jsonl", ({"text": d["text"], "source": d["source"], "page": d["page"]} for d in rows))
        splits[split] = {"documents": len(rows), "characters": sum(len(d["text"]) for d in rows)}
    if pairs:
        _write_jsonl(out / "pairs.jsonl", pairs)
    by_source = {}
    for doc in documents:
        entry = by_source.setdefault(doc["source"], {"documents": 0, "characters": 0})
        entry["documents"] += 1
        entry["characters"] += len(doc["text"])
    meta = {
        "format": FORMAT_VERSION,
        "language": lang,
        "package": package,
        "version": version,
        "license": LICENSE,
        "created": created.strftime("%Y-%m-%d"),
        "validation_fraction": VALIDATION_FRACTION,
        "splits": splits,
        "sources": by_source,
        "pairs": len(pairs),
    }
    if extra_note:
        meta["extra_note"] = extra_note
    (out / "SOURCE.md").write_text(_source_markdown(meta), encoding="utf-8")
    # meta.json last: its presence is what marks the folder complete.
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def _source_markdown(meta: dict) -> str:
    lines = [
        f"# Sample corpus: {meta['language']}",
        "",
        f"- Source: Debian package `{meta['package']}` version `{meta['version']}` "
        "(the LibreOffice help pages, https://help.libreoffice.org)",
        f"- Licence: {LICENSE} (Debian's copyright file notes that some files incorporate Apache-2.0 material)",
        f"- Converted: {meta['created']} by encoder_recipes.data.samples (format {meta['format']})",
        f"- Split: pages whose stable hash of the page path is below {meta['validation_fraction']} are validation",
        "",
        "| split | documents | characters |",
        "|---|---:|---:|",
    ]
    for split, counts in meta["splits"].items():
        lines.append(f"| {split} | {counts['documents']:,} | {counts['characters']:,} |")
    lines += ["", "| source | documents | characters |", "|---|---:|---:|"]
    for source, counts in meta["sources"].items():
        lines.append(f"| {source} | {counts['documents']:,} | {counts['characters']:,} |")
    if meta["pairs"]:
        lines += ["", f"pairs.jsonl: {meta['pairs']:,} paragraphs aligned with their English original by page and paragraph id."]
    if meta.get("extra_note"):
        lines += ["", f"Extra source: {meta['extra_note']}"]
    lines += [
        "",
        "One document per help page, one paragraph per line. Markup, navigation, code, short fragments, "
        "untranslated (English) paragraphs and repeated paragraphs are dropped; see the docstring of "
        "encoder_recipes/data/samples.py.",
        "",
    ]
    return "\n".join(lines)


# --- fetching and the cache ----------------------------------------------------------


def _fetch_package(package: str, folder: Path, log: Callable[[str], object]) -> Path:
    """``apt-get download`` one package into ``folder``; ``apt-get update`` once if that fails."""
    if shutil.which("apt-get") is None:
        raise SampleCorpusUnavailable(_unavailable("`apt-get` is not available on this machine"))
    log(f"fetching {package} (apt-get download)")
    result = _apt(["download", package], folder)
    if result.returncode:
        # Usually the package lists are missing (a fresh container); refresh once.
        log(f"apt-get download {package} failed; running apt-get update")
        _apt(["update"], folder)
        result = _apt(["download", package], folder)
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if result.returncode or not debs:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise SampleCorpusUnavailable(
            _unavailable(f"`apt-get download {package}` failed: {detail[-1] if detail else 'no .deb written'}")
        )
    return debs[-1]


def _apt(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True, text=True, check=False)


def _package_version(deb: Path) -> str:
    result = subprocess.run(["dpkg-deb", "--field", str(deb), "Version"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def _unavailable(reason: str) -> str:
    return (
        f"cannot fetch the sample corpus: {reason}. It comes from Debian's libreoffice-help-* packages "
        "via apt-get. Instead, point the recipe's `data.sources` at your own files, e.g. "
        "`- {name: mine, paths: [corpus/*.jsonl]}` (.txt: one document a line; .jsonl/.parquet: a `text` field)"
    )


def _is_complete(folder: Path) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("format") == FORMAT_VERSION and all((folder / f"{s}.jsonl").is_file() for s in _SPLITS)


@contextmanager
def _building(final: Path) -> Iterator[Path]:
    """A temp folder beside ``final`` that replaces ``final`` only when the body succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the corpus is not secret
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process finished the same language first; keep its copy.
        shutil.rmtree(tmp, ignore_errors=True)
        if not _is_complete(final):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
