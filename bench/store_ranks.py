"""Each rank's data work against the number of processes: 1, 2 and 4 gloo processes reading one prepared store.

    .venv/bin/python -m bench.store_ranks --store DIR [--steps 8] [--batch 64] [--json out.json]

Every process joins a gloo group, makes its rows of each global batch (read
the shards, pack, whole-word mask, pad) with one thread, and times that work
in CPU seconds of its own thread (``time.thread_time``; the first step, which
opens the store, is made but not timed), so a busy
neighbour on the same cores lengthens the wall clock but not the figure.
The rows are then gathered on rank 0, which hashes the assembled global
batch (ids, attention mask and labels of every row, in global order). The
work per rank should fall as 1/N; the hash must be the same for every N:
the processes split the same global batch, they do not each make a
different one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

COUNTS = (1, 2, 4)


def spec_for(store: Path, packing: str, rank: int, world: int, mask_group: int):
    from transformers import AutoTokenizer

    from encoder_recipes.components.masking import WholeWordMasking
    from encoder_recipes.data.store_batches import StoreSpec

    tok = AutoTokenizer.from_pretrained(store / "tokenizer")
    return StoreSpec(store=str(store), weights={}, mixture_seed=0, packing=packing,
                     masking=WholeWordMasking(WholeWordMasking.Params(rate=0.3)), seed=0, cls_id=tok.cls_token_id,
                     sep_id=tok.sep_token_id, pad_id=tok.pad_token_id, mask_id=tok.mask_token_id,
                     vocab_size=len(tok), special_ids=list(tok.all_special_ids), rank=rank, world=world,
                     passes=10_000, mask_group=mask_group)


def _rank(rank: int, world: int, init: str, store: str, packing: str, steps: int, batch: int, seq_len: int,
          mask_group: int, result: str) -> None:
    import torch
    import torch.distributed as dist

    from encoder_recipes.data.store_batches import RankSteps

    torch.set_num_threads(1)  # a data worker's setting: one core
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    spec = spec_for(Path(store), packing, rank, world, mask_group)
    made = iter(RankSteps(spec, [(s, batch, seq_len, 0.3) for s in range(steps + 1)]))
    batches = [next(made)]  # step 0 opens the store and loads Arrow: a worker's start-up, not its rate
    seconds, tokens = 0.0, 0
    while True:
        started = time.thread_time()
        b = next(made, None)
        seconds += time.thread_time() - started
        if b is None:
            break
        tokens += b.tokens
        batches.append(b)
    rows = []
    for b in batches:
        for i in range(b.input_ids.shape[0]):
            keep = b.attention_mask[i].bool()
            rows.append((b.step, b.rows[0] + i, b.input_ids[i][keep].tolist(), b.labels[i][keep].tolist()))
    gathered: list = [None] * world
    dist.all_gather_object(gathered, {"rows": rows, "seconds": seconds, "tokens": tokens})
    if rank == 0:
        every = sorted((r for part in gathered for r in part["rows"]), key=lambda r: (r[0], r[1]))
        digest = hashlib.sha256(json.dumps(every).encode()).hexdigest()
        Path(result).write_text(json.dumps({
            "world": world, "digest": digest, "rows": len(every),
            "per_rank": [{"seconds": p["seconds"], "tokens": p["tokens"]} for p in gathered]}))
    dist.destroy_process_group()


def measure(store: Path, *, steps: int, batch: int, seq_len: int, packing: str, mask_group: int,
            counts: tuple[int, ...] = COUNTS) -> list[dict]:
    import torch.multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in counts:
            result = Path(tmp) / f"world{world}.json"
            load = os.getloadavg()[0]
            args = (world, f"file://{tmp}/rendezvous{world}", str(store), packing, steps, batch, seq_len,
                    mask_group, str(result))
            if world == 1:  # no process to start: this one is rank 0 of a group of one
                _rank(0, *args)
            else:
                mp.spawn(_rank, args=args, nprocs=world, join=True)
            r = json.loads(result.read_text())
            r["load"] = round(load, 2)
            r["max_rank_seconds"] = max(p["seconds"] for p in r["per_rank"])
            r["tokens"] = sum(p["tokens"] for p in r["per_rank"])
            out.append(r)
            print(f"{world} process{'es' if world > 1 else ''}: per-rank data work "
                  + ", ".join(f"{p['seconds']:.2f} s" for p in r["per_rank"])
                  + f" (CPU s of each rank's thread), {r['rows']} rows, global batch sha256 {r['digest'][:12]}, "
                    f"load {load:.2f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a prepared store with word starts "
                        "(python -m bench.store --work DIR makes DIR/zh_rjieba)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64, help="global batch, sequences (divisible by 4 × the group)")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--packing", default="best_fit", choices=["none", "naive", "best_fit"])
    parser.add_argument("--mask-group", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = measure(args.store, steps=args.steps, batch=args.batch, seq_len=args.seq_len, packing=args.packing,
                      mask_group=args.mask_group)
    same = len({f["digest"] for f in figures}) == 1
    print(f"global batch identical for every process count: {same}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
