"""What a run reports: ``metrics.jsonl`` (one line per logging step), TensorBoard when installed, a progress bar."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


class MetricsLog:
    """Appends JSON lines; mirrors scalars to TensorBoard when ``tensorboard`` is importable."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except Exception:  # tensorboard is optional
                self._tb = None

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines past the checkpoint so the log has each step once."""
        if not (self.enabled and self.path.exists()):
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line torn by a full disk or a crash mid-write
                continue
            if record.get("step", 0) <= step:
                keep.append(line)
        # replaced in one rename: a kill here leaves the old log or the new one, never an empty file
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class StageProgress:
    """A tqdm bar per stage: stage, step, loss, tokens/s, LR, mask rate, sequence length, ETA."""

    def __init__(self, stage: str, total: int, done: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, initial=done, desc=stage, disable=not enabled, dynamic_ncols=True,
                        mininterval=1.0)
        self.last = time.perf_counter()

    def update(self, **fields: Any) -> None:
        self.bar.set_postfix(fields, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
