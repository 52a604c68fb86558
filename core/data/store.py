"""Reading a prepared store: its index, its shards, and the refusals that keep a run honest.

:class:`Store` opens ``store.json`` and checks, before any training, that
every shard is there with the size the index records (a missing shard, a torn
one), and :meth:`Store.check` that the store was made from the recipe's data
and the run's tokenizer. Documents are then read by ``(source, index)``:
their lengths alone (what the packing plan needs, on every rank) or their
token ids and word flags (only for the sequences this rank trains on).
Local shards are memory-mapped, so reading a document copies nothing; shards
in an object store are fetched whole when first needed.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from encoder_recipes.data.store_format import (
    FORMAT_VERSION,
    STORE_INDEX,
    Location,
    Shard,
    StoreError,
    decode_shard,
    describe_difference,
    tokenizer_hash,
)

#: shards of an object-store store kept in memory at once
REMOTE_SHARDS_CACHED = 8


class StoreSource:
    """The documents of one source of a store, indexed 0..documents-1 in the order prepare read them."""

    def __init__(self, location: Location, name: str, meta: dict[str, Any]) -> None:
        self.location, self.name, self.meta = location, name, meta
        self.shards = meta["shards"]
        self.starts = [0]
        for shard in self.shards:
            self.starts.append(self.starts[-1] + shard["documents"])
        self.documents = self.starts[-1]
        self.tokens = int(meta["tokens"])
        self._open: OrderedDict[int, Shard] = OrderedDict()

    def check_files(self) -> None:
        """Every shard present with the recorded size: a missing or torn shard is refused by name."""
        for shard in self.shards:
            size = self.location.size(shard["file"])
            if size is None:
                raise StoreError(f"store {self.location}: shard {shard['file']} is missing; "
                                 "run `encoder-recipes prepare` again with the same --output to redo it")
            if size != shard["bytes"]:
                raise StoreError(f"store {self.location}: shard {shard['file']} is torn ({size:,} bytes, the index "
                                 f"says {shard['bytes']:,}); run `encoder-recipes prepare` again to redo it")

    def shard(self, k: int) -> Shard:
        found = self._open.get(k)
        if found is not None:
            self._open.move_to_end(k)
            return found
        import pyarrow as pa

        file = self.shards[k]["file"]
        where = f"{self.location}/{file}"
        if self.location.local:
            buffer = pa.memory_map(self.location.path(file), "r")
        else:
            buffer = pa.py_buffer(self.location.read_bytes(file))
        shard = decode_shard(buffer, where)
        if shard.documents != self.shards[k]["documents"]:
            raise StoreError(f"shard {where} holds {shard.documents} documents, the index says "
                             f"{self.shards[k]['documents']}; run `encoder-recipes prepare` again to redo it")
        self._open[k] = shard
        if not self.location.local and len(self._open) > REMOTE_SHARDS_CACHED:
            self._open.popitem(last=False)
        return shard

    def _locate(self, doc: int) -> tuple[Shard, int]:
        if not 0 <= doc < self.documents:
            raise IndexError(f"document {doc} of source {self.name!r} (it has {self.documents})")
        k = bisect.bisect_right(self.starts, doc) - 1
        return self.shard(k), doc - self.starts[k]

    def lengths(self, start: int, stop: int) -> np.ndarray:
        """Token counts of documents [start, stop) (int64), read from the shards' offsets only."""
        out = []
        while start < stop:
            shard, i = self._locate(start)
            j = min(shard.documents, i + stop - start)
            out.append(np.diff(shard.offsets[i : j + 1]))
            start += j - i
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def document(self, doc: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Token ids and word flags of one document (views into the shard)."""
        shard, i = self._locate(doc)
        a, b = int(shard.offsets[i]), int(shard.offsets[i + 1])
        return shard.ids[a:b], (shard.words[a:b] if shard.words is not None else None)


class Store:
    """A complete prepared store (``store.json`` present), its shards checked for presence and size."""

    def __init__(self, location: str | Location) -> None:
        self.location = location if isinstance(location, Location) else Location(location)
        if not self.location.exists(STORE_INDEX):
            started = self.location.exists("prepare.json")
            raise StoreError(f"{self.location} is not a complete store ({STORE_INDEX} is missing"
                             + ("; its prepare was interrupted: run it again to finish" if started else
                                "; make one with `encoder-recipes prepare RECIPE --output ...`") + ")")
        self.index = self.location.read_json(STORE_INDEX)
        version = self.index.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(f"store {self.location} has format version {version}; this encoder-recipes reads "
                             f"version {FORMAT_VERSION}: prepare it again")
        self.sources = {name: StoreSource(self.location, name, meta) for name, meta in self.index["sources"].items()}
        for source in self.sources.values():
            source.check_files()

    @property
    def has_words(self) -> bool:
        return self.index.get("words") is not None

    def check(self, *, tokenizer: Any, identity: dict[str, Any]) -> None:
        """Refuse a store made with another tokenizer, from other data, or without the word flags needed.

        :param tokenizer: the run's tokenizer (None: the run will take the store's own).
        :param identity: :func:`~encoder_recipes.data.prepare.store_identity` of the run's recipe.
        """
        stored_hash = self.index["tokenizer_sha256"]
        run_hash = stored_hash if tokenizer is None else tokenizer_hash(tokenizer)
        if stored_hash != run_hash:
            raise StoreError(f"store {self.location} was made with another tokenizer (sha256 {stored_hash[:12]}…, "
                             f"the run's is {run_hash[:12]}…); train with the store's tokenizer "
                             f"({self.location}/tokenizer) or prepare the store again")
        stored_sources = {n: {k: v for k, v in s.items() if k not in ("shards", "documents", "tokens")}
                          for n, s in self.index["sources"].items()}
        if stored_sources != identity["sources"]:
            raise StoreError(f"store {self.location} was made from other data "
                             f"({describe_difference('data', stored_sources, identity['sources'])}); "
                             "prepare it again for this recipe")
        for key in ("language", "max_document_chars"):
            if self.index.get(key) != identity.get(key):
                raise StoreError(f"store {self.location}: {describe_difference('store', self.index, identity)}")
        if identity.get("words") and self.index.get("words") != identity["words"]:
            have = self.index.get("words")
            raise StoreError(f"the recipe masks whole words with segmenter {identity['words']['segmenter']!r}, but "
                             f"store {self.location} " + (f"has word starts from {have['segmenter']!r}" if have else
                                                          "holds no word starts") + "; prepare it again")

    def verify(self) -> None:
        """Read every shard and compare its SHA-256 with the index (slow: reads the whole store)."""
        for source in self.sources.values():
            for shard in source.shards:
                digest = hashlib.sha256(self.location.read_bytes(shard["file"])).hexdigest()
                if digest != shard["sha256"]:
                    raise StoreError(f"store {self.location}: shard {shard['file']} is damaged (SHA-256 differs "
                                     "from the index); run `encoder-recipes prepare` again to redo it")
