"""Checkpoints that are either complete or ignored, in torch.distributed.checkpoint's format.

A checkpoint is a directory ``checkpoints/step_00000120/`` holding:

* ``dcp/`` — the weights and the optimizer's state, written by
  ``torch.distributed.checkpoint`` (DCP): ``.metadata`` (where every tensor,
  or every shard of one, lies) and one ``__R_0.distcp`` file per writing
  process R. Tensors are keyed by their parameter names, not by the layout
  of the processes that wrote them, so a checkpoint saved by N processes
  (DDP or FSDP) loads on M, under either strategy;
* ``state.json`` — step, stage, data position, RNG states, the recipe's hash,
  and whatever other JSON state the trainer's parts add (the trainer owns its keys);
* ``MANIFEST.json`` — written last: the SHA-256 and size of every file.

Every process writes its part into ``.tmp-step_…``; the main process then
writes the manifest and renames the folder into place, so a crash mid-write
leaves only a temp directory (cleaned up on the next save). A write that
fails (a full disk) removes its temp directory and raises
:class:`CheckpointError` on every process. On resume each candidate is
verified against its manifest, newest first; a truncated or corrupted one is
reported by path and the one before it is used.

Loading runs no code from the checkpoint: DCP reads its ``.metadata`` with
plain ``pickle``, so it is read here through an unpickler that admits only
DCP's own metadata classes; the other non-tensor entries are read by DCP
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, _EmptyStateDictLoadPlanner

from encoder_recipes.training.distributed import Dist

MANIFEST = "MANIFEST.json"
PREFIX = "step_"
DCP = "dcp"  # the folder of a checkpoint that torch.distributed.checkpoint writes


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


def state_dicts(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, Any]]:
    """The model's and optimizer's state keyed by parameter name, as DCP saves and loads them.

    Collective under FSDP (every process calls it); each process's tensors are its own shards.
    """
    model_state, optimizer_state = get_state_dict(model, optimizer)
    return {"model_state": model_state, "optimizer_state": optimizer_state}


class _ElsewhereFailed(RuntimeError):
    """Another process failed its part of a collective checkpoint step (its own error says why)."""


def _main_then_agree(dist: Dist, work) -> None:
    """Run ``work`` on the main process; raise on every process if it failed there."""
    error: BaseException | None = None
    if dist.main:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001  (re-raised below, after the others know)
            error = exc
    if dist.any(error is not None):
        raise error if error is not None else _ElsewhereFailed("the main process could not write the checkpoint")


def save_checkpoint(root: Path, step: int, *, model_state: dict[str, Any], optimizer_state: dict[str, Any],
                    state: dict[str, Any], keep: int, dist: Dist | None = None) -> Path:
    """Write a complete checkpoint atomically and keep only the newest ``keep``.

    Every process of a run calls it (DCP writes each one's part); alone, ``dist`` may be omitted.

    :raises CheckpointError: the write failed (disk full, no permission); no
        part of it is left behind, and the older checkpoints are untouched.
    """
    dist = dist or Dist()
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp-{PREFIX}{step:08d}"

    def prepare() -> None:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()

    def finish() -> None:
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        files = {}
        for item in sorted(p for p in tmp.rglob("*") if p.is_file()):
            with item.open("rb") as fh:
                os.fsync(fh.fileno())
            files[item.relative_to(tmp).as_posix()] = {"sha256": _sha256(item), "bytes": item.stat().st_size}
        manifest = tmp / MANIFEST
        manifest.write_text(json.dumps({"step": step, "files": files}, indent=1), encoding="utf-8")
        with manifest.open("rb") as fh:
            os.fsync(fh.fileno())
        if final.exists():  # a re-run of the same step after a resume
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old.path, ignore_errors=True)

    try:
        _main_then_agree(dist, prepare)
        # collective: each process writes its shards (a replicated tensor once, by one process) and
        # the main process writes .metadata; a failure on any process raises on all of them
        with _alone_is_fine():
            dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=tmp / DCP,
                     no_dist=not dist.enabled)
        _main_then_agree(dist, finish)
    except BaseException as exc:
        if dist.main:
            shutil.rmtree(tmp, ignore_errors=True)  # no partial checkpoint stays behind, and its space is freed
        cause = _first_failure(exc)
        if not isinstance(cause, (OSError, RuntimeError)):  # a full disk, as each writer reports it
            raise cause from (exc if cause is not exc else None)
        newest = latest_complete(root) if dist.main else None
        where = f"; the newest complete checkpoint is {newest.path if newest else 'none'}" if dist.main else ""
        raise CheckpointError(
            f"cannot write checkpoint {final}: {getattr(cause, 'strerror', None) or cause}{_free_space(root)}{where}"
        ) from exc
    return final


@contextlib.contextmanager
def _alone_is_fine():
    """DCP warns when no process group exists; a single-process run is a supported case, not a slip."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch.distributed is (disabled, )?unavailable or uninitialized")
        yield


def _first_failure(exc: BaseException) -> BaseException:
    """The error a process raised inside DCP (which wraps every process's failures in one exception)."""
    if isinstance(exc, CheckpointException):
        for failure in exc.failures.values():  # (exception, its traceback) per failed process
            inner = failure[0] if isinstance(failure, tuple) else failure
            if isinstance(inner, BaseException):
                return inner
    return exc


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


class _MetadataUnpickler(pickle.Unpickler):
    """Admits only the classes DCP's ``.metadata`` is made of: a planted pickle cannot run code."""

    ALLOWED = {
        ("torch.distributed.checkpoint.metadata", name) for name in (
            "Metadata", "MetadataIndex", "StorageMeta", "TensorProperties", "TensorStorageMetadata",
            "ChunkStorageMetadata", "BytesStorageMetadata", "_MEM_FORMAT_ENCODING")
    } | {("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch", "Size"),
         ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"),
         ("pathlib", "PurePosixPath"), ("pathlib", "PureWindowsPath")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a checkpoint's metadata")


class _SafeReader(FileSystemReader):
    def read_metadata(self, *args: Any, **kwargs: Any):
        path = Path(self.path) / ".metadata"
        with path.open("rb") as fh:
            metadata = _MetadataUnpickler(fh).load()
        if getattr(metadata, "storage_meta", None) is None:
            from torch.distributed.checkpoint.metadata import StorageMeta

            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class _SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's planner, except that non-tensor entries (the optimizer's param groups) are unpickled with
    ``weights_only``: DCP's own ``load_bytes`` unpickles them with ``weights_only=False``."""

    def load_bytes(self, read_item, value) -> None:
        obj = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


class _SafeWholePlanner(_SafeLoadPlanner, _EmptyStateDictLoadPlanner):
    """Rebuilds the whole state dict from the metadata (no model needed), safely."""


def _refused(ckpt: Checkpoint, exc: BaseException) -> CheckpointError:
    cause = _first_failure(exc)
    return CheckpointError(f"{ckpt.path / DCP} cannot be loaded safely: {type(cause).__name__}: {cause}")


def load_into(ckpt: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer, dist: Dist) -> None:
    """Load the checkpoint's weights and optimizer state into ``model`` and ``optimizer`` in place.

    Collective (every process calls it). The model may be laid out otherwise than the run that
    saved it (another process count, DDP or FSDP): DCP reads each process's own part by name.
    """
    model_state, optimizer_state = get_state_dict(model, optimizer)  # this process's tensors, to fill in place
    states = {"model": model_state, "optimizer": optimizer_state}
    try:
        with _alone_is_fine():
            dcp.load(states, storage_reader=_SafeReader(ckpt.path / DCP), planner=_SafeLoadPlanner(),
                     no_dist=not dist.enabled)
    except (CheckpointException, pickle.UnpicklingError, OSError, RuntimeError, ValueError, KeyError) as exc:
        raise _refused(ckpt, exc) from exc
    set_state_dict(model, optimizer, model_state_dict=states["model"], optim_state_dict=states["optimizer"])


def load_checkpoint(ckpt: Checkpoint) -> tuple[dict, dict, dict]:
    """(model state, optimizer state, trainer state), whole, in this one process: for reading a
    checkpoint outside a run. The optimizer state is keyed by parameter name. Runs no code from it."""
    try:
        loaded: dict[str, Any] = {}
        # dcp.load fills only keys given; DCP's own converters (format_utils) rebuild a whole dict this way
        _load_state_dict(loaded, storage_reader=_SafeReader(ckpt.path / DCP), planner=_SafeWholePlanner(),
                         no_dist=True)
    except (CheckpointException, pickle.UnpicklingError, OSError, RuntimeError, ValueError, KeyError) as exc:
        raise _refused(ckpt, exc) from exc
    return loaded["model"], loaded["optimizer"], ckpt.state
