"""Documents of one data source, as a stream whose position can be saved and restored.

A :class:`~encoder_recipes.schema.DataSource` names its documents one of three ways:

``sample: ja``
    The offline sample corpus of that language (:mod:`encoder_recipes.data.samples`);
    the ``validation`` split is its own held-out file.
``paths: [corpus/*.jsonl, extra.txt]``
    Local files, globs expanded with :func:`glob.glob` (``recursive=True``, so
    ``**`` works; never a shell), in sorted order per pattern. Paths are taken
    literally: ``~`` and ``$VARIABLES`` are not expanded (a recipe is data and
    means the same for every user; an error for such a path says so), and a
    relative path is relative to the working directory. A directory must be
    given as a glob of its files (``corpus/**/*.jsonl``).

    * ``.txt`` / ``.txt.gz`` — **one document per line**; empty lines are
      skipped. (Chosen over blank-line-separated paragraphs because a file
      with one document a line, the common case, would otherwise become one
      huge document; multi-line documents belong in ``.jsonl``.) Bytes that
      are not UTF-8 are decoded with ``errors="replace"`` (U+FFFD), so one bad
      byte does not stop a run. ``text_field`` does not apply.
    * ``.jsonl`` / ``.jsonl.gz`` — one JSON object a line, the document in
      ``text_field`` (decoded with ``errors="replace"`` too). Records may carry
      any other keys, and different files different keys.
    * ``.parquet`` — the ``text_field`` column (only that column is read).
``dataset: wikimedia/wikipedia``
    ``datasets.load_dataset(dataset, config, split=split, streaming=streaming)``:
    a name on the Hub or a local folder of data files. The position inside it
    is the ``IterableDataset``'s own ``state_dict()`` (a map-style dataset is
    read through ``to_iterable_dataset()``, so both resume the same way).

Why local files are not read through ``datasets`` as well: its json builder
casts every file to the columns of the first, so files whose records carry
different extra keys fail with a cast error, and a missing text column cannot
be traced to a file. Reading them here keeps other keys harmless and lets
errors name the file and line.

Documents that are empty or whitespace only are skipped everywhere. A
document longer than :data:`MAX_DOCUMENT_CHARS` is cut to that many
characters (training cuts it there anyway), so one enormous document costs
bounded memory; a ``.txt`` line is even read in bounded pieces, while a JSON
record must be read whole before its text can be cut. For
``paths`` and ``dataset`` sources the validation split is held out by hash:
a document is validation when :func:`~encoder_recipes.data.samples.stable_fraction`
of its text is below ``validation_fraction`` (deterministic, one pass,
identical documents always on the same side).
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from encoder_recipes.data.samples import sample_files, stable_fraction
from encoder_recipes.schema import DataSource

SPLITS = ("train", "validation")
#: File name endings a ``paths`` source reads, and the reader each selects.
FORMATS: dict[str, str] = {
    ".txt": "txt",
    ".txt.gz": "txt",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".parquet": "parquet",
}


#: Longest document a source yields, in characters; longer ones are cut. The
#: training pipeline's DocumentTokenizer cuts at the same length, so cutting
#: here changes no batch and bounds the memory of everything before it
#: (reading, hashing for the validation split, training a tokenizer).
MAX_DOCUMENT_CHARS = 1_000_000


class DataSourceError(ValueError):
    """A data source cannot be read as configured (no files, a missing column, a bad record)."""


def _not_expanded(pattern: str) -> str:
    """A hint for a path that only a shell would have found."""
    if pattern.startswith("~") or "$" in pattern:
        return " (paths are not expanded: no ~ and no $VARIABLES; write the full path)"
    return ""


def resolve_paths(source: DataSource) -> list[Path]:
    """The files of a ``paths`` source, globs expanded, in a fixed order, each listed once."""
    files: dict[Path, None] = {}
    for pattern in source.paths:
        if glob.has_magic(pattern):
            matches = [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if not Path(p).is_dir()]
            if not matches:
                raise DataSourceError(f"data source {source.name!r}: the pattern {pattern!r} matches no files"
                                      + _not_expanded(pattern))
        else:
            matches = [Path(pattern)]
            if matches[0].is_dir():
                raise DataSourceError(f"data source {source.name!r}: {pattern!r} is a directory; give a glob "
                                      f"of its files, e.g. {str(Path(pattern) / '**' / '*.jsonl')!r}")
            if not matches[0].is_file():
                raise DataSourceError(f"data source {source.name!r}: no such file {pattern!r}"
                                      + _not_expanded(pattern))
        for path in matches:
            file_format(path, source)  # refuse unknown formats before reading anything
            files.setdefault(path, None)
    return list(files)


def file_format(path: Path, source: DataSource) -> str:
    """``"txt"``, ``"jsonl"`` or ``"parquet"`` from the file name; an error for anything else."""
    name = path.name.lower()
    for suffix, kind in sorted(FORMATS.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return kind
    raise DataSourceError(
        f"data source {source.name!r}: cannot read {path} (known file endings: {', '.join(FORMATS)})"
    )


class DocumentStream:
    """The documents of one source and split, in a fixed order, resumable.

    Iterating yields document texts from the current position and advances
    it; a second ``iter()`` continues where the first stopped. When the
    source is exhausted the iterator ends (:meth:`reset` starts over).
    :meth:`state_dict` is the position after the last document yielded —
    save it in a checkpoint, and :meth:`load_state_dict` on a new stream of
    the same source continues with exactly the next document.

    :param source: the data source.
    :param split: ``"train"`` or ``"validation"``.
    :param validation_fraction: share of a ``paths``/``dataset`` source held
        out for validation (the recipe's ``data.validation_fraction``). None:
        nothing is held out, and such a source has no validation split.
    :param shard: ``(rank, world)``: read only this process's part (the
        recipe's ``data.shard_by_rank``). Local files are shuffled once by
        ``shard_seed`` (so a corpus stored one sub-corpus per folder is not
        learnt one sub-corpus at a time) and dealt out by file, or by record
        when there are fewer files than processes; a ``dataset`` is split with
        ``datasets.distributed.split_dataset_by_node``. None: every document.
    """

    def __init__(self, source: DataSource, split: str = "train", *, validation_fraction: float | None = None,
                 shard: tuple[int, int] | None = None, shard_seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        if validation_fraction is not None and not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
        if split == "validation" and validation_fraction is None and not source.sample:
            raise ValueError(
                f"data source {source.name!r} has no validation split of its own; pass validation_fraction"
            )
        self.source = source
        self.split = split
        self.validation_fraction = None if source.sample else validation_fraction
        # Resolved now so a missing corpus or an empty glob fails at set-up, not mid-run.
        self._files: list[tuple[Path, str]] = []
        self._field = source.text_field
        if source.sample:
            self._files = [(sample_files(source.sample)[split], "jsonl")]
            self._field = "text"
        elif source.paths:
            self._files = [(path, file_format(path, source)) for path in resolve_paths(source)]
        self.shard, self.shard_seed = shard, shard_seed
        self._stride: tuple[int, int] | None = None  # (rank, world): keep records whose index % world == rank
        if shard is not None and self._files:
            rank, world = shard
            random.Random(shard_seed).shuffle(self._files)  # the same order on every rank
            if len(self._files) >= world:
                self._files = self._files[rank::world]
            else:
                self._stride = shard
        self._dataset: Any = None  # the loaded datasets.IterableDataset, on first use
        self._dataset_start: dict | None = None  # its state before any read
        self._documents = 0  # documents consumed: yielded, or skipped to reach a saved position
        self._cursor: dict | None = None  # the reader's position; None: the start
        self._skip = 0  # documents still to skip by counting (a position without a cursor)
        self._reader: _FileReader | _DatasetReader | None = None

    # -- position ------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The position after the last document yielded (plain, JSON-serialisable data)."""
        cursor = self._reader.cursor() if self._reader is not None else self._cursor
        return {"source": self.source.name, "split": self.split, "documents": self._documents, "cursor": cursor}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a position saved by :meth:`state_dict` (or ``{"documents": n}``: skip n)."""
        if state.get("source", self.source.name) != self.source.name or state.get("split", self.split) != self.split:
            raise ValueError(
                f"state of {state.get('source')!r}/{state.get('split')!r} given to stream "
                f"{self.source.name!r}/{self.split!r}"
            )
        self._reader = None
        if state.get("cursor") is not None:
            self._documents, self._cursor, self._skip = int(state["documents"]), state["cursor"], 0
        else:  # no exact position: count documents from the start
            self._documents, self._cursor, self._skip = 0, None, int(state.get("documents", 0))

    def reset(self) -> None:
        """Back to the first document."""
        self.load_state_dict({"documents": 0})

    @property
    def documents(self) -> int:
        """Documents consumed so far (the position as a count)."""
        return self._documents

    # -- reading ------------------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        if self._reader is not None:  # continue where an earlier iterator stopped
            self._cursor = self._reader.cursor()
        reader = self._open_reader()
        self._reader = reader
        for text in reader.records():
            if isinstance(text, str) and len(text) > MAX_DOCUMENT_CHARS:
                text = text[:MAX_DOCUMENT_CHARS]
            if not self._keep(text):
                continue
            self._documents += 1
            if self._skip:
                self._skip -= 1
                continue
            yield text

    def _keep(self, text: Any) -> bool:
        if text is None:
            return False
        if not isinstance(text, str):
            raise DataSourceError(
                f"data source {self.source.name!r}: field {self._field!r} holds {type(text).__name__}, not text"
            )
        if not text.strip():
            return False
        if self.validation_fraction is None:
            return True
        held_out = stable_fraction(text) < self.validation_fraction
        return held_out == (self.split == "validation")

    def _open_reader(self) -> _FileReader | _DatasetReader:
        if self.source.dataset:
            if self._dataset is None:
                self._dataset = _load_dataset(self.source, self.shard)
                self._dataset_start = self._dataset.state_dict()
            # The dataset object may have been read before: always set where to start.
            return _DatasetReader(self._dataset, self.source, self._cursor or self._dataset_start)
        return _FileReader(self._files, self._field, self.source, self._cursor, stride=self._stride)


def require_documents(stream: DocumentStream) -> None:
    """Refuse a source that has no document in the stream's split, before anything is trained on it.

    Reads a fresh stream of the same source up to its first document (the
    first line, usually), so ``stream`` keeps its position. A ``dataset``
    source is not checked: that would load the dataset a second time.

    :raises DataSourceError: naming the source, the split and its files.
    """
    if stream.source.dataset:
        return
    probe = DocumentStream(stream.source, stream.split, validation_fraction=stream.validation_fraction,
                           shard=stream.shard, shard_seed=stream.shard_seed)
    if next(iter(probe), None) is None:
        files = ", ".join(str(path) for path, _ in probe._files)
        held_out = " (or every document fell into the validation split)" if stream.validation_fraction else ""
        raise DataSourceError(f"data source {stream.source.name!r} has no {stream.split} documents: "
                              f"its files are empty or hold only blank lines{held_out}: {files}")


def iter_documents(
    source: DataSource, split: str = "train", *, start: int = 0, validation_fraction: float | None = None
) -> Iterator[str]:
    """The documents of ``source`` (see :class:`DocumentStream`), skipping the first ``start``.

    ``start`` counts documents as this function yields them, so a run that
    consumed N documents resumes with ``start=N``. (Counting re-reads those N;
    :class:`DocumentStream` positions resume without reading.)
    """
    stream = DocumentStream(source, split, validation_fraction=validation_fraction)
    if start:
        stream.load_state_dict({"documents": start})
    return iter(stream)


# --- local files ----------------------------------------------------------------------


class _FileReader:
    """Raw records (texts, maybe empty) of local files; the cursor is ``{"file", "record"}``.

    ``record`` counts raw records (lines, rows) of the current file already
    read, so resuming skips them without parsing.
    """

    def __init__(self, files: list[tuple[Path, str]], field: str, source: DataSource, cursor: dict | None,
                 stride: tuple[int, int] | None = None) -> None:
        self.files = files
        self.stride = stride
        self.field = field
        self.source = source
        self.file = int(cursor["file"]) if cursor else 0
        self.record = int(cursor["record"]) if cursor else 0

    def cursor(self) -> dict:
        return {"file": self.file, "record": self.record}

    def records(self) -> Iterator[Any]:
        while self.file < len(self.files):
            path, kind = self.files[self.file]
            read = {"txt": self._txt, "jsonl": self._jsonl, "parquet": self._parquet}[kind]
            try:
                for text in read(path, self.record):
                    self.record += 1  # before the yield: the cursor then points past this record
                    if self.stride is None or (self.record - 1) % self.stride[1] == self.stride[0]:
                        yield text
            except DataSourceError:
                raise
            except (OSError, EOFError, ValueError) as exc:  # a truncated .gz, a damaged parquet file
                raise DataSourceError(f"data source {self.source.name!r}: cannot read {path} after record "
                                      f"{self.record}: {type(exc).__name__}: {exc}") from exc
            self.file += 1
            self.record = 0

    def _lines(self, path: Path, skip: int) -> Iterator[tuple[int, str]]:
        handle: IO[str]
        if path.name.lower().endswith(".gz"):
            handle = io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
        else:
            handle = open(path, encoding="utf-8", errors="replace")
        with handle:
            for number, line in enumerate(handle, start=1):
                if number > skip:
                    yield number, line

    def _bounded_lines(self, path: Path, skip: int) -> Iterator[str]:
        """Lines of a text file, each cut to MAX_DOCUMENT_CHARS; the rest of a longer line is read and dropped."""
        handle: IO[str]
        if path.name.lower().endswith(".gz"):
            handle = io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
        else:
            handle = open(path, encoding="utf-8", errors="replace")
        number = 0
        with handle:
            while line := handle.readline(MAX_DOCUMENT_CHARS + 1):
                if not line.endswith("\n"):  # cut off (or the file's last line): drop the rest of it
                    while (rest := handle.readline(MAX_DOCUMENT_CHARS + 1)) and not rest.endswith("\n"):
                        pass
                number += 1
                if number > skip:
                    yield line

    def _txt(self, path: Path, skip: int) -> Iterator[str]:
        for line in self._bounded_lines(path, skip):
            yield line.rstrip("\r\n")

    def _jsonl(self, path: Path, skip: int) -> Iterator[Any]:
        for number, line in self._lines(path, skip):
            if not line.strip():
                yield None
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataSourceError(f"data source {self.source.name!r}: {path} line {number} is not JSON ({err})") from None
            if not isinstance(record, dict):
                raise DataSourceError(f"data source {self.source.name!r}: {path} line {number} is not a JSON object")
            if self.field not in record:
                raise DataSourceError(
                    f"data source {self.source.name!r}: {path} line {number} has no field {self.field!r} "
                    f"(fields: {', '.join(record) or 'none'}); set text_field"
                )
            yield record[self.field]

    def _parquet(self, path: Path, skip: int) -> Iterator[Any]:
        import pyarrow.parquet as pq  # pyarrow comes with datasets; imported when needed

        parquet = pq.ParquetFile(path)
        columns = parquet.schema_arrow.names
        if self.field not in columns:
            raise DataSourceError(
                f"data source {self.source.name!r}: {path} has no column {self.field!r} "
                f"(columns: {', '.join(columns) or 'none'}); set text_field"
            )
        # Skip whole row groups from the metadata, then the rest inside the first group read.
        groups = []
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if not groups and skip >= rows:
                skip -= rows
                continue
            groups.append(group)
        if not groups:
            return
        for batch in parquet.iter_batches(columns=[self.field], row_groups=groups, batch_size=1024):
            values = batch.column(0).to_pylist()
            if skip:
                values, skip = values[skip:], max(0, skip - len(values))
            yield from values


# --- datasets ----------------------------------------------------------------------


def _load_dataset(source: DataSource, shard: tuple[int, int] | None = None) -> Any:
    import datasets  # imported when a dataset source is read: it is slow to import

    loaded = datasets.load_dataset(source.dataset, source.config, split=source.split, streaming=source.streaming)
    if isinstance(loaded, datasets.Dataset):
        # One reader and one kind of position for both: the map-style dataset read in order.
        loaded = loaded.to_iterable_dataset()
    if shard is not None:
        from datasets.distributed import split_dataset_by_node

        # whole shards per rank when they divide evenly, else every world-th example
        loaded = split_dataset_by_node(loaded, rank=shard[0], world_size=shard[1])
    columns = loaded.column_names  # None when a streamed dataset does not declare its features
    if columns is not None and source.text_field not in columns:
        raise DataSourceError(
            f"data source {source.name!r}: dataset {source.dataset!r} has no column {source.text_field!r} "
            f"(columns: {', '.join(columns) or 'none'}); set text_field"
        )
    if columns is not None and len(columns) > 1:
        loaded = loaded.select_columns([source.text_field])
    return loaded


class _DatasetReader:
    """Raw records of a ``datasets.IterableDataset``; the cursor is its own ``state_dict()``."""

    def __init__(self, dataset: Any, source: DataSource, cursor: dict) -> None:
        self.dataset = dataset
        self.source = source
        dataset.load_state_dict(cursor)

    def cursor(self) -> dict:
        # Exact: this reader's generator is suspended right after the record it last yielded.
        return self.dataset.state_dict()

    def records(self) -> Iterator[Any]:
        field = self.source.text_field
        for example in self.dataset:
            if field not in example:
                raise DataSourceError(
                    f"data source {self.source.name!r}: dataset {self.source.dataset!r} has no column {field!r} "
                    f"(columns: {', '.join(example) or 'none'}); set text_field"
                )
            yield example[field]



def tokenizer_texts(data) -> Iterator[str]:
    """The documents a tokenizer trains on: one from each source's training split in turn.

    The tokenizer reads as many as it wants (its ``max_train_documents``);
    ``run`` and ``prepare`` both train from this, so a store's tokenizer is
    the one a run would have trained.
    """
    streams = [iter(iter_documents(source, "train", validation_fraction=data.validation_fraction))
               for source in data.sources]
    while streams:
        for stream in list(streams):
            try:
                yield next(stream)
            except StopIteration:
                streams.remove(stream)
