"""Benchmark 3: peak memory against corpus size — streaming stays flat.

The sample corpus's training file and a copy holding it ten times over (a
temporary file) are each read to the end through the trainer's pipeline:
a ``paths`` data source streamed by ``DocumentStream``, tokenised, packed,
masked and collated into batches until the mixture starts its second epoch.
Each run is a child process of its own, so its peak resident memory
(``ru_maxrss``) is its alone. Streaming holds a chunk of documents and a few
packed sequences at a time, so the peak should not grow with the corpus.

For reference, the baseline's way in — ``datasets.load_dataset`` and
``map`` tokenisation of the whole file before the first step — is run on
the same two files: its memory is held down by Arrow's memory-mapped cache,
but its time before the first batch grows with the corpus.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ONE_CORE, Figure, child_main, run_child, sample_path, tokenizer_dir

MODULE = "bench.memory"
BENCH = "3 memory"


@dataclass(frozen=True)
class Sizes:
    lang: str = "en"
    vocab: int = 32000
    times: int = 10  # the larger corpus is this many copies of the sample corpus
    seq_len: int = 1024
    batch_size: int = 16


SIZES = {"full": Sizes(), "quick": Sizes(), "smoke": Sizes(vocab=1024, times=2, seq_len=128, batch_size=4)}


def run(mode: str, work: Path) -> list[Figure]:
    sizes = SIZES[mode]
    tokenizer = tokenizer_dir(work, sizes.lang, sizes.vocab)
    small = sample_path(sizes.lang)
    large = work / f"corpus-{sizes.lang}-{sizes.times}x.jsonl"
    if not large.exists():
        with open(large, "wb") as out:
            for _ in range(sizes.times):
                with open(small, "rb") as src:
                    shutil.copyfileobj(src, out)
    config = {"tokenizer": str(tokenizer), "seq_len": sizes.seq_len, "batch_size": sizes.batch_size}
    results: dict[str, dict[str, Any]] = {}
    for label, path in (("1×", small), (f"{sizes.times}×", large)):
        results[f"stream {label}"] = run_child(MODULE, {**config, "kind": "stream", "path": str(path)}, env=ONE_CORE)
        cache = work / f"map-cache-{label}"
        shutil.rmtree(cache, ignore_errors=True)  # a first run: nothing tokenised yet
        results[f"map {label}"] = run_child(MODULE, {**config, "kind": "map", "path": str(path),
                                                     "cache_dir": str(cache)}, env=ONE_CORE)
    figures = []
    for kind, what in (("stream", "streaming pipeline (encoder-recipes)"), ("map", "datasets.map (baseline)")):
        one, many = results[f"{kind} 1×"], results[f"{kind} {sizes.times}×"]
        for label, r in ((f"1×", one), (f"{sizes.times}×", many)):
            size_mib = r["bytes"] / 2**20
            compare = f"{size_mib:.0f} MiB corpus, {r['tokens']:,} tokens, {r['seconds']:.1f} s"
            if kind == "map":
                compare += " before the first batch (documents cut at the sequence length)"
            figures.append(Figure(BENCH, f"{what}, {label} corpus: peak RSS", r["peak_rss_mib"]["self"], "MiB",
                                  compare, r["load"], r))
        growth = many["peak_rss_mib"]["self"] / one["peak_rss_mib"]["self"]
        figures.append(Figure(BENCH, f"{what}: peak RSS {sizes.times}× / 1×", growth, "×",
                              "flat" if growth < 1.1 else "grows with the corpus"))
    return figures


# --- the children ------------------------------------------------------------------------------


def _stream(cfg: dict[str, Any]) -> dict[str, Any]:
    """The trainer's pipeline over a ``paths`` source, read to the end of its first epoch."""
    import torch
    from transformers import AutoTokenizer

    from encoder_recipes.components.masking import TokenMasking
    from encoder_recipes.data.sources import DocumentStream
    from encoder_recipes.schema import DataSource
    from encoder_recipes.training.prefetch import PipelineSpec

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(cfg["tokenizer"])
    source = DataSource(name="corpus", paths=[cfg["path"]])
    # validation_fraction as a recipe's default: every document's hash decides its split, as in training
    stream = DocumentStream(source, "train", validation_fraction=0.01)
    spec = PipelineSpec(streams={"corpus": stream}, weights={}, mixture_seed=0, tokenizer=tok, segmenter=None,
                        packing="naive", masking=TokenMasking(rate=0.3), seed=0)
    maker = spec.build()
    mixture = maker.sequences.documents
    started = time.perf_counter()
    tokens, step = 0, 0
    while mixture.epochs["corpus"] == 0:
        tokens += maker.next(step=step, batch_size=cfg["batch_size"], seq_len=cfg["seq_len"], rate=0.3).tokens
        step += 1
    return {"tokens": tokens, "batches": step, "seconds": time.perf_counter() - started,
            "bytes": Path(cfg["path"]).stat().st_size}


def _map(cfg: dict[str, Any]) -> dict[str, Any]:
    """The baseline's preprocessing: load the json file and tokenise all of it with ``datasets.map``."""
    import datasets
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg["tokenizer"])
    started = time.perf_counter()
    raw = datasets.load_dataset("json", data_files=cfg["path"], split="train", cache_dir=cfg["cache_dir"])
    tokenized = raw.map(lambda b: tok(b["text"], truncation=True, max_length=cfg["seq_len"],
                                      return_special_tokens_mask=True),
                        batched=True, remove_columns=raw.column_names)
    seconds = time.perf_counter() - started
    tokens = 0
    for batch in tokenized.select_columns(["input_ids"]).iter(batch_size=1024):  # a batch at a time
        tokens += sum(map(len, batch["input_ids"]))
    return {"tokens": tokens, "seconds": seconds, "bytes": Path(cfg["path"]).stat().st_size}


if __name__ == "__main__":
    child_main({"stream": _stream, "map": _map})
