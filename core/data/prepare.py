"""``encoder-recipes prepare``: tokenise a recipe's data sources once into a sharded store.

The main process reads each source's training documents in order (the same
:class:`~encoder_recipes.data.sources.DocumentStream` training reads, so the
validation hold-out is the same) and cuts them into parts of
``part_documents`` documents. A pool of worker processes, one per core,
tokenises the parts (and finds word starts when whole-word masking needs
them) and writes each part as one shard, moved into place whole, then its
marker. See :mod:`encoder_recipes.data.store_format` for the layout.

Resuming: a part whose shard and marker are both in place is done. Prepare
run again into the same store keeps the longest run of done parts from each
source's start, restarts the reader from the cursor in the last one's marker,
and redoes everything after (a part being written when the run was killed
has no marker, and its temporary file is overwritten). A store started from
another tokenizer or other data is refused rather than mixed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoder_recipes.data.store_format import (
    FORMAT_VERSION,
    PREPARE_INDEX,
    STORE_INDEX,
    Location,
    StoreError,
    describe_difference,
    encode_shard,
    id_dtype,
    part_name,
    source_identity,
    tokenizer_hash,
    word_flags,
)

#: documents per part (one shard); a killed prepare redoes at most the parts in flight
PART_DOCUMENTS = 20_000


@dataclass
class PrepareOptions:
    output: str
    workers: int | None = None  # None: every core
    part_documents: int = PART_DOCUMENTS
    overwrite: bool = False
    progress: bool = True


def needs_words(resolved: Any, registries: Any) -> str | None:
    """The segmenter name whole-word masking uses ("" for the language's default), or None when no stage needs words."""
    for stage in resolved.recipe.stages:
        masking = resolved.component(registries, "masking", stage.masking)
        if masking.needs_words:
            return masking.segmenter_name() or ""
    return None


def store_identity(resolved: Any, registries: Any, tok_hash: str, vocab_size: int) -> dict[str, Any]:
    """Everything the store's contents depend on; training refuses a store whose identity differs."""
    from encoder_recipes.data.sources import MAX_DOCUMENT_CHARS

    recipe = resolved.recipe
    segmenter = needs_words(resolved, registries)
    return {
        "format_version": FORMAT_VERSION,
        "tokenizer_sha256": tok_hash,
        "vocab_size": vocab_size,
        "id_dtype": id_dtype(vocab_size).name,
        "language": recipe.metadata.language,
        "words": None if segmenter is None else {"segmenter": segmenter or "default"},
        "max_document_chars": MAX_DOCUMENT_CHARS,
        "sources": {s.name: source_identity(s, recipe.data.validation_fraction) for s in recipe.data.sources},
    }


# --- tokenizer -----------------------------------------------------------------------


def prepare_tokenizer(resolved: Any, registries: Any, location: Location) -> Any:
    """The store's tokenizer: loaded from STORE/tokenizer, or trained as ``run`` trains it and saved there."""
    from transformers import AutoTokenizer

    from encoder_recipes.data.sources import tokenizer_texts

    recipe = resolved.recipe
    local = _local_tokenizer_dir(location)
    if location.exists("tokenizer", "tokenizer.json"):
        if not location.local:
            _download_dir(location, "tokenizer", local)
        return AutoTokenizer.from_pretrained(local)
    component = resolved.component(registries, "tokenizer", recipe.tokenizer)
    segmenter = registries.word_segmenter(recipe.metadata.language)
    tok = component.build(texts=tokenizer_texts(recipe.data), vocab_size=None, language=recipe.metadata.language, segmenter=segmenter)
    tmp = Path(str(local) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    for file in sorted(tmp.iterdir()):
        location.mkdir("tokenizer")
        location.write_bytes_atomic(file.read_bytes(), "tokenizer", file.name)
    if not location.local:
        shutil.rmtree(local, ignore_errors=True)
        os.replace(tmp, local)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(local)


def _local_tokenizer_dir(location: Location) -> Path:
    if location.local:
        return Path(location.path("tokenizer"))
    import hashlib

    key = hashlib.sha256(location.url.encode()).hexdigest()[:16]
    return Path(os.environ.get("ENCODER_RECIPES_CACHE", Path.home() / ".cache" / "encoder-recipes")) / "stores" / key / "tokenizer"


def _download_dir(location: Location, name: str, local: Path) -> None:
    from pyarrow import fs

    local.mkdir(parents=True, exist_ok=True)
    for info in location.fs.get_file_info(fs.FileSelector(location.path(name))):
        if info.type == fs.FileType.File:
            (local / info.base_name).write_bytes(location.read_bytes(name, info.base_name))


# --- workers -------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(tokenizer_dir: str, language: str, segmenter: str | None, store: str, dtype: str) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one process per core already
    from transformers import AutoTokenizer

    from encoder_recipes.data.store_format import Location
    from encoder_recipes.registry import default_registries
    from encoder_recipes.training.batches import DocumentTokenizer

    seg = None
    if segmenter is not None:
        seg = default_registries().word_segmenter(language, segmenter or None)
        if seg is None:
            raise StoreError(f"no word segmenter {segmenter or 'default'!r} for language {language!r}")
    _WORKER.update(tokenize=DocumentTokenizer(AutoTokenizer.from_pretrained(tokenizer_dir), seg),
                   location=Location(store), dtype=dtype)


def _write_part(job: tuple[str, int, list[str], dict[str, Any]]) -> dict[str, Any]:
    """Tokenise one part and write its shard, then its marker (the marker says the shard is whole)."""
    import hashlib

    import numpy as np

    source, index, texts, cursor = job
    docs = _WORKER["tokenize"](texts)
    ids = [d[0] for d in docs]
    words = [word_flags(d[1]) for d in docs] if docs and docs[0][1] is not None else None
    data = encode_shard(ids, words, np.dtype(_WORKER["dtype"]))
    location: Location = _WORKER["location"]
    name = part_name(index)
    location.write_bytes_atomic(data, source, name + ".arrow")
    marker = {"documents": len(ids), "tokens": sum(len(d) for d in ids), "bytes": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "cursor": cursor}
    location.write_json_atomic(marker, source, name + ".json")
    return {"source": source, "index": index, **marker}


# --- the command ---------------------------------------------------------------------


def _done_parts(location: Location, source: str) -> list[dict[str, Any]]:
    """The markers of the parts done from the source's start, in order, each with its shard of the right size."""
    done = []
    while True:
        name = part_name(len(done))
        if not location.exists(source, name + ".json"):
            return done
        marker = location.read_json(source, name + ".json")
        if location.size(source, name + ".arrow") != marker["bytes"]:
            return done
        done.append(marker)


def prepare(resolved: Any, registries: Any, options: PrepareOptions) -> Location:
    """Tokenise every data source of ``resolved`` into the store at ``options.output``; returns its location."""
    from tqdm.auto import tqdm

    from encoder_recipes.data.sources import DocumentStream, require_documents

    recipe = resolved.recipe
    location = Location(options.output)
    if options.overwrite and location.exists():
        location.delete_dir()
    location.mkdir()
    if location.exists(STORE_INDEX) and not location.exists(PREPARE_INDEX):
        raise StoreError(f"{location} holds a store index but no {PREPARE_INDEX}; choose another --output")
    streams = {s.name: DocumentStream(s, "train", validation_fraction=recipe.data.validation_fraction)
               for s in recipe.data.sources}
    for stream in streams.values():
        require_documents(stream)
    tokenizer = prepare_tokenizer(resolved, registries, location)
    identity = store_identity(resolved, registries, tokenizer_hash(tokenizer), len(tokenizer))
    if location.exists(PREPARE_INDEX):
        started = location.read_json(PREPARE_INDEX)
        if started != identity:
            raise StoreError(f"{location} was started for other data or another tokenizer "
                             f"({describe_difference('store', started, identity)}); "
                             "pass --overwrite to start it again, or choose another --output")
    else:
        location.write_json_atomic(identity, PREPARE_INDEX)
    if location.exists(STORE_INDEX):
        return location  # complete already

    segmenter = identity["words"]["segmenter"] if identity["words"] else None
    if segmenter == "default":
        segmenter = ""
    workers = options.workers or os.cpu_count() or 1
    ctx = mp.get_context("spawn")  # fork would copy a tokenizer's threads into the children
    tok_dir = str(_local_tokenizer_dir(location))
    shards: dict[str, list[dict[str, Any]]] = {}
    bar = tqdm(desc="prepare", unit="doc", disable=not options.progress, smoothing=0.1)
    with ctx.Pool(workers, initializer=_init_worker,
                  initargs=(tok_dir, recipe.metadata.language, segmenter, location.url, identity["id_dtype"])) as pool:
        for name, stream in streams.items():
            done = _done_parts(location, name)
            location.mkdir(name)
            if done:
                stream.load_state_dict(done[-1]["cursor"])
                bar.update(sum(m["documents"] for m in done))
            shards[name] = list(done)
            pending: deque = deque()
            iterator = iter(stream)
            index = len(done)
            while True:
                texts = [t for _, t in zip(range(options.part_documents), iterator)]
                if texts:
                    job = (name, index, texts, stream.state_dict())
                    pending.append(pool.apply_async(_write_part, (job,)))
                    index += 1
                # at most two parts per worker in flight: the documents read ahead stay bounded
                while pending and (not texts or len(pending) >= 2 * workers):
                    result = pending.popleft().get()
                    shards[name].append(result)
                    bar.update(result["documents"])
                if not texts:
                    break
    bar.close()
    index = {
        **identity,
        "sources": {
            name: {**identity["sources"][name],
                   "shards": [{"file": f"{name}/{part_name(i)}.arrow", "documents": m["documents"],
                               "tokens": m["tokens"], "bytes": m["bytes"], "sha256": m["sha256"]}
                              for i, m in enumerate(parts)],
                   "documents": sum(m["documents"] for m in parts), "tokens": sum(m["tokens"] for m in parts)}
            for name, parts in shards.items()
        },
    }
    location.write_json_atomic(index, STORE_INDEX)
    return location


def default_store(resolved: Any) -> str:
    name = resolved.recipe.metadata.name + (f"-{resolved.scale}" if resolved.scale else "")
    return str(Path(os.environ.get("ENCODER_RECIPES_STORES", "stores")) / name)


def prepare_from_args(args: Any) -> int:
    """``encoder-recipes prepare RECIPE [--scale S] [--output STORE] [--workers N] [--overwrite] [overrides]``."""
    import sys

    from encoder_recipes.data.samples import SampleCorpusUnavailable
    from encoder_recipes.data.sources import DataSourceError
    from encoder_recipes.registry import default_registries
    from encoder_recipes.training.run import ensure_sample_data
    from encoder_recipes.validation import load_recipe

    registries = default_registries()
    resolved = load_recipe(args.recipe, overrides=args.overrides or [], scale=args.scale, registries=registries)
    output = args.output or default_store(resolved)
    try:
        ensure_sample_data(resolved)
        location = prepare(resolved, registries, PrepareOptions(output=output, workers=args.workers,
                                                                overwrite=args.overwrite))
    except (StoreError, DataSourceError, SampleCorpusUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    index = location.read_json(STORE_INDEX)
    for name, source in index["sources"].items():
        print(f"{name}: {source['documents']:,} documents, {source['tokens']:,} tokens in {len(source['shards'])} shards")
    print(f"done: {location}")
    return 0
