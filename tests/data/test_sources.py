"""Data sources: local files, `datasets`, the sample corpus; positions that resume exactly."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoder_recipes.data.samples import Paragraph, SampleCorpusMissing, sample_dir, split_of, stable_fraction, write_corpus
from encoder_recipes.data.sources import DataSourceError, DocumentStream, iter_documents
from encoder_recipes.schema import DataSource


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _resumes_exactly(make_stream, points):
    """Reading k documents, saving, and restoring into a new stream gives the rest exactly."""
    full = list(make_stream())
    for k in points:
        stream = make_stream()
        iterator = iter(stream)
        head = [next(iterator) for _ in range(k)]
        state = json.loads(json.dumps(stream.state_dict()))  # what a checkpoint stores
        assert state["documents"] == k
        resumed = make_stream()
        resumed.load_state_dict(state)
        assert head + list(resumed) == full, f"resume after {k} documents"
    return full


def test_txt_one_document_per_line_skips_blank_and_replaces_bad_utf8(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"first document\n\n   \nsecond \xff\xfe document\r\nthird\n")
    source = DataSource(name="t", paths=[str(tmp_path / "a.txt")])
    assert list(iter_documents(source)) == ["first document", "second \ufffd\ufffd document", "third"]


def test_jsonl_globs_gzip_text_field_and_mixed_keys(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    _jsonl(tmp_path / "b" / "1.jsonl", [{"body": "one", "id": 1}, {"body": "  "}, {"body": None}, {"body": "two", "x": [1]}])
    _jsonl(tmp_path / "b" / "deep" / "0.jsonl", [{"body": "zero", "lang": "fi"}])
    with gzip.open(tmp_path / "b" / "2.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"body": "three"}) + "\n\n" + json.dumps({"body": "four"}) + "\n")
    source = DataSource(name="j", paths=[str(tmp_path / "b" / "**" / "*.jsonl*")], text_field="body")
    # Sorted glob order; records with other keys are fine; empty and null documents skipped.
    assert list(iter_documents(source)) == ["one", "two", "three", "four", "zero"]


def test_parquet_reads_the_text_column_across_row_groups(tmp_path):
    table = pa.table({"content": [f"row {i}" if i % 7 else "" for i in range(100)], "n": list(range(100))})
    pq.write_table(table, tmp_path / "c.parquet", row_group_size=16)
    source = DataSource(name="p", paths=[str(tmp_path / "c.parquet")], text_field="content")
    expected = [f"row {i}" for i in range(100) if i % 7]
    # Resume inside a row group, at a row-group edge and at the end.
    assert _resumes_exactly(lambda: DocumentStream(source), [0, 1, 13, 14, 40, len(expected)]) == expected


def test_resume_across_files_and_formats_and_with_start(tmp_path):
    (tmp_path / "a.txt").write_text("".join(f"line {i}\n" if i % 5 else "\n" for i in range(30)), encoding="utf-8")
    _jsonl(tmp_path / "b.jsonl", [{"text": f"json {i}"} for i in range(20)])
    pq.write_table(pa.table({"text": [f"pq {i}" for i in range(25)]}), tmp_path / "c.parquet", row_group_size=10)
    source = DataSource(name="mix", paths=[str(tmp_path / "a.txt"), str(tmp_path / "*.jsonl"), str(tmp_path / "c.parquet")])
    full = _resumes_exactly(lambda: DocumentStream(source), [0, 5, 23, 24, 30, 44, 69])
    assert len(full) == 24 + 20 + 25
    assert list(iter_documents(source, start=30)) == full[30:]
    # A second iter() continues; reset() starts over.
    stream = DocumentStream(source)
    first = [text for _, text in zip(range(10), stream)]
    assert list(stream) == full[10:] and first == full[:10]
    stream.reset()
    assert next(iter(stream)) == full[0]


def test_validation_is_held_out_by_hash_of_the_text(tmp_path):
    _jsonl(tmp_path / "d.jsonl", [{"text": f"document number {i}"} for i in range(2000)])
    source = DataSource(name="d", paths=[str(tmp_path / "d.jsonl")])
    train = list(iter_documents(source, "train", validation_fraction=0.1))
    validation = list(iter_documents(source, "validation", validation_fraction=0.1))
    assert not set(train) & set(validation) and len(train) + len(validation) == 2000
    assert 0.07 < len(validation) / 2000 < 0.13
    assert all(stable_fraction(t) < 0.1 for t in validation)
    assert list(iter_documents(source)) == [f"document number {i}" for i in range(2000)]  # no fraction: all train
    with pytest.raises(ValueError, match="validation_fraction"):
        DocumentStream(source, "validation")


def test_missing_column_names_source_file_and_columns(tmp_path):
    _jsonl(tmp_path / "ok.jsonl", [{"text": "fine"}])
    _jsonl(tmp_path / "bad.jsonl", [{"body": "no text here", "id": 3}])
    source = DataSource(name="news", paths=[str(tmp_path / "ok.jsonl"), str(tmp_path / "bad.jsonl")])
    with pytest.raises(DataSourceError) as info:
        list(iter_documents(source))
    message = str(info.value)
    assert "'news'" in message and "bad.jsonl line 1" in message and "body, id" in message

    pq.write_table(pa.table({"content": ["x"], "url": ["u"]}), tmp_path / "e.parquet")
    source = DataSource(name="web", paths=[str(tmp_path / "e.parquet")])
    with pytest.raises(DataSourceError, match=r"'web'.*e\.parquet.*'text'.*content, url"):
        list(iter_documents(source))


def test_globs_matching_nothing_missing_files_and_unknown_formats_fail_early(tmp_path):
    with pytest.raises(DataSourceError, match=r"nothing/\*\*/\*\.jsonl.*matches no files"):
        DocumentStream(DataSource(name="g", paths=[str(tmp_path / "nothing" / "**" / "*.jsonl")]))
    with pytest.raises(DataSourceError, match="no such file"):
        DocumentStream(DataSource(name="g", paths=[str(tmp_path / "absent.txt")]))
    (tmp_path / "notes.md").write_text("# hi\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"notes\.md.*\.jsonl"):
        DocumentStream(DataSource(name="g", paths=[str(tmp_path / "*.md")]))


@pytest.fixture
def corpus_folder(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _jsonl(folder / "part-0.jsonl", [{"text": f"alpha {i}" if i % 9 else " ", "meta": i} for i in range(1200)])
    _jsonl(folder / "part-1.jsonl", [{"text": f"beta {i}", "meta": i} for i in range(300)])
    return folder


def _expected_corpus():
    return [f"alpha {i}" for i in range(1200) if i % 9] + [f"beta {i}" for i in range(300)]


def test_datasets_streaming_over_local_jsonl_resumes_from_its_state(corpus_folder):
    source = DataSource(name="hf", dataset=str(corpus_folder), streaming=True)
    full = _resumes_exactly(lambda: DocumentStream(source), [3, 1066, 1100])
    assert full == _expected_corpus()
    stream = DocumentStream(source)
    for _ in zip(range(5), stream):
        pass
    assert stream.state_dict()["cursor"]["examples_iterable"]  # the IterableDataset's own state
    # The loaded dataset is reused: a reset reads it from the start again.
    stream.reset()
    assert list(stream) == full


def test_datasets_map_style_resumes_the_same_way(corpus_folder, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    source = DataSource(name="hf", dataset=str(corpus_folder), streaming=False)
    assert _resumes_exactly(lambda: DocumentStream(source, validation_fraction=0.2), [0, 700]) == [
        t for t in _expected_corpus() if stable_fraction(t) >= 0.2
    ]


def test_datasets_missing_column_lists_columns(corpus_folder):
    source = DataSource(name="hf", dataset=str(corpus_folder), text_field="content")
    with pytest.raises(DataSourceError, match=r"'hf'.*no column 'content'.*text, meta"):
        list(iter_documents(source))


def test_sample_source_reads_the_cached_split(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCODER_RECIPES_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SampleCorpusMissing):
        DocumentStream(DataSource(name="s", sample="fi"))
    pages = {f"text/page{i}.html": [Paragraph("p", f"Tämä on ohjesivun {i} ensimmäinen kappale.")] for i in range(200)}
    out = sample_dir("fi")
    out.mkdir(parents=True)
    write_corpus(out, lang="fi", package="libreoffice-help-fi", version="1", pages=pages, reference=None)
    source = DataSource(name="s", sample="fi")
    train, validation = list(iter_documents(source, "train")), list(iter_documents(source, "validation"))
    assert len(train) + len(validation) == 200
    held_out = {f"Tämä on ohjesivun {i} ensimmäinen kappale." for i in range(200) if split_of(f"text/page{i}.html") == "validation"}
    assert set(validation) == held_out and held_out
    _resumes_exactly(lambda: DocumentStream(source), [7])


def test_state_of_another_source_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("x\n", encoding="utf-8")
    one = DocumentStream(DataSource(name="one", paths=[str(tmp_path / "a.txt")]))
    other = DocumentStream(DataSource(name="other", paths=[str(tmp_path / "a.txt")]))
    with pytest.raises(ValueError, match="'one'"):
        other.load_state_dict(one.state_dict())


def test_a_second_iterator_continues_where_the_first_stopped(tmp_path):
    from encoder_recipes.data.sources import DocumentStream
    from encoder_recipes.schema import DataSource

    (tmp_path / "a.txt").write_text("\n".join(f"doc {i}" for i in range(10)), encoding="utf-8")
    stream = DocumentStream(DataSource(name="a", paths=[str(tmp_path / "a.txt")]))
    first = iter(stream)
    assert [next(first) for _ in range(3)] == ["doc 0", "doc 1", "doc 2"]
    assert next(iter(stream)) == "doc 3"
