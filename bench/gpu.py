"""Benchmark 5: GPU figures — bf16 training throughput and MFU, long-context inference.

Runs only where CUDA is available (``python -m bench --only gpu`` on an
H100/H200 node); elsewhere it reports that it was skipped. On a GPU:

* **training**, the ModernBERT-base shape (the recipe schema's model
  defaults: 22 layers × 768, GeGLU 1152, 50,368-token vocabulary), bf16
  autocast, fused AdamW, sparse prediction, 30% masking, at 1,024 and 8,192
  tokens per sequence with the same tokens per step — once with
  FlashAttention 2 (when ``flash_attn`` imports; transformers then runs
  ModernBERT unpadded) and once with PyTorch SDPA. Tokens/s and MFU: model
  FLOPs per token from :func:`encoder_recipes.plan.stage_flops` against the
  GPU's dense bf16 peak (989 TFLOP/s for H100/H200 SXM; ``--peak-tflops``
  for another card);
* **local/global vs all-global** at 8,192 tokens with FlashAttention 2, where
  the sliding window really skips work (``window_size``), unlike CPU SDPA;
* **inference**, the Chinese recipe's shape (28 layers × 1,024, RMSNorm,
  32k vocabulary, read from ``zh-modernbert-wwm``), bf16 weights, the encoder
  alone on 8,192-token sequences: tokens/s against the Chinese ModernBERT
  paper's 180,100 tokens/s.

Random token ids stand in for text. ``python -m bench --smoke`` runs the same
code on the CPU with a tiny shape (``dry_run``), so the path cannot rot
where no GPU is at hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.common import Figure

BENCH = "5 GPU"
#: dense bf16 tensor-core peak, TFLOP/s, by a substring of the device name
PEAKS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}
PAPER_INFERENCE = 180_100  # tokens/s at 8k, bf16: Chinese ModernBERT (arXiv 2510.12285)
BASE_VOCAB = 50368


@dataclass(frozen=True)
class Sizes:
    lengths: tuple[int, ...] = (1024, 8192)
    tokens_per_step: int = 65536
    steps: int = 10
    warmup: int = 3
    inference_batch: int = 8


def run(mode: str, peak_tflops: float | None = None) -> list[Figure]:
    import torch

    if not torch.cuda.is_available():
        return [Figure(BENCH, "bf16 training and inference on a GPU", None, "",
                       "skipped: no CUDA device on this machine")]
    sizes = Sizes() if mode == "full" else Sizes(steps=5, warmup=2)
    name = torch.cuda.get_device_name(0)
    peak = peak_tflops or next((v for k, v in PEAKS.items() if k in name), None)
    figures = []
    from encoder_recipes.schema import ModelConfig

    base = ModelConfig()
    for attn in _attention_backends():
        for length in sizes.lengths:
            r = train_throughput(base, BASE_VOCAB, length, sizes.tokens_per_step, attn=attn, device="cuda",
                                 steps=sizes.steps, warmup=sizes.warmup, peak_tflops=peak)
            figures.append(Figure(BENCH, f"{name}: base-shape bf16 training, {attn}, {length} tokens",
                                  r.get("tokens_per_s"), "tok/s", _mfu_text(r), None, r))
    if "flash_attention_2" in _attention_backends():
        every_layer = base.model_copy(update={"global_attn_every_n_layers": 1})
        r = train_throughput(every_layer, BASE_VOCAB, 8192, sizes.tokens_per_step, attn="flash_attention_2",
                             device="cuda", steps=sizes.steps, warmup=sizes.warmup, peak_tflops=peak)
        figures.append(Figure(BENCH, f"{name}: base-shape bf16 training, all layers global, 8192 tokens",
                              r.get("tokens_per_s"), "tok/s", _mfu_text(r), None, r))
    zh = _chinese_model()
    attn = "flash_attention_2" if "flash_attention_2" in _attention_backends() else "sdpa"
    r = inference_throughput(zh, 32000, 8192, sizes.inference_batch, attn=attn, device="cuda", steps=sizes.steps,
                             warmup=sizes.warmup)
    compare = (f"{r['tokens_per_s'] / PAPER_INFERENCE:.2f}× the paper's {PAPER_INFERENCE:,}"
               if "tokens_per_s" in r else r.get("error", ""))
    figures.append(Figure(BENCH, f"{name}: zh-modernbert-wwm shape bf16 inference, {attn}, 8192 tokens",
                          r.get("tokens_per_s"), "tok/s", compare, None, r))
    return figures


def dry_run() -> list[Figure]:
    """The GPU code path on the CPU with a tiny shape: proves it runs, measures nothing of interest."""
    from encoder_recipes.schema import ModelConfig

    tiny = ModelConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=2,
                       local_attention=32, norm="rmsnorm")
    r = train_throughput(tiny, 512, 128, 512, attn="sdpa", device="cpu", steps=1, warmup=1, peak_tflops=None)
    i = inference_throughput(tiny, 512, 128, 2, attn="sdpa", device="cpu", steps=1, warmup=1)
    return [Figure(BENCH, "GPU code path, dry run on the CPU (tiny shape)", r["tokens_per_s"], "tok/s",
                   f"inference {i['tokens_per_s']:,.0f} tok/s", None, {"train": r, "inference": i})]


def _attention_backends() -> list[str]:
    from transformers.utils import is_flash_attn_2_available

    return (["flash_attention_2"] if is_flash_attn_2_available() else []) + ["sdpa"]


def _chinese_model() -> Any:
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


def train_throughput(model_config: Any, vocab: int, seq_len: int, tokens_per_step: int, *, attn: str, device: str,
                     steps: int, warmup: int, peak_tflops: float | None) -> dict[str, Any]:
    """Training tokens/s (bf16 autocast on CUDA, fp32 on the CPU) and MFU of one model shape."""
    import torch

    from encoder_recipes.modeling.build import build_model
    from encoder_recipes.plan import stage_flops

    batch = max(1, tokens_per_step // seq_len)
    try:
        model = build_model(model_config, vocab_size=vocab, special_ids={"pad": 3, "cls": 0, "sep": 1},
                            attn_implementation=attn, seed=0).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(261, vocab, (batch, seq_len), generator=generator)
        labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.3, ids, torch.full_like(ids, -100))
        ids, labels, mask = ids.to(device), labels.to(device), torch.ones_like(ids).to(device)
        autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                start = time.perf_counter()
            with autocast:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
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
            "flops_per_token": flops, "mfu": flops * rate / (peak_tflops * 1e12) if peak_tflops else None}


def inference_throughput(model_config: Any, vocab: int, seq_len: int, batch: int, *, attn: str, device: str,
                         steps: int, warmup: int) -> dict[str, Any]:
    """Forward-only tokens/s of the encoder (no MLM head), bf16 weights on CUDA, fp32 on the CPU.

    The encoder alone, as an embedding or classification model runs it; the
    head's 32k-wide logits at every position would dominate memory at 8k.
    """
    import torch

    from encoder_recipes.modeling.build import build_model

    try:
        model = build_model(model_config, vocab_size=vocab, special_ids={"pad": 3, "cls": 0, "sep": 1},
                            attn_implementation=attn, seed=0)
        model = model.to(device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32).eval()
        encoder = model.model  # ModernBertModel under the masked-LM head
        ids = torch.randint(261, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
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
