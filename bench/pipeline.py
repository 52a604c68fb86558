"""Benchmark 2: the data pipeline alone, and whether the data worker hides it from the step time.

**Pipeline throughput.** The pipeline the trainer runs — read the sample
corpus, tokenise, find words (whole-word masking), pack, collate, mask — is
built exactly as the data worker builds it (:class:`PipelineSpec`) and asked
for batches as fast as it can make them, for a fixed time:

* on one core: one process, with torch, tokenizers (Rayon) and OpenMP held to
  one thread each;
* on two cores: two such processes at once, each on its own part of the
  corpus, started together behind a file barrier; their rates add up.

Cases: Japanese with fugashi (MeCab) whole-word masking, Chinese with jieba
and with rjieba whole-word masking, Finnish with plain MLM. Each language
has a 32k BPE vocabulary trained on its sample corpus (the Chinese recipe's
size); tokens per second depend on the vocabulary, so characters per token
are reported beside them. The target is 175k tokens/s on two cores: what one
H100 eats at 40% MFU on the ModernBERT-base shape (about 350k tokens/s) given
a GPU node's 2 cores per GPU.

**Hiding.** The same training run (Japanese, fugashi whole-word masking, a
model small enough — 64 wide, 2 layers — that making its batches is a visible
share of a step) three ways: ``data_workers: 1`` (batches made in a worker
process), ``data_workers: 0`` (made in the training process, between steps),
and every batch made before the first step (the model's time alone). The model
gets one thread and the worker the other core, as on a GPU node, where the
model runs on the GPU and the CPU is free for the worker (with two threads here
the model would take both cores and the worker could only take time from it).
The median step times tell how much of the data time the worker hides.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ONE_CORE, Child, Figure, child_main, run_child, tokenizer_dir

MODULE = "bench.pipeline"
BENCH = "2 data pipeline"
TARGET = 175_000  # tokens/s on two cores

#: (label, language, masking, segmenter name for the hook; None: the plugin's default)
CASES = [
    ("ja, fugashi whole-word", "ja", "whole_word", None),
    ("zh, jieba whole-word", "zh", "whole_word", "jieba"),
    ("zh, rjieba whole-word", "zh", "whole_word", "rjieba"),
    ("fi, plain MLM", "fi", "mlm", None),
]


@dataclass(frozen=True)
class Sizes:
    vocab: int = 32000
    seq_len: int = 1024
    batch_size: int = 16
    seconds: float = 6.0  # measuring time of each pipeline process
    cases: tuple[str, ...] = tuple(c[0] for c in CASES)
    hide_steps: int = 30  # training steps of each hiding run
    hide_seq_len: int = 512
    hide_vocab: int = 4096  # the smoke scale's vocabulary: a tiny model's head stays tiny


#: the hiding runs' model: small, so that making its batches is a visible share of a step
HIDE_MODEL = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 2}

SIZES = {
    "full": Sizes(),
    "quick": Sizes(seconds=2.5, hide_steps=10),
    "smoke": Sizes(vocab=1024, seq_len=128, batch_size=4, seconds=0.5, cases=("ja, fugashi whole-word",),
                   hide_steps=3, hide_seq_len=64, hide_vocab=1024),
}


def run(mode: str, work: Path) -> list[Figure]:
    sizes = SIZES[mode]
    figures: list[Figure] = []
    rates: dict[str, float] = {}
    for label, lang, masking, segmenter in CASES:
        if label not in sizes.cases:
            continue
        config = {"kind": "pipeline", "lang": lang, "masking": masking, "segmenter": segmenter,
                  "tokenizer": str(tokenizer_dir(work, lang, sizes.vocab)), "seq_len": sizes.seq_len,
                  "batch_size": sizes.batch_size, "seconds": sizes.seconds}
        one = _together(config, 1)
        two = _together(config, 2)
        rates[label] = one["tokens_per_s"]
        chars = one["parts"][0]["chars_per_token"]
        figures.append(Figure(BENCH, f"{label}: 1 process (1 core)", one["tokens_per_s"], "tok/s",
                              f"{chars:.2f} chars/token, {one['tokens_per_s'] * chars / 1e6:.2f}M chars/s",
                              one["load"], one))
        verdict = "meets" if two["tokens_per_s"] >= TARGET else "below"
        scaling = two["tokens_per_s"] / one["tokens_per_s"]
        figures.append(Figure(BENCH, f"{label}: 2 processes (2 cores)", two["tokens_per_s"], "tok/s",
                              f"{verdict} the {TARGET // 1000}k target; {scaling:.2f}× 1 process", two["load"], two))
    jieba, rjieba = rates.get("zh, jieba whole-word"), rates.get("zh, rjieba whole-word")
    if jieba and rjieba:
        figures.append(Figure(BENCH, "zh pipeline: rjieba vs jieba (1 process)", rjieba / jieba, "×",
                              "same words on Chinese text (tests/plugins/test_rjieba.py)"))
    figures += hiding(sizes, work)
    return figures


def _together(config: dict[str, Any], processes: int) -> dict[str, Any]:
    """``processes`` pipeline children measured over the same seconds (a file barrier starts them together)."""
    with tempfile.TemporaryDirectory(prefix="bench-barrier-") as barrier:
        children = [Child(MODULE, {**config, "part": i, "parts": processes, "barrier": barrier}, env=ONE_CORE)
                    for i in range(processes)]
        parts = [child.wait() for child in children]
    return {"tokens_per_s": sum(p["tokens_per_s"] for p in parts), "load": parts[0]["load"], "parts": parts}


def hiding(sizes: Sizes, work: Path) -> list[Figure]:
    """Median step time of the same training run with data_workers 1, 0, and batches made beforehand."""
    from bench import training

    tokenizer = tokenizer_dir(work, "ja", sizes.hide_vocab)
    base = {"kind": "ours", "tokenizer": str(tokenizer), "lang": "ja", "seq_len": sizes.hide_seq_len,
            "batch_size": 16, "model": HIDE_MODEL, "mask_rate": training.MASK_RATE, "lr": training.LR,
            "seed": training.SEED, "steps": sizes.hide_steps, "packing": "naive", "sparse": True,
            "masking": {"name": "whole_word", "rate": training.MASK_RATE}}
    runs = {
        "data_workers 1": {**base, "data_workers": 1},
        "data_workers 0": {**base, "data_workers": 0},
        "model only (batches made beforehand)": {**base, "data_workers": 0, "premade": True},
    }
    results = {}
    for name, config in runs.items():
        # one thread for the model, the other core for the data worker (see the module's docstring)
        results[name] = run_child(training.MODULE, {**config, "output": str(work / f"hide-{name.split()[-1]}")},
                                  env=ONE_CORE)
    model_only = _median(results["model only (batches made beforehand)"]["step_s"], sizes.hide_steps)
    figures = []
    for name, r in results.items():
        step = _median(r["step_s"], sizes.hide_steps)
        over = f"{(step / model_only - 1):+.0%} vs model only" if "model only" not in name else "the floor"
        figures.append(Figure(BENCH, f"ja whole-word training step, {name}", 1000 * step, "ms", over, r["load"],
                              {k: v for k, v in r.items() if k != "step_s"}))
    return figures


def _median(step_s: list[float], steps: int) -> float:
    import statistics

    return statistics.median(step_s[min(max(2, steps // 10), len(step_s) - 1):])


# --- the child ------------------------------------------------------------------------------


def _pipeline(cfg: dict[str, Any]) -> dict[str, Any]:
    """Make batches for ``seconds`` once every process of the run is ready; tokens/s of this process."""
    import torch
    from transformers import AutoTokenizer

    from encoder_recipes.components.masking import TokenMasking, WholeWordMasking
    from encoder_recipes.data.sources import DocumentStream
    from encoder_recipes.registry import default_registries
    from encoder_recipes.schema import DataSource
    from encoder_recipes.training.prefetch import PipelineSpec

    from bench.common import sample_texts

    torch.set_num_threads(1)
    lang = cfg["lang"]
    tok = AutoTokenizer.from_pretrained(cfg["tokenizer"])
    texts = sample_texts(lang)
    chars_per_token = sum(map(len, texts)) / sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
    segmenter = None
    if cfg["masking"] == "whole_word":
        # pluggy's own call of the look-up hook passes ``name`` to the plugins that take it
        segmenter = default_registries().word_segmenter(lang, cfg["segmenter"])
        if segmenter is None or (cfg["segmenter"] and segmenter.name != cfg["segmenter"]):
            raise RuntimeError(f"no {cfg['segmenter'] or 'default'} word segmenter for {lang!r} is installed "
                               f"(got {getattr(segmenter, 'name', None)!r})")
    masking = WholeWordMasking(rate=0.3) if segmenter else TokenMasking(rate=0.3)
    stream = DocumentStream(DataSource(name=lang, sample=lang), "train")
    # each process starts at its own share of the corpus, as sharded workers would
    stream.load_state_dict({"documents": len(texts) * cfg["part"] // cfg["parts"]})
    spec = PipelineSpec(streams={lang: stream}, weights={}, mixture_seed=cfg["part"], tokenizer=tok,
                        segmenter=segmenter, packing="naive", masking=masking, seed=cfg["part"])
    maker = spec.build()
    shape = {"batch_size": cfg["batch_size"], "seq_len": cfg["seq_len"], "rate": 0.3}
    maker.next(step=0, **shape)  # warm-up: dictionaries load, the stream opens

    barrier = Path(cfg["barrier"])
    (barrier / f"ready-{cfg['part']}").touch()
    while len(list(barrier.glob("ready-*"))) < cfg["parts"]:
        time.sleep(0.005)

    tokens, step = 0, 1
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < cfg["seconds"]:
        tokens += maker.next(step=step, **shape).tokens
        step += 1
    return {"tokens_per_s": tokens / elapsed, "tokens": tokens, "batches": step - 1, "seconds": elapsed,
            "chars_per_token": chars_per_token, "segmenter": getattr(segmenter, "name", None), "pid": os.getpid()}


if __name__ == "__main__":
    child_main({"pipeline": _pipeline})
