"""The evaluation sets: built offline from documents and the sample corpus, or read through ``datasets``.

The papers evaluate on public benchmarks (Wikipedia, MIRACL, JGLUE). Offline,
the same protocols run on what is at hand, which shows the machinery works —
the figures are not the papers' numbers:

* **documents** are the validation documents an evaluator is given
  (``EvalContext.documents``: the recipe's held-out split during training,
  the sample corpus's ``validation.jsonl`` for ``encoder-recipes eval``).
  A sample-corpus document is one help page with one paragraph per line, so
  a *paragraph* here is a non-empty line.
* **positive pairs** (alignment): two consecutive paragraphs of one document
  — neighbouring paragraphs of a help page are about the same topic; or,
  cross-lingually, a paragraph and its English original (``pairs.jsonl``).
* **random pairs** (uniformity): paragraphs of two different documents.
* **retrieval pairs**: query = the first paragraph of a document (on a help
  page, its title), passage = the second; every document with two paragraphs
  gives one pair, and the other documents' passages are the distractors. This
  mirrors 001 Appendix B, which takes one positive passage of a MIRACL
  instance as the query and another as its corpus entry.
* **length-binned sequences** (pseudo-perplexity): see :func:`binned_sequences`.
* **fine-tuning tasks**: see :func:`section_task`, :func:`same_page_task`, :func:`length_task`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

#: File endings read with ``datasets``' local builders instead of a hub name.
_LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


# --- documents and paragraphs ---------------------------------------------------


def paragraphs(text: str) -> list[str]:
    """The non-empty lines of a document, stripped (a sample-corpus line is one help paragraph)."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def read_documents(factory: Callable[[], Iterable[str]] | None, limit: int | None = None) -> list[str]:
    """Up to ``limit`` non-empty documents from a documents factory (``EvalContext.documents``)."""
    if factory is None:
        raise ValueError("this evaluator needs validation documents, but the context has none")
    docs = [d for d in islice((t for t in factory() if t and t.strip()), limit)]
    if not docs:
        raise ValueError("the validation documents are empty")
    return docs


def sample_rows(language: str, split: str = "validation") -> list[dict[str, Any]]:
    """Rows of the sample corpus file ``split`` (``train``, ``validation`` or ``pairs``) of ``language``."""
    from encoder_recipes.data.samples import sample_files

    files = sample_files(language)
    if split not in files:
        raise ValueError(f"the {language!r} sample corpus has no {split!r} file (English has no pairs.jsonl)")
    with open(files[split], encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sample_documents(language: str, split: str = "validation") -> Callable[[], Iterator[str]]:
    """A documents factory over the sample corpus (what ``encoder-recipes eval`` evaluates on)."""
    rows = sample_rows(language, split)

    def documents() -> Iterator[str]:
        return (row["text"] for row in rows)

    return documents


# --- pairs --------------------------------------------------------------------------


def consecutive_pairs(docs: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Up to ``n`` positive pairs: two consecutive paragraphs of one document, drawn without replacement."""
    pairs = [(a, b) for doc in docs for a, b in zip(paragraphs(doc), paragraphs(doc)[1:])]
    return rng.sample(pairs, min(n, len(pairs)))


def random_pairs(docs: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` random pairs: a random paragraph of each of two different random documents."""
    split = [p for p in (paragraphs(d) for d in docs) if p]
    if len(split) < 2:
        raise ValueError("random pairs need at least two documents with text")
    out = []
    for _ in range(n):
        i, j = rng.sample(range(len(split)), 2)
        out.append((rng.choice(split[i]), rng.choice(split[j])))
    return out


def first_paragraph_pairs(docs: list[str], limit: int | None = None) -> list[tuple[str, str]]:
    """Retrieval pairs: (first paragraph, second paragraph) of every document that has two."""
    out = []
    for doc in docs:
        paras = paragraphs(doc)
        if len(paras) >= 2:
            out.append((paras[0], paras[1]))
    return out[:limit]


def crosslingual_pairs(language: str, n: int | None, rng: random.Random,
                       split: str = "validation") -> list[tuple[str, str]]:
    """(English original, ``language`` translation) paragraph pairs from the sample corpus's ``pairs.jsonl``."""
    rows = [r for r in sample_rows(language, "pairs") if r.get("split") == split and r.get("en") and r.get("text")]
    pairs = [(r["en"], r["text"]) for r in rows]
    return pairs if n is None or n >= len(pairs) else rng.sample(pairs, n)


# --- datasets by name ---------------------------------------------------------------


def load_rows(dataset: str, config: str | None = None, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a ``datasets`` dataset: a hub name (``miracl/miracl``) or a local .jsonl/.json/.csv/.parquet file.

    A local file lets the full-scale code paths run on a copy made elsewhere
    (and in tests); a hub name needs the network or a filled ``datasets`` cache.
    A ``{split}`` in a local path is replaced by the split (``jsts-{split}.jsonl``).
    """
    from datasets import load_dataset

    dataset = dataset.replace("{split}", split)
    suffix = Path(dataset).suffix.lower()
    if suffix in _LOCAL_BUILDERS and Path(dataset).exists():
        data = load_dataset(_LOCAL_BUILDERS[suffix], data_files={split: dataset}, split=split)
    else:
        data = load_dataset(dataset, config, split=split)
    return [dict(row) for row in data]


def miracl_pairs(rows: Iterable[dict[str, Any]], limit: int | None = None) -> list[tuple[str, str]]:
    """001 Appendix B: from each MIRACL instance with two or more positive passages, the first
    goes to the query set and the second to the corpus (rows as in ``miracl/miracl``:
    ``{"query", "positive_passages": [{"text", ...}, ...], ...}``)."""
    out = []
    for row in rows:
        positives = [p["text"] for p in row.get("positive_passages") or [] if p.get("text")]
        if len(positives) >= 2:
            out.append((positives[0], positives[1]))
    return out[:limit]


# --- length-binned sequences (pseudo-perplexity) ---------------------------------------


def binned_sequences(
    token_docs: list[list[int]],
    low: int,
    high: int,
    count: int,
    rng: random.Random,
    *,
    cls_id: int,
    sep_id: int,
    fill: str = "concatenate",
) -> list[list[int]]:
    """Up to ``count`` model inputs ``[CLS] … [SEP]`` whose length (specials included) lies in ``[low, high]``.

    ``fill="natural"`` stratifies whole documents by length, as 001 §3.5 does
    with Wikipedia articles: documents whose framed length falls in the range,
    drawn without replacement. ``fill="concatenate"`` is for small corpora
    (the offline sample corpus has no 8k-token pages): for each sequence a
    target length is drawn uniformly from the range, then consecutive
    documents, starting at a random one and wrapping around (each at most
    once), are joined until the target is reached and the last one is cut.
    Token lists are joined as they are: each document was tokenized on its
    own, so its first token opens a word. Sequences of one bin may share
    documents when the corpus is small. When all documents together are
    shorter than a target, no sequence is made for it.
    """
    if fill == "natural":
        fitting = [[cls_id, *ids, sep_id] for ids in token_docs if low <= len(ids) + 2 <= high]
        return rng.sample(fitting, min(count, len(fitting)))
    if fill != "concatenate":
        raise ValueError(f"unknown fill {fill!r}; known: concatenate, natural")
    docs = [ids for ids in token_docs if ids]
    total = sum(len(ids) for ids in docs)
    out: list[list[int]] = []
    for _ in range(count):
        target = rng.randint(max(low, 3), high)  # at least one token between [CLS] and [SEP]
        content = target - 2
        if content > total:
            continue
        start, tokens = rng.randrange(len(docs)), []
        for k in range(len(docs)):
            tokens.extend(docs[(start + k) % len(docs)])
            if len(tokens) >= content:
                break
        out.append([cls_id, *tokens[:content], sep_id])
    return out


# --- offline fine-tuning tasks ------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One fine-tuning example: one text or a pair, and a class index or a real target."""

    texts: tuple[str, ...]
    label: float


def section_of(page: str) -> str:
    """The help section of a page path: ``text/swriter/01/…`` → ``swriter``."""
    parts = page.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "text" else parts[0]


def section_task(rows: list[dict[str, Any]], labels: list[str] | None = None) -> tuple[list[Example], list[str]]:
    """Sentence classification: which help section (``swriter``, ``scalc``, ``sbasic``, …) a paragraph is from.

    :param labels: the label list to use (from the training split); paragraphs of
        other sections are dropped. None: every section in ``rows``, sorted.
    """
    items = [(para, section_of(row["page"])) for row in rows if row.get("page") for para in paragraphs(row["text"])]
    labels = labels if labels is not None else sorted({label for _, label in items})
    index = {label: i for i, label in enumerate(labels)}
    return [Example((text, ), index[label]) for text, label in items if label in index], labels


def same_page_task(rows: list[dict[str, Any]], n: int, rng: random.Random) -> list[Example]:
    """Sentence-pair classification: do two paragraphs come from the same help page (1) or not (0)?

    Half the pairs are consecutive paragraphs of one page, half are paragraphs
    of two different pages; the classes are balanced.
    """
    docs = [row["text"] for row in rows]
    half = n // 2
    positives = consecutive_pairs(docs, half, rng)
    negatives = random_pairs(docs, len(positives), rng)
    examples = [Example(p, 1) for p in positives] + [Example(p, 0) for p in negatives]
    rng.shuffle(examples)
    return examples


def length_task(rows: list[dict[str, Any]]) -> list[Example]:
    """Sentence regression: ``log(1 + characters)`` of a paragraph (exercises the regression path)."""
    return [Example((p, ), math.log1p(len(p))) for row in rows for p in paragraphs(row["text"])]
