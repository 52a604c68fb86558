"""What the benchmarks share: the machine and its load, child processes, peak memory, the matmul peak, tokenizers.

Every figure carries the machine's 1-minute load average taken when it was
measured: on a shared 2-core machine a load above 2 means someone else's
work is taking cores from the benchmark, and its figures are low.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: Environment of every child: never reach for the Hugging Face hub.
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error", "DATASETS_VERBOSITY": "error"}
#: Environment that keeps a child on one core (tokenizers' Rayon pool and torch's intra-op threads).
ONE_CORE = {"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


class BenchError(RuntimeError):
    """A benchmark could not run; the message says why."""


@dataclass
class Figure:
    """One line of the final table."""

    bench: str  # the benchmark, e.g. "1 training"
    what: str  # what was measured
    value: float | None
    unit: str
    compare: str = ""  # a ratio or a target, in words
    load: float | None = None  # 1-minute load average when it was measured
    detail: dict[str, Any] = field(default_factory=dict)  # raw numbers, for --json

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the machine ------------------------------------------------------------------------


def load() -> float:
    """The 1-minute load average (processes wanting a core, averaged)."""
    return os.getloadavg()[0]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import datasets
    import tokenizers
    import torch
    import transformers

    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory": memory,
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def matmul_peak(n: int = 2048, repeats: int = 5, rounds: int = 12) -> dict[str, float]:
    """This machine's float32 matrix-multiply rate with torch's default threads: the MFU denominator.

    The best of ``rounds`` rounds of ``repeats`` ``n×n @ n×n`` products
    (2n³ FLOPs each): the best round is the one least disturbed by other load.
    """
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):  # warm up the kernels and caches
        a @ b
    best = float("inf")
    started_load = load()
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - start) / repeats)
    return {"gflops": 2 * n**3 / best / 1e9, "threads": torch.get_num_threads(), "n": n, "load": started_load}


# --- child processes -----------------------------------------------------------------------


def process_peak_rss_mib(pid: int | str = "self") -> float | None:
    """A process's peak resident memory (``VmHWM``), MiB; None once it has gone.

    Not ``ru_maxrss``: Linux carries a parent's peak into a child across
    fork and exec, so a child of a big process would report the parent's.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


class ChildMemory:
    """Follows the peak memory of this process's child processes (the data worker) while they live.

    A child's peak can only be read while it runs, so a thread reads every
    child's ``VmHWM`` a few times a second; the peak only grows, so the last
    reading before the child ends is its peak (short of the last moments).
    """

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._poll, daemon=True, name="bench-child-memory")
        self._thread.start()

    def _children(self) -> list[int]:
        pids: list[int] = []
        for task in Path("/proc/self/task").glob("*"):
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
        return pids

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            for pid in self._children():
                peak = process_peak_rss_mib(pid)
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0.0))

    def stop(self) -> float:
        """The largest child's peak, MiB (0 without children)."""
        self._stop.set()
        self._thread.join()
        return max(self.peaks.values(), default=0.0)


def peak_rss_mib(children: ChildMemory | None = None) -> dict[str, float]:
    """Peak resident memory of this process and of its largest child process (e.g. the data worker), MiB."""
    own = process_peak_rss_mib()
    if own is None:  # not Linux: ru_maxrss, in KiB on Linux-likes (may include a parent's peak)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"self": round(own, 1), "children": round(children.stop() if children else 0.0, 1)}


def _child_command(module: str, config: dict[str, Any], result: Path) -> list[str]:
    return [sys.executable, "-m", module, "--child", json.dumps(config), "--result", str(result)]


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {**os.environ, **OFFLINE, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    return env


class Child:
    """A benchmark child process: ``python -m MODULE --child CONFIG --result FILE``."""

    def __init__(self, module: str, config: dict[str, Any], *, env: dict[str, str] | None = None) -> None:
        self.module = module
        handle, name = tempfile.mkstemp(prefix="bench-", suffix=".json")
        os.close(handle)
        self.result = Path(name)
        self.started_load = load()
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(_child_command(module, config, self.result), cwd=REPO, env=_child_env(env),
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout: float = 1200) -> dict[str, Any]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise BenchError(f"{self.module} ran past {timeout:.0f} s") from None
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        try:
            if code != 0:
                raise BenchError(f"{self.module} failed (exit {code}):\n{output[-4000:]}")
            result = json.loads(self.result.read_text())
        finally:
            self.result.unlink(missing_ok=True)
        result.setdefault("load", self.started_load)
        return result


def run_child(module: str, config: dict[str, Any], *, env: dict[str, str] | None = None,
              timeout: float = 1200) -> dict[str, Any]:
    """Run one child to the end and return its result (with its peak memory and the load it started at)."""
    return Child(module, config, env=env).wait(timeout)


def child_main(handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """The entry point of a benchmark module run as a child: ``--child CONFIG --result FILE``."""
    args = sys.argv[1:]
    if len(args) != 4 or args[0] != "--child" or args[2] != "--result":
        raise SystemExit(f"usage: python -m {handlers and 'bench.MODULE'} --child JSON --result FILE "
                         "(started by python -m bench)")
    config = json.loads(args[1])
    children = ChildMemory()
    result = handlers[config["kind"]](config)
    result["peak_rss_mib"] = peak_rss_mib(children)
    Path(args[3]).write_text(json.dumps(result))


# --- shared inputs -------------------------------------------------------------------------


def sample_texts(lang: str, split: str = "train") -> list[str]:
    """The documents of the offline sample corpus (``encoder-recipes data samples`` fetches it)."""
    from encoder_recipes.data.samples import SampleCorpusMissing, sample_files

    try:
        path = sample_files(lang)[split]
    except SampleCorpusMissing as exc:
        raise BenchError(f"the {lang} sample corpus is missing; fetch it with: encoder-recipes data samples "
                         f"({exc})") from None
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def sample_path(lang: str, split: str = "train") -> Path:
    from encoder_recipes.data.samples import sample_files

    return sample_files(lang)[split]


def tokenizer_dir(work: Path, lang: str, vocab_size: int) -> Path:
    """A BPE tokenizer trained once on the sample corpus's train split and saved under ``work``.

    Both sides of a comparison load this one folder, so they see the same
    token ids. Training takes a few seconds; later calls reuse the folder.
    """
    folder = work / f"tokenizer-{lang}-{vocab_size}"
    if not (folder / "tokenizer.json").exists():
        from encoder_recipes.components.tokenizers import BPE

        BPE(vocab_size=vocab_size).build(texts=sample_texts(lang), language=lang).save_pretrained(folder)
    return folder


def steady_rate(times: list[float], counts: list[int], skip: int) -> dict[str, float]:
    """Items per second once warmed up, from the start times of events (steps, batches) and what each carried.

    Event ``i`` lasts from ``times[i]`` to ``times[i + 1]``; the first
    ``skip`` events (warm-up, worker start) and the last one (whose end is not
    timed) are left out. ``median`` is the median of the per-event rates:
    on a shared machine other people's work stalls a few events badly, and
    the median is the rate of the undisturbed ones. ``mean`` is all items
    over all the time, stalls included.
    """
    import statistics

    skip = min(skip, max(len(times) - 2, 0))
    if len(times) - skip < 2:
        raise BenchError("too few events to time; raise the number of steps")
    spans = [(counts[i], times[i + 1] - times[i]) for i in range(skip, len(times) - 1)]
    return {"median": statistics.median(n / dt for n, dt in spans),
            "mean": sum(n for n, _ in spans) / sum(dt for _, dt in spans)}


def fill_mfu(figures: list[Figure], peak_gflops: float) -> None:
    """Set the MFU rows (those whose detail holds ``model_flops_per_s``) against the best measured peak.

    The peak is measured several times in a run and the best counts: a
    measurement taken while other work shared the cores is too low and would
    inflate every MFU.
    """
    for figure in figures:
        if "model_flops_per_s" in figure.detail:
            figure.value = 100 * figure.detail["model_flops_per_s"] / (peak_gflops * 1e9)
            figure.compare = f"of the measured fp32 matmul peak, {peak_gflops:.0f} GFLOP/s"


def human(value: float | None, unit: str = "") -> str:
    """``123,456 tok/s``-style numbers for the table."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}".rstrip()


def table(figures: list[Figure]) -> str:
    """The one table ``python -m bench`` prints (fixed-width text)."""
    rows = [("bench", "what", "value", "compare", "load")]
    rows += [(f.bench, f.what, human(f.value, f.unit), f.compare, "-" if f.load is None else f"{f.load:.1f}")
             for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if j < 2 or j == 3 else cell.rjust(w)
                               for j, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    """The same table as Markdown, for ``bench/RESULTS.md``."""
    lines = ["| bench | what | value | compare | load |", "| --- | --- | ---: | --- | ---: |"]
    for f in figures:
        load_text = "-" if f.load is None else f"{f.load:.1f}"
        lines.append(f"| {f.bench} | {f.what} | {human(f.value, f.unit)} | {f.compare} | {load_text} |")
    return "\n".join(lines)
