"""Benchmark 5: the GPU figures, one script that fits in 8 minutes on one H100/H200 and writes them to a file.

    python -m bench.gpu --out gpu.json            # on a CUDA machine (pip install 'encoder-recipes[gpu]' for FA2)
    python -m bench.gpu --out gpu.json --dry-run  # the same code on the CPU at a tiny shape: checks it runs

``python -m bench --only gpu`` runs the same parts inside the bench table.
Random token ids stand in for text. Parts, in order, each written to the
file as soon as it is measured (a run stopped by a time limit keeps what it
measured); a part that would not fit in what is left of ``--budget-s`` is
skipped and says so:

1. **training**, the ModernBERT-base shape (the recipe schema's model
   defaults: 22 layers × 768, GeGLU 1152, 50,368-token vocabulary), bf16
   autocast, fused AdamW, sparse prediction, 30% masking, 65,536 tokens a
   step, at 1,024 and 8,192 tokens per row, documents packed and kept apart
   (``document_isolation``, documents of 64–1,024 tokens): FlashAttention 2
   gets them as ``cu_seqlens`` (transformers' varlen path), SDPA as a
   block-diagonal mask. Tokens/s and MFU: model FLOPs per token
   (:func:`encoder_recipes.plan.stage_flops`) against the card's dense bf16
   peak (:mod:`encoder_recipes.hardware`; ``--peak-tflops`` for another card);
2. **local/global against all-global** at 8,192 with FlashAttention 2, where
   the sliding window skips work (unlike CPU SDPA, ``bench/RESULTS.md`` §4);
3. **inference**, the Chinese recipe's shape (28 × 1,024, RMSNorm, 32k
   vocabulary, read from ``zh-modernbert-wwm``), bf16 weights, the encoder
   alone on 8,192-token rows, against the Chinese ModernBERT paper's
   180,100 tokens/s;
4. **FSDP against DDP memory.** One GPU is a world of one: FSDP2
   (``fully_shard``) then keeps every parameter whole, like DDP, so the peaks
   of one training step under each are expected to match and are measured to
   show it. What sharding saves at N GPUs is the static part (weights,
   gradients, AdamW's two moments: measured here), divided by N; activations
   are not sharded. The file gives both measured parts and that arithmetic
   for 8 and 16 GPUs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import Figure

BENCH = "5 GPU"
PAPER_INFERENCE = 180_100  # tokens/s at 8k, bf16: Chinese ModernBERT (arXiv 2510.12285)
BASE_VOCAB = 50368
SPECIALS = {"pad": 3, "cls": 0, "sep": 1}


@dataclass(frozen=True)
class Sizes:
    lengths: tuple[int, ...] = (1024, 8192)
    tokens_per_step: int = 65536
    steps: int = 10
    warmup: int = 3
    inference_batch: int = 8
    doc_range: tuple[int, int] = (64, 1024)  # packed documents' lengths, tokens
    memory_seq_len: int = 1024
    memory_batch: int = 32


FULL = Sizes()
QUICK = Sizes(steps=5, warmup=2)
DRY = Sizes(lengths=(64, 128), tokens_per_step=256, steps=1, warmup=1, inference_batch=2, doc_range=(16, 48),
            memory_seq_len=64, memory_batch=2)

#: the tiny shape of a dry run on the CPU
TINY = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 2,
        "local_attention": 32, "norm": "rmsnorm"}


# --- what runs: the parts, with a budget ------------------------------------------------------------


class Report:
    """The figures so far, written to ``out`` after each one."""

    def __init__(self, out: Path | None, about: dict[str, Any]) -> None:
        self.out, self.about, self.figures = out, about, []

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        print(f"{figure.what}: {figure.value if figure.value is None else f'{figure.value:,.4g}'} {figure.unit} "
              f"{figure.compare}", flush=True)
        if self.out is not None:
            self.out.write_text(json.dumps({"machine": self.about, "figures": [f.to_dict() for f in self.figures]},
                                           indent=1, ensure_ascii=False, default=str))


def parts(sizes: Sizes, *, device: str, peak_tflops: float | None, budget_s: float, report: Report,
          dry: bool = False) -> None:
    """Run every part in turn while the budget lasts."""
    from encoder_recipes.schema import ModelConfig

    deadline = time.monotonic() + budget_s
    base = ModelConfig(**TINY) if dry else ModelConfig()
    vocab = 512 if dry else BASE_VOCAB
    name = device_name(device)
    backends = attention_backends(device)

    def room(seconds: float, what: str) -> bool:
        if time.monotonic() + seconds <= deadline:
            return True
        report.add(Figure(BENCH, what, None, "", f"skipped: under {seconds:.0f} s of the budget left"))
        return False

    # 1. training, FA2 varlen against SDPA, at each length
    for attn in backends:
        for length in sizes.lengths:
            what = f"{name}: base-shape bf16 training, {attn}, {length} tokens, documents kept apart"
            if room(45, what):
                r = train_throughput(base, vocab, length, sizes.tokens_per_step, attn=attn, device=device,
                                     steps=sizes.steps, warmup=sizes.warmup, peak_tflops=peak_tflops,
                                     doc_range=sizes.doc_range)
                report.add(Figure(BENCH, what, r.get("tokens_per_s"), "tok/s", _mfu_text(r), None, r))
    # 2. the local window where the kernel skips it
    if "flash_attention_2" in backends:
        what = f"{name}: base-shape bf16 training, all layers global, {sizes.lengths[-1]} tokens"
        if room(45, what):
            every = base.model_copy(update={"global_attn_every_n_layers": 1})
            r = train_throughput(every, vocab, sizes.lengths[-1], sizes.tokens_per_step, attn="flash_attention_2",
                                 device=device, steps=sizes.steps, warmup=sizes.warmup, peak_tflops=peak_tflops,
                                 doc_range=sizes.doc_range)
            report.add(Figure(BENCH, what, r.get("tokens_per_s"), "tok/s", _mfu_text(r), None, r))
    # 3. zh inference at 8k
    attn = backends[0]
    what = f"{name}: zh-modernbert-wwm shape bf16 inference, {attn}, {sizes.lengths[-1]} tokens"
    if room(60, what):
        zh = ModelConfig(**TINY) if dry else chinese_model()
        r = inference_throughput(zh, 512 if dry else 32000, sizes.lengths[-1], sizes.inference_batch, attn=attn,
                                 device=device, steps=sizes.steps, warmup=sizes.warmup)
        compare = (f"{r['tokens_per_s'] / PAPER_INFERENCE:.2f}× the paper's {PAPER_INFERENCE:,}"
                   if "tokens_per_s" in r else r.get("error", ""))
        report.add(Figure(BENCH, what, r.get("tokens_per_s"), "tok/s", compare, None, r))
    # 4. FSDP against DDP memory at world 1
    what = f"{name}: one training step's memory, DDP and FSDP2 at world 1"
    if room(90, what):
        r = sharding_memory(base, vocab, sizes.memory_seq_len, sizes.memory_batch, attn=backends[-1], device=device)
        compare = (f"FSDP2 {r['fsdp']['peak_gb']:.2f} GB; static {r['static_gb']:.2f} GB → at 8 GPUs "
                   f"{r['static_sharded_gb'][8]:.2f}, at 16 {r['static_sharded_gb'][16]:.2f}")
        report.add(Figure(BENCH, what, r["ddp"]["peak_gb"], "GB (DDP peak)", compare, None, r))


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()})"


def attention_backends(device: str) -> list[str]:
    """FlashAttention 2 first when it imports (CUDA only), then SDPA."""
    from transformers.utils import is_flash_attn_2_available

    return (["flash_attention_2"] if device == "cuda" and is_flash_attn_2_available() else []) + ["sdpa"]


def peak_of(device: str, given: float | None) -> float | None:
    """The dense bf16 peak, TFLOP/s: given, or the card's in :mod:`encoder_recipes.hardware`."""
    if given or device != "cuda":
        return given
    from encoder_recipes.hardware import gpu_of_device

    card = gpu_of_device(device_name(device))
    return card.bf16_dense_tflops if card else None


def chinese_model() -> Any:
    from encoder_recipes.registry import default_registries
    from encoder_recipes.validation import load_recipe

    return load_recipe("zh-modernbert-wwm", registries=default_registries()).recipe.model


def _mfu_text(r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    return f"MFU {100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "MFU: unknown peak (--peak-tflops)"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def packed_documents(rows: int, width: int, doc_range: tuple[int, int], seed: int = 0) -> list[list[int]]:
    """Document lengths filling each row exactly (the last document of a row is cut to fit)."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        left, row = width, []
        while left:
            n = min(left, rng.randint(*doc_range))
            row.append(n)
            left -= n
        out.append(row)
    return out


# --- the measurements ---------------------------------------------------------------------------------


def train_throughput(model_config: Any, vocab: int, seq_len: int, tokens_per_step: int, *, attn: str, device: str,
                     steps: int, warmup: int, peak_tflops: float | None,
                     doc_range: tuple[int, int] | None = None) -> dict[str, Any]:
    """Training tokens/s (bf16 autocast on CUDA, fp32 on the CPU) and MFU of one model shape.

    With ``doc_range`` the rows hold packed documents kept apart
    (:func:`encoder_recipes.modeling.isolation.isolated_inputs`: cu_seqlens for
    FlashAttention 2, a block-diagonal mask for SDPA); without, each row is one sequence.
    """
    import torch

    from encoder_recipes.modeling.build import build_model
    from encoder_recipes.modeling.isolation import isolated_inputs
    from encoder_recipes.plan import stage_flops

    batch = max(1, tokens_per_step // seq_len)
    try:
        model = build_model(model_config, vocab_size=vocab, special_ids=SPECIALS, attn_implementation=attn,
                            seed=0).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(261 if vocab > 261 else 4, vocab, (batch, seq_len), generator=generator)
        labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.3, ids, torch.full_like(ids, -100))
        ids, labels, mask = ids.to(device), labels.to(device), torch.ones_like(ids).to(device)
        if doc_range:
            inputs = isolated_inputs(model, input_ids=ids, attention_mask=mask, labels=labels,
                                     doc_lengths=packed_documents(batch, seq_len, doc_range))
        else:
            inputs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                start = time.perf_counter()
            with autocast:
                loss = model(**inputs).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        _sync(device)
        seconds = (time.perf_counter() - start) / steps
    except torch.OutOfMemoryError:
        return {"error": f"out of memory at batch {batch} × {seq_len}", "batch": batch, "seq_len": seq_len}
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()
    rate = batch * seq_len / seconds
    flops = stage_flops(model_config, vocab, 1.0, seq_len, 0.3)
    return {"tokens_per_s": rate, "step_s": seconds, "batch": batch, "seq_len": seq_len, "attn": attn,
            "documents_kept_apart": bool(doc_range), "flops_per_token": flops,
            "mfu": flops * rate / (peak_tflops * 1e12) if peak_tflops else None}


def inference_throughput(model_config: Any, vocab: int, seq_len: int, batch: int, *, attn: str, device: str,
                         steps: int, warmup: int) -> dict[str, Any]:
    """Forward-only tokens/s of the encoder (no MLM head), bf16 weights on CUDA, fp32 on the CPU.

    The encoder alone, as an embedding or classification model runs it; the
    head's 32k-wide logits at every position would dominate memory at 8k.
    """
    import torch

    from encoder_recipes.modeling.build import build_model

    try:
        model = build_model(model_config, vocab_size=vocab, special_ids=SPECIALS, attn_implementation=attn, seed=0)
        model = model.to(device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32).eval()
        encoder = model.model  # ModernBertModel under the masked-LM head
        ids = torch.randint(4, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            for i in range(warmup + steps):
                if i == warmup:
                    _sync(device)
                    start = time.perf_counter()
                encoder(input_ids=ids, attention_mask=mask)
            _sync(device)
        seconds = (time.perf_counter() - start) / steps
    except torch.OutOfMemoryError:
        return {"error": f"out of memory at batch {batch} × {seq_len}", "batch": batch, "seq_len": seq_len}
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()
    return {"tokens_per_s": batch * seq_len / seconds, "forward_s": seconds, "batch": batch, "seq_len": seq_len,
            "attn": attn}


def sharding_memory(model_config: Any, vocab: int, seq_len: int, batch: int, *, attn: str,
                    device: str) -> dict[str, Any]:
    """Peak memory of one training step under DDP and under FSDP2, in a process group of one.

    On the CPU there is no allocator to ask, so the figures there are the
    bytes of parameters, gradients and optimizer state each rank holds.
    """
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    from encoder_recipes.modeling.build import build_model

    own_group = not dist.is_initialized()
    if own_group:
        import tempfile

        store = tempfile.NamedTemporaryFile(prefix="bench-gpu-pg-", delete=False).name
        dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method=f"file://{store}", rank=0,
                                world_size=1)
    out: dict[str, Any] = {"world": dist.get_world_size(), "seq_len": seq_len, "batch": batch, "attn": attn}
    try:
        for strategy in ("ddp", "fsdp"):
            gc.collect()  # the previous strategy's model and optimizer state must be gone before the peak is reset
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            model = build_model(model_config, vocab_size=vocab, special_ids=SPECIALS, attn_implementation=attn,
                                seed=0).to(device)
            if strategy == "ddp":
                wrapped = DistributedDataParallel(model, device_ids=[0] if device == "cuda" else None)
            else:
                for layer in model.model.layers:
                    fully_shard(layer)
                wrapped = fully_shard(model)
            optimizer = torch.optim.AdamW(wrapped.parameters(), lr=1e-4, fused=device == "cuda")
            generator = torch.Generator().manual_seed(0)
            ids = torch.randint(4, vocab, (batch, seq_len), generator=generator).to(device)
            labels = torch.where(torch.rand(ids.shape, generator=generator).to(device) < 0.3, ids, -100)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = wrapped(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
            loss.backward()
            optimizer.step()
            _sync(device)
            local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in wrapped.parameters())
            figures = {"parameters_local": local, "static_bytes_local": 16 * local}
            if device == "cuda":
                figures["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
            else:
                figures["peak_gb"] = 16 * local / 1e9  # weights, gradients, two AdamW moments, fp32
            out[strategy] = figures
            del wrapped, model, optimizer, loss
    finally:
        if own_group:
            dist.destroy_process_group()
    static = out["ddp"]["static_bytes_local"] / 1e9
    out["static_gb"] = static
    out["static_sharded_gb"] = {n: static / n for n in (8, 16)}
    return out


# --- python -m bench (section "gpu") and python -m bench.gpu --------------------------------------------


def run(mode: str, peak_tflops: float | None = None) -> list[Figure]:
    """The section of ``python -m bench``: skipped without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return [Figure(BENCH, "bf16 training and inference on a GPU", None, "",
                       "skipped: no CUDA device on this machine")]
    report = Report(None, {})
    parts(FULL if mode == "full" else QUICK, device="cuda", peak_tflops=peak_of("cuda", peak_tflops),
          budget_s=480, report=report)
    return report.figures


def dry_run() -> list[Figure]:
    """Every part on the CPU with a tiny shape: proves it runs, measures nothing of interest."""
    report = Report(None, {})
    parts(DRY, device="cpu", peak_tflops=None, budget_s=600, report=report, dry=True)
    return report.figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="write the figures here (JSON), after each one")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, a tiny shape: the code runs, no figures")
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--budget-s", type=float, default=450,
                        help="stop starting parts after this many seconds (default 450: 8 minutes with start-up)")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak, when its name is not known")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if args.dry_run:
        device, sizes = "cpu", DRY
    elif torch.cuda.is_available():
        device, sizes = "cuda", QUICK if args.quick else FULL
    else:
        print("no CUDA device: run with --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    about = {"device": device_name(device), "dry_run": args.dry_run, "torch": torch.__version__,
             "cuda": torch.version.cuda, "sizes": asdict(sizes), "peak_tflops": peak_of(device, args.peak_tflops),
             "budget_s": args.budget_s, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        import flash_attn

        about["flash_attn"] = flash_attn.__version__
    except ImportError:
        about["flash_attn"] = None
    report = Report(args.out, about)
    report.add(Figure(BENCH, "setup", None, "", f"{about['device']}, peak {about['peak_tflops']} TFLOP/s, "
                      f"flash_attn {about['flash_attn']}"))
    started = time.monotonic()
    parts(sizes, device=device, peak_tflops=about["peak_tflops"], budget_s=args.budget_s, report=report,
          dry=args.dry_run)
    print(f"{time.monotonic() - started:.0f} s; figures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
