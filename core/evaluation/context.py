"""What an evaluator gets besides the model and tokenizer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class EvalContext:
    """Everything an evaluator may need; fields an evaluator does not use may be left at their defaults.

    During training the trainer fills it from the current stage; ``encoder-recipes
    eval`` fills it from the command line and the sample corpus.
    """

    language: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: validation documents, a fresh iterator per call
    documents: Callable[[], Iterator[str]] | None = None
    seq_len: int = 512
    packing: str = "none"
    masking: Any = None  #: a Masking component (None: token-level MLM at ``mask_rate``)
    mask_rate: float = 0.15
    segmenter: Any = None
    seed: int = 0
    step: int | None = None
    out_dir: Path | None = None
    registries: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
