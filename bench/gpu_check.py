"""GPU check of a first multi-GPU run: NCCL through a stage boundary with evaluation, and memory against the estimate.

One prepared script for one GPU, at most about 8 minutes
(``python -m bench.gpu_check --json gpu_check.json``):

1. **NCCL run.** ``torchrun --nproc_per_node 1`` joins an NCCL process group
   (the trainer joins one under torchrun even for one process) and runs
   ``ja-llmjp`` at smoke scale — sample corpus, trained tokenizer, tiny model —
   with its stages cut to a few steps, through the stage boundary and the
   stage-end evaluators (bf16 autocast, the training attention backend),
   with ``micro_batch_size: auto``. It passes when the run exits 0 and
   ``metrics.jsonl`` holds both stages and an evaluation at each stage end.
2. **Memory.** The full-size ja-llmjp model (187M parameters, 99,574-token
   vocabulary), bf16 autocast, SDPA, fused AdamW: for each stage, the
   micro-batch ``auto`` picks on this GPU for the stage's per-GPU share on 16
   GPUs, one training step on random tokens with 30% of positions predicted,
   through the chunked head loss as the trainer runs it;
   ``torch.cuda.max_memory_allocated`` against
   :func:`encoder_recipes.training.memory.estimated_peak`.

Record the printed lines in ``bench/RESULTS.md``. ``--dry-run`` runs both
parts on the CPU (gloo, a tiny shape) so the script cannot rot where no GPU
is at hand; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMOKE_STEPS = (12, 6)  # steps of the two stages at smoke scale: enough to cross the boundary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nccl_run(work: Path, device: str, timeout: float) -> dict:
    """Part 1: ja-llmjp at smoke scale under torchrun with one process, through the stage boundary."""
    out = work / "ja-llmjp-smoke"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=1", "--nnodes=1",
           f"--master-port={free_port()}", "-m", "encoder_recipes", "run", "ja-llmjp", "--scale", "smoke",
           "--output", str(out), "--overwrite", "--device", device,
           f"stages.0.steps={SMOKE_STEPS[0]}", f"stages.1.steps={SMOKE_STEPS[1]}", "checkpoint_every=6"]
    started = time.monotonic()
    env = {**os.environ, "TQDM_DISABLE": "1", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    result = {"command": " ".join(cmd[1:]), "exit": proc.returncode, "seconds": round(time.monotonic() - started, 1),
              "output_tail": (proc.stdout + proc.stderr)[-4000:]}
    if proc.returncode == 0:
        from encoder_recipes.training.metrics import read_metrics

        records = read_metrics(out)
        result["stages"] = sorted({r["stage"] for r in records if "loss" in r and r.get("event") is None})
        result["evals"] = [r["step"] for r in records if r.get("event") == "eval"]
        result["micro_batch_lines"] = [line for line in proc.stdout.splitlines() if "micro-batch" in line]
        result["passed"] = (len(result["stages"]) == 2
                            and result["evals"] == [SMOKE_STEPS[0], SMOKE_STEPS[0] + SMOKE_STEPS[1]])
    else:
        result["passed"] = False
    return result


def memory_check(device: str, dry_run: bool) -> list[dict]:
    """Part 2: measured peak of one training step at the chosen micro-batch, against the estimate."""
    import torch

    from encoder_recipes.modeling.build import build_model
    from encoder_recipes.plan import build_plan
    from encoder_recipes.registry import default_registries
    from encoder_recipes.modeling.chunked_loss import ChunkedHeadLoss
    from encoder_recipes.training.memory import estimated_peak, micro_batch_for, shape_of, step_costs
    from encoder_recipes.validation import load_recipe

    registries = default_registries()
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    if dry_run:
        recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update={
            "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 2,
            "vocab_size": 512, "max_position_embeddings": 8192})})
    plan = build_plan(recipe, registries)
    vocab = recipe.model.vocab_size
    on_gpu = device.startswith("cuda")
    memory = torch.cuda.get_device_properties(0).total_memory if on_gpu else 4e9
    rows = []
    for stage in plan.stages:
        model = build_model(recipe.model, vocab_size=vocab, special_ids={"pad": 0, "cls": 1, "sep": 2, "bos": 1, "eos": 2},
                            attn_implementation="sdpa", seed=0).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=on_gpu)
        # the module the trainer runs: the chunked head loss when the recipe asks for it (the default)
        forward = ChunkedHeadLoss(model, recipe.head_loss_chunk_rows) if recipe.head_loss_chunk_rows else model
        choice = micro_batch_for(recipe, stage, gpus=16, memory=memory, vocab_size=vocab)
        micro = min(choice.micro, 2) if dry_run else choice.micro
        seq_len = min(choice.seq_len, 256) if dry_run else choice.seq_len
        ids = torch.randint(5, vocab, (micro, seq_len), device=device)
        labels = torch.where(torch.rand(micro, seq_len, device=device) < 0.3, ids, torch.full_like(ids, -100))
        if on_gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        row = {"stage": stage.name, "share": choice.share, "micro": micro, "seq_len": seq_len}
        try:
            for _ in range(2):  # the second step has AdamW's state allocated, as every later step does
                with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=on_gpu):
                    out = forward(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
                out.loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if on_gpu:
                torch.cuda.synchronize()
                row["measured_gb"] = torch.cuda.max_memory_allocated() / 1e9
        except torch.OutOfMemoryError as exc:
            row["error"] = f"out of memory: {str(exc)[:300]}"
        per_token, static = step_costs(recipe, stage, shape_of(recipe.model, vocab), seq_len=seq_len)
        row["estimated_gb"] = estimated_peak(micro=micro, seq_len=seq_len, per_token=per_token, static=static) / 1e9
        row["device_gb"] = memory / 1e9
        if "measured_gb" in row:
            row["measured_over_estimate"] = row["measured_gb"] / row["estimated_gb"]
        rows.append(row)
        del model, forward, optimizer, out
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, with gloo and a tiny shape")
    parser.add_argument("--timeout", type=float, default=360, help="seconds for the NCCL run")
    args = parser.parse_args(argv)
    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: nothing to check (use --dry-run to exercise the script on the CPU)")
            return 2
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        results = {"nccl_run": nccl_run(Path(tmp), device, args.timeout)}
    results["memory"] = memory_check(device, args.dry_run)
    run = results["nccl_run"]
    print(f"1. torchrun --nproc_per_node 1, {'gloo' if args.dry_run else 'NCCL'}, ja-llmjp smoke "
          f"{SMOKE_STEPS[0]}+{SMOKE_STEPS[1]} steps: exit {run['exit']}, {run['seconds']} s, stages "
          f"{run.get('stages')}, evaluations after steps {run.get('evals')}: {'PASS' if run['passed'] else 'FAIL'}")
    if not run["passed"]:
        print(run["output_tail"])
    for row in results["memory"]:
        measured = f"{row['measured_gb']:.1f} GB measured" if "measured_gb" in row else row.get("error", "not measured")
        print(f"2. {row['stage']}: micro-batch {row['micro']} of {row['share']} × {row['seq_len']} tokens: "
              f"{measured}, {row['estimated_gb']:.1f} GB estimated, device {row['device_gb']:.1f} GB"
              + (f" (measured/estimate {row['measured_over_estimate']:.2f})" if "measured_over_estimate" in row else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0 if run["passed"] and all("error" not in r for r in results["memory"]) else 1


if __name__ == "__main__":
    sys.exit(main())
