"""The prepared store: prepare writes it, each rank reads its share, and bad stores are refused.

Real components throughout: a BPE tokenizer trained by prepare, the Finnish
plugin's whitespace word segmenter, Arrow shards on the local disk, gloo.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder_recipes.data.packing import make_packer
from encoder_recipes.data.prepare import PrepareOptions, prepare, store_identity
from encoder_recipes.data.store import Store
from encoder_recipes.data.store_batches import StoreBatches, StoreSpec
from encoder_recipes.data.store_format import StoreError, tokenizer_hash
from encoder_recipes.data.store_plan import SequencePlanner, StoreTooSmall, check_enough, doc_lengths
from encoder_recipes.registry import default_registries
from encoder_recipes.training.batches import DocumentTokenizer, SequenceStream, _compact
from encoder_recipes.validation import load_recipe

RECIPE = """\
metadata: {{name: tiny-store, language: fi, description: tiny store test}}
model: {{hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 256, local_attention: 32}}
tokenizer: {{name: bpe, vocab_size: 512}}
data:
  sources:
    - {{name: a, paths: ["{corpus}/a.txt"]}}
    - {{name: b, paths: ["{corpus}/b.txt"]}}
  mixture: {{a: 2, b: 1}}
  validation_fraction: 0.05
stages:
  - name: short
    context: {{name: fixed, seq_len: 64}}
    steps: 10
    batch_size: 8
    lr: 1.0e-3
    masking: {{name: whole_word, rate: 0.3}}
    packing: best_fit
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, stdlib_docstrings) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    texts = stdlib_docstrings
    (folder / "a.txt").write_text("\n".join(texts[::2]), encoding="utf-8")
    (folder / "b.txt").write_text("\n".join(texts[1::2]), encoding="utf-8")
    return folder


def resolve(corpus: Path, tmp: Path, *overrides: str):
    path = tmp / "recipe.yaml"
    path.write_text(RECIPE.format(corpus=corpus), encoding="utf-8")
    registries = default_registries()
    return load_recipe(str(path), overrides=list(overrides), registries=registries), registries


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prepared")
    resolved, registries = resolve(corpus, tmp)
    out = tmp / "store"
    prepare(resolved, registries, PrepareOptions(output=str(out), workers=2, part_documents=150, progress=False))
    return resolved, registries, out


def tokenizer_of(store_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(store_dir / "tokenizer")


def spec_for(resolved, store_dir: Path, tokenizer, *, packing="best_fit", rank=0, world=1, state=None,
             registries=None, mask_group=1) -> StoreSpec:
    registries = registries or default_registries()
    masking = resolved.component(registries, "masking", resolved.recipe.stages[0].masking)
    return StoreSpec(store=str(store_dir), weights=resolved.recipe.data.mixture, mixture_seed=7, packing=packing,
                     masking=masking, seed=3, cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id,
                     pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                     special_ids=list(tokenizer.all_special_ids), rank=rank, world=world, state=state,
                     mask_group=mask_group)


# --- prepare ----------------------------------------------------------------------------


def test_prepare_stores_every_document_with_its_word_starts(prepared):
    import datasets

    from encoder_recipes.data.sources import iter_documents

    resolved, registries, out = prepared
    index = json.loads((out / "store.json").read_text())
    assert index["id_dtype"] == "uint16" and index["words"] == {"segmenter": "default"}
    assert index["tokenizer_sha256"] == tokenizer_hash(tokenizer_of(out))
    store = Store(out)
    tok = tokenizer_of(out)
    doc_tok = DocumentTokenizer(tok, registries.word_segmenter("fi"))
    for source in resolved.recipe.data.sources:
        texts = list(iter_documents(source, "train", validation_fraction=0.05))
        stored = store.sources[source.name]
        assert stored.documents == len(texts) and len(stored.shards) >= 2  # several parts were written
        for i in (0, 1, len(texts) // 2, len(texts) - 1):
            ids, flags = stored.document(i)
            want_ids, want_words = doc_tok([texts[i]])[0]
            assert ids.tolist() == want_ids
            # the flags give back the segmenter's words: same runs as the on-the-fly word ids
            from encoder_recipes.data.store_format import word_flags
            assert flags.tolist() == word_flags(want_words).tolist()
    # a shard is an Arrow IPC stream that Hugging Face datasets opens as it is
    shard = datasets.Dataset.from_file(str(out / index["sources"]["a"]["shards"][0]["file"]))
    assert shard[0]["ids"] == store.sources["a"].document(0)[0].tolist()


def test_prepare_resumes_keeping_whole_parts_and_redoing_the_rest(prepared, tmp_path):
    resolved, registries, out = prepared
    copy = tmp_path / "store"
    import shutil

    shutil.copytree(out, copy)
    index = json.loads((copy / "store.json").read_text())
    shards = index["sources"]["b"]["shards"]
    # a kill: the index was never written, the second part of b is torn and has no marker, a temp file lies about
    (copy / "store.json").unlink()
    (copy / "b/part-00001.json").unlink()
    torn = copy / "b/part-00001.arrow"
    torn.write_bytes(torn.read_bytes()[:100])
    (copy / "b/part-00002.arrow.tmp").write_bytes(b"half")
    kept = (copy / "a/part-00000.arrow").stat().st_mtime_ns
    prepare(resolved, registries, PrepareOptions(output=str(copy), workers=1, part_documents=150, progress=False))
    again = json.loads((copy / "store.json").read_text())
    assert again == index  # the same shards, byte for byte (SHA-256 in the index)
    assert (copy / "a/part-00000.arrow").stat().st_mtime_ns == kept  # whole parts were not redone
    assert len(shards) == len(again["sources"]["b"]["shards"])


def test_prepare_refuses_to_mix_other_data_into_a_started_store(prepared, tmp_path, corpus):
    resolved, registries, out = prepared
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(out, copy)
    (copy / "store.json").unlink()
    other, _ = resolve(corpus, tmp_path, "data.validation_fraction=0.1")
    with pytest.raises(StoreError, match="was started for other data"):
        prepare(other, registries, PrepareOptions(output=str(copy), workers=1, part_documents=150, progress=False))


# --- the plan reproduces the packers ------------------------------------------------------


@pytest.mark.parametrize("packing", ["none", "naive", "best_fit"])
def test_plan_packs_exactly_as_the_packers(prepared, packing):
    """Sequences planned from lengths and read from the store equal packing.py's over the same documents."""
    _, _, out = prepared
    store, tok = Store(out), tokenizer_of(out)
    planner = SequencePlanner(store, {"a": 2, "b": 1}, seed=5, packing=packing, window=50)
    packer = make_packer(packing, 64, tok.cls_token_id, tok.sep_token_id, window=50)
    words_packer = make_packer(packing, 64, -1, -1, window=50)
    from encoder_recipes.data.store_batches import materialise

    expected: list = []
    probe = SequencePlanner(store, {"a": 2, "b": 1}, seed=5, packing=packing, window=50)
    planned = planner.take(60, 64)
    while len(expected) < 60:
        s, doc, _ = probe.next_document()
        ids, flags = store.sources[probe.names[s]].document(doc)
        from encoder_recipes.data.store_format import NO_WORD, WORD_STARTS
        # word ids of the document from its flags (what the on-the-fly path gets from the segmenter)
        valid = flags != NO_WORD
        words = np.where(valid, np.cumsum(valid & (flags == WORD_STARTS)) - 1, -1).tolist()
        expected.extend(zip(packer.add(ids.tolist()), words_packer.add(words)))
    for pieces, (seq, wseq) in zip(planned, expected):
        got_ids, got_words = materialise(store, planner.names, pieces, tok.cls_token_id, tok.sep_token_id, True)
        assert got_ids.tolist() == seq.input_ids
        assert doc_lengths(pieces) == seq.doc_lengths
        assert got_words.tolist() == _compact(torch.tensor(wseq.input_ids)).tolist()


def test_store_batches_equal_the_on_the_fly_pipeline(prepared):
    """Same documents in, same packed and word-numbered sequences out as SequenceStream, with no segmenter."""
    resolved, registries, out = prepared
    store, tok = Store(out), tokenizer_of(out)
    from encoder_recipes.data.sources import iter_documents
    from encoder_recipes.data.store_batches import materialise

    texts = list(iter_documents(resolved.recipe.data.sources[0], "train", validation_fraction=0.05))
    fly = SequenceStream([("a", t) for t in texts], DocumentTokenizer(tok, registries.word_segmenter("fi")),
                         "naive", tok.cls_token_id, tok.sep_token_id)
    planner = SequencePlanner(store, {"a": 1.0}, seed=0, packing="naive")
    planned = planner.take(40, 64)
    for pieces, (ids, words, lengths) in zip(planned, fly.take(40, 64)):
        got_ids, got_words = materialise(store, planner.names, pieces, tok.cls_token_id, tok.sep_token_id, True)
        assert got_ids.tolist() == ids
        assert doc_lengths(pieces) == lengths
        assert got_words.tolist() == _compact(torch.tensor(words)).tolist()


# --- rank shares, workers, resume ----------------------------------------------------------


def steps_list(first: int, last: int, batch: int = 8, seq_len: int = 64):
    return [(s, batch, seq_len, 0.3) for s in range(first, last)]


def global_batches(resolved, out, tok, world: int, steps, state=None, workers=0, mask_group=1):
    """Each rank's batches of each step for `world` ranks, rows assembled in rank order."""
    per_rank = [list(_iterate(StoreBatches(spec_for(resolved, out, tok, rank=r, world=world, state=state,
                                                    mask_group=mask_group),
                                           steps, workers=workers), steps))
                for r in range(world)]
    return [assemble([per_rank[r][i] for r in range(world)]) for i in range(len(steps))]


def _iterate(batches, steps):
    for step, b, L, rate in steps:
        yield batches.next(step=step, batch_size=b, seq_len=L, rate=rate)


def assemble(parts):
    rows = []
    for part in parts:
        for i in range(len(part.input_ids)):
            n = int(part.attention_mask[i].sum())
            rows.append((part.input_ids[i, :n].tolist(), part.labels[i, :n].tolist(), part.doc_lengths[i]))
    return rows


def test_two_data_workers_give_the_batches_one_process_makes(prepared):
    resolved, _, out = prepared
    tok = tokenizer_of(out)
    steps = steps_list(0, 5)
    assert global_batches(resolved, out, tok, 1, steps, workers=2) == global_batches(resolved, out, tok, 1, steps)


def test_ranks_read_only_their_rows_and_resume_on_another_world_size(prepared):
    resolved, _, out = prepared
    tok = tokenizer_of(out)
    whole = global_batches(resolved, out, tok, 1, steps_list(0, 6))
    # two ranks: each reads its half, the halves make the one-process batch
    assert global_batches(resolved, out, tok, 2, steps_list(0, 6)) == whole
    # stop after step 2 on four ranks, resume on two: the stream continues, nothing replays
    four = StoreBatches(spec_for(resolved, out, tok, rank=3, world=4), steps_list(0, 3), workers=0)
    list(_iterate(four, steps_list(0, 3)))
    state = four.state_after(2)
    assert global_batches(resolved, out, tok, 2, steps_list(3, 6), state=state) == whole[3:]


def test_mask_groups_keep_the_batch_for_every_share_of_whole_groups(prepared):
    resolved, _, out = prepared
    tok = tokenizer_of(out)
    steps = steps_list(0, 3)
    whole = global_batches(resolved, out, tok, 1, steps, mask_group=4)
    assert global_batches(resolved, out, tok, 2, steps, mask_group=4) == whole
    assert whole != global_batches(resolved, out, tok, 1, steps)  # groups are drawn otherwise than rows
    with pytest.raises(ValueError, match="not whole mask groups of 4 rows"):
        global_batches(resolved, out, tok, 4, steps, mask_group=4)


def test_masking_differs_between_rows_and_steps(prepared):
    resolved, _, out = prepared
    tok = tokenizer_of(out)
    batches = global_batches(resolved, out, tok, 1, steps_list(0, 2))
    labels = [[lab for _, lab, _ in b] for b in batches]
    masked = sum(x != -100 for b in labels for row in b for x in row)
    tokens = sum(len(ids) for b in batches for ids, _, _ in b)
    assert 0.15 < masked / tokens < 0.4  # whole words at 30%, specials never
    assert labels[0][0] != labels[0][1] and labels[0] != labels[1]


# --- refusals --------------------------------------------------------------------------------


def test_a_store_from_another_tokenizer_or_other_data_is_refused(prepared, corpus, tmp_path):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    resolved, registries, out = prepared
    store, tok = Store(out), tokenizer_of(out)
    identity = store_identity(resolved, registries, tokenizer_hash(tok), len(tok))
    store.check(tokenizer=tok, identity=identity)  # its own recipe and tokenizer pass
    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.add_tokens(["zzzz"])
    other_tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    with pytest.raises(StoreError, match="made with another tokenizer"):
        store.check(tokenizer=other_tok, identity=identity)
    other, _ = resolve(corpus, tmp_path, "data.validation_fraction=0.1")
    with pytest.raises(StoreError, match="made from other data.*validation_fraction"):
        store.check(tokenizer=tok, identity=store_identity(other, registries, tokenizer_hash(tok), len(tok)))


def test_missing_and_torn_shards_are_refused_by_name(prepared, tmp_path):
    import shutil

    _, _, out = prepared
    copy = tmp_path / "store"
    shutil.copytree(out, copy)
    (copy / "b/part-00001.arrow").unlink()
    with pytest.raises(StoreError, match="shard b/part-00001.arrow is missing"):
        Store(copy)
    shutil.rmtree(copy)
    shutil.copytree(out, copy)
    shard = copy / "a/part-00000.arrow"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(StoreError, match="shard a/part-00000.arrow is torn"):
        Store(copy)
    # same size, damaged inside: Arrow cannot read it, or its SHA-256 differs
    shutil.rmtree(copy)
    shutil.copytree(out, copy)
    data = bytearray(shard.read_bytes() if shard.exists() else (out / "a/part-00000.arrow").read_bytes())
    data[:8] = b"\xff" * 8
    (copy / "a/part-00000.arrow").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="a/part-00000.arrow"):
        Store(copy).sources["a"].document(0)
    with pytest.raises(StoreError, match="damaged"):
        Store(copy).verify()
    (copy / "store.json").unlink()
    with pytest.raises(StoreError, match="prepare was interrupted"):
        Store(copy)


def test_a_store_too_small_for_the_steps_is_refused(prepared):
    _, _, out = prepared
    store = Store(out)
    documents = sum(s.documents for s in store.sources.values())
    check_enough(store, packing="none", steps=[(8, 64)] * (documents // 8))
    with pytest.raises(StoreTooSmall, match="need 8,008"):
        check_enough(store, packing="none", steps=[(8, 64)] * 1001)
    tokens = sum(s.tokens for s in store.sources.values())
    with pytest.raises(StoreTooSmall, match="pack at least"):
        check_enough(store, packing="best_fit", steps=[(8, 64)] * (tokens // 8 // 63 + 100))
    # and a plan that runs out mid-stage says which source
    planner = SequencePlanner(store, {"a": 1.0}, seed=0, packing="none")
    with pytest.raises(StoreTooSmall, match="source 'a' ran out"):
        planner.take(store.sources["a"].documents + 1, 64)


# --- two gloo processes ------------------------------------------------------------------------


def _gloo_rank(rank: int, world: int, init: str, resolved, out: str, result: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    tok = tokenizer_of(Path(out))
    steps = steps_list(0, 4)
    mine = list(_iterate(StoreBatches(spec_for(resolved, Path(out), tok, rank=rank, world=world), steps,
                                      workers=0), steps))
    gathered: list = [None] * world
    dist.all_gather_object(gathered, [assemble([b]) for b in mine])
    if rank == 0:
        Path(result).write_text(json.dumps([sum((gathered[r][i] for r in range(world)), [])
                                            for i in range(len(steps))]))
    dist.destroy_process_group()


def test_two_gloo_processes_assemble_the_one_process_global_batch(prepared, tmp_path):
    import torch.multiprocessing as tmp_mp

    resolved, _, out = prepared
    tok = tokenizer_of(out)
    result = tmp_path / "gathered.json"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp_mp.spawn(_gloo_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", resolved, str(out), str(result)),
                 nprocs=2, join=True)
    gathered = json.loads(result.read_text())
    whole = global_batches(resolved, out, tok, 1, steps_list(0, 4))
    assert [[list(map(list, (i, l))) + [d] for i, l, d in b] for b in whole] == \
        [[[r[0], r[1], r[2]] for r in b] for b in gathered]


# --- the command and the run's entry points --------------------------------------------------


def test_prepare_command_reports_the_store_and_refuses_other_data(prepared, corpus, tmp_path, capsys):
    import shutil

    from encoder_recipes.cli import main

    resolved, _, out = prepared
    copy = tmp_path / "store"
    shutil.copytree(out, copy)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(corpus=corpus), encoding="utf-8")
    assert main(["prepare", str(recipe), "--output", str(copy), "--workers", "1"]) == 0  # complete: nothing to do
    printed = capsys.readouterr().out
    documents = Store(copy).sources["a"].documents
    assert f"a: {documents:,} documents" in printed and f"done: {copy}" in printed
    (copy / "store.json").unlink()
    assert main(["prepare", str(recipe), "--output", str(copy), "data.validation_fraction=0.2"]) == 1
    assert "was started for other data" in capsys.readouterr().err


def test_a_run_opens_the_store_and_reads_each_stage_on_from_the_last(prepared):
    from encoder_recipes.data.store_run import open_for_run, stage_batches

    resolved, registries, out = prepared
    tok = tokenizer_of(out)
    store = open_for_run(str(out), resolved, registries, tok)
    masking = resolved.component(registries, "masking", resolved.recipe.stages[0].masking)
    first = stage_batches(store, resolved, tok, stage_index=0, masking=masking, steps=steps_list(0, 2),
                          rank=0, world=1, workers=0, prefetch=2)
    list(_iterate(first, steps_list(0, 2)))
    after = first.state_after(1)
    second = stage_batches(store, resolved, tok, stage_index=0, masking=masking, steps=steps_list(2, 3, seq_len=128),
                           rank=0, world=1, workers=0, prefetch=2, previous_stage_state=after)
    assert second._planner.drawn == after["drawn"]  # the next stage starts at the next document
    with pytest.raises(StoreTooSmall):
        stage_batches(store, resolved, tok, stage_index=0, masking=masking, steps=steps_list(0, 100_000),
                      rank=0, world=1, workers=0, prefetch=2)
