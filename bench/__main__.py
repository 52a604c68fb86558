"""``python -m bench``: run every benchmark and print one table (see ``bench/README.md``).

    .venv/bin/python -m bench                 # the full run (about 10 minutes on 2 cores)
    .venv/bin/python -m bench --quick         # a fast pass with smaller sizes
    .venv/bin/python -m bench --only training,pipeline --json out.json --markdown

Sections: ``training`` (1, against transformers' Trainer), ``pipeline`` (2),
``memory`` (3), ``seqlen`` (4), ``gpu`` (5, skipped without CUDA), ``time_to_loss`` (6,
wall time of each trainer to the same held-out loss), ``store`` (7, the prepared store: ``prepare`` per
core, reading with packing and whole-word masking, 1/2/4 gloo processes).
``--smoke`` runs every code path at toy sizes (what the test suite runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import BenchError, Figure, fill_mfu, load, machine, markdown_table, matmul_peak, table

SECTIONS = ("training", "pipeline", "memory", "seqlen", "gpu", "time_to_loss", "store")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes: a few minutes")
    size.add_argument("--smoke", action="store_true", help="toy sizes: checks that every benchmark runs")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--work", type=Path,
                        help="folder for tokenizers, corpora and runs (default: a temp folder, removed)")
    parser.add_argument("--json", type=Path, help="write the machine and every figure, with raw details, here")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown (for RESULTS.md)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when its name is not known")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only.split(",")) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    return args


def run_section(name: str, mode: str, work: Path, peak_tflops: float | None) -> list[Figure]:
    from bench import gpu, memory, pipeline, seqlen, store, time_to_loss, training

    if name == "store":
        return store.run(mode, work)
    if name == "training":
        return training.run(mode, work)
    if name == "time_to_loss":
        return time_to_loss.run(mode, work)
    if name == "pipeline":
        return pipeline.run(mode, work)
    if name == "memory":
        return memory.run(mode, work)
    if name == "seqlen":
        return seqlen.run(mode, work)
    figures = gpu.run(mode, peak_tflops)  # name == "gpu"
    if mode == "smoke":
        figures += gpu.dry_run()
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    work = args.work or Path(tempfile.mkdtemp(prefix="encoder-recipes-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    about = machine()
    print(f"bench ({mode}) on {about['cpu']}, {about['cores']} cores, torch {about['torch']}, "
          f"transformers {about['transformers']}; load {about['load_at_start']}", flush=True)

    peaks = [matmul_peak()]
    figures: list[Figure] = []
    failed = []
    started = time.perf_counter()
    for name in [s for s in SECTIONS if s in args.only.split(",")]:
        section_start = time.perf_counter()
        print(f"[{time.perf_counter() - started:6.0f} s] {name} (load {load():.1f}) ...", flush=True)
        try:
            figures += run_section(name, mode, work, args.peak_tflops)
        except Exception as exc:  # one broken section must not lose the others' figures
            failed.append(name)
            message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            figures.append(Figure(name, "failed", None, "", message[:150]))
            if not isinstance(exc, BenchError):
                traceback.print_exc()
            else:
                print(exc, file=sys.stderr)
        print(f"         {name} took {time.perf_counter() - section_start:.0f} s", flush=True)
        peaks.append(matmul_peak(rounds=4))  # the peak again: the best of the run is the least disturbed

    peak = max(peaks, key=lambda p: p["gflops"])
    figures.insert(0, Figure("0 machine", f"fp32 matmul peak ({peak['n']}² @ {peak['n']}², {peak['threads']} threads)",
                             peak["gflops"], "GFLOP/s",
                             f"the MFU denominator: best of {len(peaks)} measurements "
                             f"(lowest {min(p['gflops'] for p in peaks):.0f})", peak["load"], {"measurements": peaks}))
    fill_mfu(figures, peak["gflops"])

    about["seconds"] = round(time.perf_counter() - started)
    about["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(table(figures))
    if args.markdown:
        print()
        print(markdown_table(figures))
    if args.json:
        args.json.write_text(json.dumps({"mode": mode, "machine": about, "figures": [f.to_dict() for f in figures]},
                                        indent=1, ensure_ascii=False, default=str))
    print(f"\n{about['seconds']} s; load at end {about['load_at_end']}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
