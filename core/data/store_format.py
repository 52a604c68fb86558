"""The prepared store on disk (or in an object store): layout, identity and shard files.

``encoder-recipes prepare`` writes, and training reads, this layout::

    STORE/
      store.json                  written last: the store is complete when it exists
      prepare.json                what the store is being made from (identity), written first
      tokenizer/                  the tokenizer the ids come from
      <source>/part-00000.arrow   one shard: an Apache Arrow IPC stream of documents
      <source>/part-00000.json    the shard's marker: documents, tokens, bytes, sha256, reader cursor

A shard is an Arrow table with a ``ids`` column (``list<uint16>``, or
``list<uint32>`` when the vocabulary needs it) and, when whole-word masking
needs it, a ``words`` column (``list<uint8>``) beside it: per token 1 when a
word starts there, 0 when the token continues the word before it, 2 when it
belongs to no word. Arrow IPC is the format Hugging Face ``datasets`` keeps
its memory-mapped tables in (``datasets.Dataset.from_file`` opens a shard),
and a local shard is read by memory map without copying.

Why Arrow and not MosaicML's MDS (see the README's dependency section):
``mosaicml-streaming`` 0.13 requires ``transformers<5``, and its maintained
fork ``streaming-community`` imports ``torchvision`` on ``import streaming``,
whose PyPI wheel is built against CUDA torch and breaks ``transformers`` on
the CPU torch this project pins. ``pyarrow`` is already installed with
``datasets``, and its file systems reach S3, GCS and HDFS by URL.

A location is a local path or a URL that ``pyarrow.fs`` knows
(``s3://bucket/prefix``, ``gs://…``, ``hdfs://…``, ``file:///…``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Bumped when the layout or the meaning of a column changes; a store of another version is refused.
FORMAT_VERSION = 1
STORE_INDEX = "store.json"
PREPARE_INDEX = "prepare.json"
#: word flag codes in the ``words`` column
WORD_CONTINUES, WORD_STARTS, NO_WORD = 0, 1, 2


class StoreError(ValueError):
    """A store cannot be used as asked; the message says which file or field and what to do."""


# --- locations ------------------------------------------------------------------------


class Location:
    """A folder on the local disk or in an object store, through ``pyarrow.fs``."""

    def __init__(self, location: str | os.PathLike) -> None:
        from pyarrow import fs

        text = str(location)
        self.url = text
        if "://" in text:
            self.fs, self.root = fs.FileSystem.from_uri(text)
            self.local = isinstance(self.fs, fs.LocalFileSystem)
        else:
            self.fs, self.root, self.local = fs.LocalFileSystem(), str(Path(text).absolute()), True

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self.path(*parts)).type != fs.FileType.NotFound

    def size(self, *parts: str) -> int | None:
        from pyarrow import fs

        info = self.fs.get_file_info(self.path(*parts))
        return None if info.type == fs.FileType.NotFound else info.size

    def mkdir(self, *parts: str) -> None:
        self.fs.create_dir(self.path(*parts), recursive=True)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as handle:
            return handle.read()

    def write_bytes_atomic(self, data: bytes, *parts: str) -> None:
        """Write to a temporary name and move it into place: a reader never sees half a file."""
        target = self.path(*parts)
        tmp = target + ".tmp"
        with self.fs.open_output_stream(tmp) as handle:
            handle.write(data)
        self.fs.move(tmp, target)

    def read_json(self, *parts: str) -> dict[str, Any]:
        return json.loads(self.read_bytes(*parts).decode("utf-8"))

    def write_json_atomic(self, data: dict[str, Any], *parts: str) -> None:
        self.write_bytes_atomic(json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"), *parts)

    def delete(self, *parts: str) -> None:
        if self.exists(*parts):
            self.fs.delete_file(self.path(*parts))

    def delete_dir(self, *parts: str) -> None:
        if self.exists(*parts):
            self.fs.delete_dir(self.path(*parts))

    def __str__(self) -> str:
        return self.url


# --- identity -------------------------------------------------------------------------


def tokenizer_hash(tokenizer: Any) -> str:
    """SHA-256 of the tokenizer's serialised model, specials included (the file's formatting does not count)."""
    backend = tokenizer.backend_tokenizer.to_str()
    return hashlib.sha256(backend.encode("utf-8")).hexdigest()


def id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds every id."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def _file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.absolute()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def source_identity(source: Any, validation_fraction: float) -> dict[str, Any]:
    """What a data source's documents are: its recipe entry and, for files, each file's path, size and mtime.

    A ``dataset`` source is identified by name, configuration and split only:
    hashing a remote dataset would mean reading all of it.
    """
    from encoder_recipes.data.samples import sample_files
    from encoder_recipes.data.sources import resolve_paths

    ident: dict[str, Any] = {"entry": source.model_dump(), "validation_fraction": validation_fraction}
    if source.sample:
        ident["files"] = [_file_identity(Path(sample_files(source.sample)["train"]))]
    elif source.paths:
        ident["files"] = [_file_identity(p) for p in resolve_paths(source)]
    return ident


def describe_difference(kind: str, stored: Any, wanted: Any) -> str:
    """The first key path where two identities differ, with both values, for refusal messages."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in sorted(set(stored) | set(wanted), key=str):
            if stored.get(key) != wanted.get(key):
                return describe_difference(f"{kind}.{key}", stored.get(key), wanted.get(key))
    show = lambda v: json.dumps(v, ensure_ascii=False, default=str)[:200]  # noqa: E731
    return f"{kind}: the store has {show(stored)}, the recipe gives {show(wanted)}"


# --- shards -----------------------------------------------------------------------------


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def word_flags(word_ids: list[int]) -> np.ndarray:
    """Word-id list (as :func:`~encoder_recipes.components.masking.word_ids_from_offsets` gives) → flag codes."""
    words = np.asarray(word_ids, dtype=np.int64)
    flags = np.full(len(words), NO_WORD, dtype=np.uint8)
    valid = words >= 0
    starts = valid.copy()
    starts[1:] &= (words[1:] != words[:-1]) | ~valid[:-1]
    flags[valid] = WORD_CONTINUES
    flags[starts] = WORD_STARTS
    return flags


def encode_shard(ids: list[list[int]], words: list[np.ndarray] | None, dtype: np.dtype) -> bytes:
    """One shard's Arrow IPC stream bytes, from per-document ids (and word flags)."""
    import pyarrow as pa

    lengths = np.fromiter((len(d) for d in ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for d in ids for t in d), dtype=dtype, count=int(offsets[-1]))
    columns = {"ids": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat))}
    if words is not None:
        flat_words = np.concatenate(words) if words else np.zeros(0, dtype=np.uint8)
        columns["words"] = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat_words.astype(np.uint8)))
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@dataclass
class Shard:
    """A shard's token ids and word flags as flat numpy arrays with document offsets (zero-copy when mapped)."""

    offsets: np.ndarray  # int64, documents + 1
    ids: np.ndarray
    words: np.ndarray | None

    @property
    def documents(self) -> int:
        return len(self.offsets) - 1


def decode_shard(buffer: Any, where: str) -> Shard:
    """Read a shard from an Arrow buffer; a torn or foreign file is a :class:`StoreError` naming it."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(buffer).read_all().combine_chunks()
        ids_col = table.column("ids").chunk(0) if table.num_rows else None
    except (pa.ArrowInvalid, KeyError, OSError, IndexError) as exc:
        raise StoreError(f"shard {where} cannot be read ({exc}); it is torn or not a shard of this store: "
                         "run `encoder-recipes prepare` again with the same --output to redo it") from None
    if ids_col is None:
        return Shard(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint16), None)
    offsets = np.asarray(ids_col.offsets)
    ids = np.asarray(ids_col.values)
    words = None
    if "words" in table.column_names:
        words = np.asarray(table.column("words").chunk(0).values)
    return Shard(offsets, ids, words)
