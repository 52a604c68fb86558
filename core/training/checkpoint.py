"""Checkpoints that are either complete or ignored.

A checkpoint is a directory ``checkpoints/step_00000120/`` holding:

* ``model.safetensors`` — the weights (safetensors: loading runs no code);
* ``optimizer.pt`` — the AdamW state, loaded with ``torch.load(weights_only=True)``
  so a pickle that would run code is refused;
* ``state.json`` — step, stage, data position, RNG states, the recipe's hash;
* ``MANIFEST.json`` — written last: the SHA-256 and size of every file.

It is written into ``.tmp-step_…`` and renamed into place, so a crash mid-write
leaves only a temp directory (cleaned up on the next save). A write that fails
(a full disk) removes its temp directory and raises :class:`CheckpointError`.
On resume each candidate is verified against its manifest, newest first; a
truncated or corrupted one is reported by path and the one before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

MANIFEST = "MANIFEST.json"
PREFIX = "step_"


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is incomplete or corrupted."""


class CheckpointError(RuntimeError):
    pass


@dataclass
class Checkpoint:
    path: Path
    step: int

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.path / "state.json").read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _free_space(path: Path) -> str:
    """`` (N MB free on its disk)``, which explains torch's cryptic message for a full disk."""
    for folder in (path, *path.parents):
        try:
            return f" ({shutil.disk_usage(folder).free / 1e6:,.1f} MB free on its disk)"
        except OSError:
            continue
    return ""


def save_checkpoint(root: Path, step: int, *, model_state: dict[str, torch.Tensor],
                    optimizer_state: dict[str, Any], state: dict[str, Any], keep: int) -> Path:
    """Write a complete checkpoint atomically and keep only the newest ``keep``.

    :raises CheckpointError: the write failed (disk full, no permission); no
        part of it is left behind, and the older checkpoints are untouched.
    """
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp-{PREFIX}{step:08d}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        # safetensors refuses tensors that share memory (tied embeddings): store contiguous copies
        save_file({k: v.detach().contiguous().clone() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
        torch.save(optimizer_state, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        files = {}
        for item in sorted(tmp.iterdir()):
            with item.open("rb") as fh:
                os.fsync(fh.fileno())
            files[item.name] = {"sha256": _sha256(item), "bytes": item.stat().st_size}
        manifest = tmp / MANIFEST
        manifest.write_text(json.dumps({"step": step, "files": files}, indent=1), encoding="utf-8")
        with manifest.open("rb") as fh:
            os.fsync(fh.fileno())
        if final.exists():  # a re-run of the same step after a resume
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # no partial checkpoint stays behind, and its space is freed
        if not isinstance(exc, (OSError, RuntimeError, SafetensorError)):  # a full disk, as each writer reports it
            raise
        newest = latest_complete(root)
        raise CheckpointError(
            f"cannot write checkpoint {final}: {getattr(exc, 'strerror', None) or exc}{_free_space(root)}; "
            f"the newest complete checkpoint is {newest.path if newest else 'none'}"
        ) from exc
    _fsync_dir(root)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Checkpoint]:
    """Checkpoint directories by step (complete or not), oldest first."""
    if not root.is_dir():
        return []
    out = []
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(PREFIX) and path.name[len(PREFIX):].isdigit():
            out.append(Checkpoint(path, int(path.name[len(PREFIX):])))
    return sorted(out, key=lambda c: c.step)


def verify(checkpoint: Path) -> str | None:
    """None when the checkpoint matches its manifest, else what is wrong."""
    manifest = checkpoint / MANIFEST
    if not manifest.is_file():
        return "no manifest (the write did not finish)"
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError) as exc:
        return f"unreadable manifest: {exc}"
    for name, meta in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != meta["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {meta['bytes']}"
        if _sha256(path) != meta["sha256"]:
            return f"{name} does not match its checksum"
    return None


def latest_complete(root: Path) -> Checkpoint | None:
    """The newest checkpoint that verifies; broken ones are reported and skipped."""
    for ckpt in reversed(list_checkpoints(root)):
        problem = verify(ckpt.path)
        if problem is None:
            return ckpt
        warnings.warn(f"skipping checkpoint {ckpt.path}: {problem}", CheckpointWarning, stacklevel=2)
    return None


def resolve_resume(output: Path, resume: str | None) -> Checkpoint | None:
    """``--resume auto``: newest complete checkpoint (None if there is none); a path: that one, verified."""
    if not resume:
        return None
    if resume == "auto":
        return latest_complete(output / "checkpoints")
    path = Path(resume)
    problem = verify(path) if path.is_dir() else "no such checkpoint directory"
    if problem:
        raise CheckpointError(f"cannot resume from {path}: {problem}")
    name = path.name
    return Checkpoint(path, int(name[len(PREFIX):]) if name.startswith(PREFIX) else json.loads(
        (path / "state.json").read_text())["step"])


def load_checkpoint(ckpt: Checkpoint, map_location: str | torch.device = "cpu") -> tuple[dict, dict, dict]:
    """(model state, optimizer state, trainer state). Refuses pickled code in optimizer.pt."""
    try:
        model_state = load_file(str(ckpt.path / "model.safetensors"), device=str(map_location))
    except (SafetensorError, OSError) as exc:  # safetensors checks its header and sizes: no code runs
        raise CheckpointError(f"{ckpt.path / 'model.safetensors'} cannot be loaded: {exc}") from exc
    try:
        optimizer_state = torch.load(ckpt.path / "optimizer.pt", map_location=map_location, weights_only=True)
    except Exception as exc:  # weights_only raises UnpicklingError on anything but tensors and containers
        raise CheckpointError(f"{ckpt.path / 'optimizer.pt'} cannot be loaded safely: {exc}") from exc
    return model_state, optimizer_state, ckpt.state
