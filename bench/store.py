"""The prepared store: ``prepare`` throughput per core, and reading with packing and whole-word masking.

Part of ``python -m bench`` (section ``store``; ``--quick`` and ``--smoke``
run fewer cases and steps), or alone from the repository root::

    .venv/bin/python -m bench.store [--work DIR] [--json out.json]

* **prepare** — each language's smoke recipe with whole-word masking on every
  stage (so the segmenter runs: fugashi for ja, jieba and rjieba for zh,
  whitespace for fi), over its offline sample corpus, one worker process.
  The tokenizer is trained first and not timed; the figure is documents and
  tokens written per second of the tokenising pass, i.e. per core.
* **read** — one process (one core) making a rank's batches from the zh store:
  plan, read the shards, pack at 1,024 tokens, whole-word mask every row, pad.
  64 sequences a step; the figure is non-padding tokens per second.
* **ranks** — 1, 2 and 4 gloo processes reading the same store
  (:mod:`bench.store_ranks`): each rank's data work, and the hash of the
  assembled global batch, which must not change with the process count.

Each figure is compared with what ja-llmjp's stage 1 on 16 H100s at 40% MFU
asks of a rank (``encoder-recipes plan ja-llmjp --gpus 16``): its share from a
store, or the whole global batch on the fly.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import BenchError, Figure

#: recipe, language label, extra overrides
PREPARES = [
    ("ja-llmjp", "ja (fugashi)", []),
    ("zh-modernbert-wwm", "zh (jieba)", ["segmenter=jieba"]),
    ("zh-modernbert-wwm", "zh (rjieba)", ["segmenter=rjieba"]),
    ("fi-modernbert", "fi (whitespace)", []),
]


def whole_word_overrides(resolved, extra: list[str]) -> list[str]:
    out = []
    for stage in resolved.recipe.stages:
        out.append(f"stages.{stage.name}.masking.name=whole_word")
        out += [f"stages.{stage.name}.masking.{x}" for x in extra]
    return out


def bench_prepare(work: Path, labels: tuple[str, ...] | None = None, limit: int | None = None) -> list[dict]:
    from encoder_recipes.data.prepare import PrepareOptions, prepare, prepare_tokenizer
    from encoder_recipes.data.store_format import Location
    from encoder_recipes.registry import default_registries
    from encoder_recipes.validation import load_recipe

    registries = default_registries()
    figures = []
    for name, label, extra in PREPARES:
        if labels is not None and label not in labels:
            continue
        plain = load_recipe(name, scale="smoke", registries=registries)
        resolved = load_recipe(name, scale="smoke", overrides=whole_word_overrides(plain, extra), registries=registries)
        out = work / label.replace(" ", "_").replace("(", "").replace(")", "")
        prepare_tokenizer(resolved, registries, Location(str(out)))  # not timed
        started = time.perf_counter()
        prepare(resolved, registries, PrepareOptions(output=str(out), workers=1, progress=False))
        wall = time.perf_counter() - started
        index = json.loads((out / "store.json").read_text())
        # the steady state of one worker: the same work in this process, without its start-up
        from encoder_recipes.data import prepare as prep
        from encoder_recipes.data.sources import iter_documents

        texts = [t for source in resolved.recipe.data.sources
                 for t in iter_documents(source, "train", validation_fraction=resolved.recipe.data.validation_fraction)]
        texts = texts[:limit] if limit else texts
        segmenter = index["words"]["segmenter"]
        prep._init_worker(str(out / "tokenizer"), resolved.recipe.metadata.language,
                          "" if segmenter == "default" else segmenter, str(work / "scratch"), index["id_dtype"])
        (work / "scratch" / "x").mkdir(parents=True, exist_ok=True)
        prep._write_part(("x", 1, texts[:5], {}))  # imports and the segmenter's dictionary load, not timed
        chars = sum(len(t) for t in texts)
        started = time.perf_counter()
        part = prep._write_part(("x", 0, texts, {}))
        seconds = time.perf_counter() - started
        docs, tokens = part["documents"], part["tokens"]  # the timed pass's (all of the store's unless limited)
        figures.append({"what": f"prepare {label}, 1 core", "load": round(os.getloadavg()[0], 2), "documents": docs,
                        "tokens": tokens, "chars": chars,
                        "seconds": seconds, "tokens_per_s": tokens / seconds, "chars_per_s": chars / seconds,
                        "wall_with_worker_start_s": wall, "store": str(out)})
        print(f"prepare {label}: {docs:,} docs, {tokens:,} tokens, {chars:,} chars: {seconds:.2f} s = "
              f"{tokens / seconds:,.0f} tokens/s, {chars / seconds:,.0f} chars/s per core "
              f"(the whole command with a worker's start-up: {wall:.1f} s)", flush=True)
    return figures


def bench_read(store: Path, packing: str, mask_group: int = 1, steps: int = 30, batch: int = 64,
               seq_len: int = 1024) -> dict:
    from transformers import AutoTokenizer

    from encoder_recipes.components.masking import WholeWordMasking
    from encoder_recipes.data.store_batches import RankSteps, StoreSpec

    tok = AutoTokenizer.from_pretrained(store / "tokenizer")
    spec = StoreSpec(store=str(store), weights={}, mixture_seed=0, packing=packing,
                     masking=WholeWordMasking(WholeWordMasking.Params(rate=0.3)), seed=0, cls_id=tok.cls_token_id,
                     sep_id=tok.sep_token_id, pad_id=tok.pad_token_id, mask_id=tok.mask_token_id,
                     vocab_size=len(tok), special_ids=list(tok.all_special_ids), passes=10_000,
                     mask_group=mask_group)
    batches = iter(RankSteps(spec, [(s, batch, seq_len, 0.3) for s in range(steps + 1)]))
    next(batches)  # opening the store and the first plan are not the steady state
    started, tokens = time.perf_counter(), 0
    for b in batches:
        tokens += b.tokens
    seconds = time.perf_counter() - started
    figure = {"what": f"read {packing} {seq_len}, whole-word, mask groups of {mask_group}, 1 process",
              "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
              "load": round(os.getloadavg()[0], 2)}
    print(f"read {packing}, mask groups of {mask_group}: {tokens / seconds:,.0f} tokens/s per core", flush=True)
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="keep the stores here (default: a temporary folder)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--steps", type=int, default=30, help="steps of 64 × 1,024 tokens per reading figure")
    parser.add_argument("--read-only", action="store_true", help="only the reading figures, from the zh store in --work")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        import torch

        torch.set_num_threads(1)  # a data worker's setting: one core
        figures = [] if args.read_only else bench_prepare(work)
        zh = work / "zh_rjieba"
        figures += [bench_read(zh, packing, group, steps=args.steps) for packing, group in
                    (("none", 1), ("none", 16), ("naive", 1), ("naive", 16), ("best_fit", 1), ("best_fit", 16))]
        load = os.getloadavg()[0]
        print(f"load average (1 min) at the end: {load:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"figures": figures, "load": load}, indent=1))
    return 0


# --- python -m bench, section "store" --------------------------------------------------------

MODULE = "bench.store"
BENCH = "7 prepared store"


@dataclass(frozen=True)
class Sizes:
    prepares: tuple[str, ...] = tuple(label for _, label, _ in PREPARES)
    reads: tuple[tuple[str, int], ...] = (("none", 1), ("naive", 1), ("best_fit", 1), ("best_fit", 16))
    read_steps: int = 30
    read_batch: int = 64
    rank_counts: tuple[int, ...] = (1, 2, 4)
    rank_steps: int = 8
    rank_batch: int = 64
    prepare_limit: int | None = None  # documents in the timed steady-state pass (None: all)


SIZES = {
    "full": Sizes(),
    "quick": Sizes(reads=(("none", 1), ("best_fit", 1), ("best_fit", 16)), read_steps=10, rank_steps=4),
    "smoke": Sizes(prepares=("zh (rjieba)",), reads=(("best_fit", 1),), read_steps=2, read_batch=16,
                   rank_counts=(1, 2), rank_steps=1, rank_batch=16, prepare_limit=200),
}


def ja_llmjp_need() -> dict[str, float]:
    """Token positions/s a rank must deliver for ja-llmjp stage 1 on 16 H100s at 40% MFU (``plan``'s arithmetic)."""
    from encoder_recipes.plan import build_plan
    from encoder_recipes.plan_hardware import hardware_plan
    from encoder_recipes.registry import default_registries
    from encoder_recipes.validation import load_recipe

    registries = default_registries()
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    stage = hardware_plan(recipe, build_plan(recipe, registries), registries, gpus=16, gpu="h100", mfu=[0.4, 0.4])[0]
    return {"store": stage.store_need, "on_the_fly": stage.fly_need}


def run(mode: str, work: Path) -> list[Figure]:
    from bench.common import run_child

    sizes = SIZES[mode]
    r = run_child(MODULE, {"kind": "store", "work": str(work / "store"), "sizes": asdict(sizes)}, timeout=1800)
    need = ja_llmjp_need()
    figures = []
    for f in r["prepare"]:
        figures.append(Figure(BENCH, f"{f['what']} (tokenise, segment, write)", f["tokens_per_s"], "tok/s",
                              f"{f['chars_per_s'] / 1e6:.2f}M chars/s; whole command {f['wall_with_worker_start_s']:.1f} s",
                              f["load"], f))
    for f in r["read"]:
        verdict = "above" if f["tokens_per_s"] >= need["store"] else "below"
        figures.append(Figure(BENCH, f["what"], f["tokens_per_s"], "tok/s",
                              f"{verdict} the {need['store'] / 1e3:,.0f}k a rank reads for ja-llmjp on 16 H100s "
                              f"(on the fly: {need['on_the_fly'] / 1e6:.2f}M)", f["load"], f))
    base = r["ranks"][0]["max_rank_seconds"]
    same = len({x["digest"] for x in r["ranks"]}) == 1
    for x in r["ranks"]:
        figures.append(Figure(BENCH, f"{x['world']} gloo process{'es' if x['world'] > 1 else ''}: slowest rank's data "
                              "work (CPU s)", x["max_rank_seconds"], "s",
                              f"1 process's work / this = {base / x['max_rank_seconds']:.2f}× (1/N: {x['world']}×); global "
                              f"batch {'identical' if same else 'DIFFERS'} ({x['digest'][:12]})", x["load"], x))
    if not same:
        raise BenchError("the global batch changed with the number of processes")
    return figures


def _store(cfg: dict) -> dict:
    from bench.store_ranks import measure

    import torch

    sizes = Sizes(**{k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                     for k, v in cfg["sizes"].items()})
    work = Path(cfg["work"])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(1)  # a data worker's setting: one core
    prepared = bench_prepare(work, sizes.prepares, sizes.prepare_limit)
    zh = work / "zh_rjieba"
    read = [bench_read(zh, packing, group, steps=sizes.read_steps, batch=sizes.read_batch)
            for packing, group in sizes.reads]
    ranks = measure(zh, steps=sizes.rank_steps, batch=sizes.rank_batch, seq_len=1024, packing="best_fit",
                    mask_group=1, counts=sizes.rank_counts)
    return {"prepare": prepared, "read": read, "ranks": ranks}


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--child"]:
        from bench.common import child_main

        child_main({"store": _store})
    else:
        raise SystemExit(main())
