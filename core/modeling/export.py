"""Export a trained model as a Hugging Face directory, and load one back.

The directory is what ``save_pretrained`` writes (safetensors weights,
``config.json`` with ``architectures``), plus the tokenizer and a model
card. For the RMSNorm variant ``save_pretrained`` also copies
``modeling_modernbert_rms.py`` and writes ``auto_map``, so
``AutoModelForMaskedLM.from_pretrained(dir, trust_remote_code=True)`` and
``pipeline("fill-mask", ..., trust_remote_code=True)`` work without this
package installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from transformers import AutoModelForMaskedLM, PreTrainedModel, PreTrainedTokenizerBase

from encoder_recipes.modeling.modeling_modernbert_rms import ModernBertRMSConfig, ModernBertRMSForMaskedLM

_EXPORT_MARKER = "config.json"  # an existing out_dir is replaced only if it holds this (or is empty)


def export_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | os.PathLike[str],
    *,
    card: str | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` to ``out_dir`` atomically and return its path.

    Everything is written into a temporary sibling directory which is then
    renamed into place, so a crash never leaves a half-written export. An
    existing ``out_dir`` from an earlier export is replaced; any other
    non-empty directory is refused.

    :param card: the model card, written as ``README.md`` (none when ``None``).
    """
    out = Path(out_dir).resolve()
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / _EXPORT_MARKER).exists())):
        raise FileExistsError(f"{out} exists and is not an earlier export; choose another directory")
    out.parent.mkdir(parents=True, exist_ok=True)

    # A sibling of out_dir, so the final rename stays on one filesystem.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        _check_export(tmp, model)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_export(path: Path, model: PreTrainedModel) -> None:
    """Fail before publishing a directory that the Auto classes could not load."""
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if not config.get("architectures"):
        raise RuntimeError(f"{path}/config.json has no 'architectures'; pipeline('fill-mask') could not pick a class")
    if not any(path.glob("*.safetensors")):
        raise RuntimeError(f"{path} holds no safetensors weights")
    if isinstance(model.config, ModernBertRMSConfig):
        missing = [f for f in ("modeling_modernbert_rms.py",) if not (path / f).exists()]
        if missing or "auto_map" not in config:
            raise RuntimeError(f"RMSNorm export lacks its modelling code or auto_map (missing {missing})")


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an old ``target`` is moved aside first and deleted last."""
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()  # only the unique name was wanted
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_model(path: str | os.PathLike[str], *, trust_remote_code: bool = False, **kwargs: Any) -> PreTrainedModel:
    """Load an exported masked-LM.

    A ``modernbert_rms`` export is loaded with this package's own
    :class:`ModernBertRMSForMaskedLM` (the same code it shipped), so nothing
    from the directory is executed. Anything else goes through
    ``AutoModelForMaskedLM``; a directory whose config has ``auto_map`` needs
    ``trust_remote_code=True``, which runs the Python files in it.

    :param kwargs: passed to ``from_pretrained`` (``dtype``, ``attn_implementation``, ...).
    """
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") == ModernBertRMSConfig.model_type and not trust_remote_code:
        return ModernBertRMSForMaskedLM.from_pretrained(path, **kwargs)
    return AutoModelForMaskedLM.from_pretrained(
        path, trust_remote_code=trust_remote_code and "auto_map" in config, **kwargs
    )
