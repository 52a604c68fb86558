"""``data.shard_by_rank``: each rank reads its own part of a source, the parts together are all of it."""

from __future__ import annotations

from encoder_recipes.data.sources import DocumentStream
from encoder_recipes.schema import DataSource


def read(source, shard=None):
    return list(DocumentStream(source, "train", shard=shard, shard_seed=7))


def test_files_are_shuffled_and_dealt_out_and_the_parts_cover_the_source(tmp_path):
    for f in range(6):
        (tmp_path / f"part{f}.txt").write_text("\n".join(f"file {f} line {i}" for i in range(5)), encoding="utf-8")
    source = DataSource(name="d", paths=[str(tmp_path / "*.txt")])
    everything = read(source)
    parts = [read(source, (rank, 2)) for rank in range(2)]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(everything)
    files_in_order = [doc.split()[1] for doc in parts[0] + parts[1]][::5]
    assert files_in_order != sorted(files_in_order)  # not one sub-corpus after another


def test_fewer_files_than_ranks_are_dealt_out_by_record(tmp_path):
    (tmp_path / "one.txt").write_text("\n".join(f"line {i}" for i in range(10)), encoding="utf-8")
    source = DataSource(name="d", paths=[str(tmp_path / "one.txt")])
    parts = [read(source, (rank, 3)) for rank in range(3)]
    assert parts[1] == ["line 1", "line 4", "line 7"]
    assert sorted(sum(parts, [])) == sorted(read(source))
