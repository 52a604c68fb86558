"""What an evaluator gets besides the model and tokenizer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from encoder_recipes.schema import EvalDefaults
from encoder_recipes.training.distributed import Dist

_DEFAULTS = EvalDefaults()  # the schema holds the defaults; an evaluator outside training gets these

#: Sub-folder of a run's ``eval/`` holding evaluators' bulky outputs (histograms,
#: per-probe predictions). Kept apart from ``eval/step_N.json`` so the model card,
#: which lists ``eval/*.json``, stays short.
DETAILS_DIR = "details"


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
    #: training documents, a fresh iterator per call (the mlm evaluator's unigram baseline counts them)
    train_documents: Callable[[], Iterator[str]] | None = None
    seq_len: int = _DEFAULTS.seq_len
    packing: str = _DEFAULTS.packing
    masking: Any = None  #: a Masking component (None: token-level MLM at ``mask_rate``)
    mask_rate: float = _DEFAULTS.mask_rate
    segmenter: Any = None
    seed: int = 0
    step: int | None = None
    out_dir: Path | None = None
    registries: Any = None
    #: fill-mask probes in the domain of the sample corpora the run trains on (empty for other data)
    sample_probes: list[dict] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the ranks a shardable evaluator shares its examples among (one process: rank 0 of 1)
    dist: Dist = field(default_factory=Dist)

    def shard(self, n: int) -> range:
        """The indices of ``n`` examples this rank scores: every ``world``-th from its rank, so
        the ranks' shares differ by one example at most and together are all ``n``."""
        return range(self.dist.rank, n, self.dist.world)

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (in place, on the training device); itself in one process."""
        return self.dist.sum(tensor) if self.dist.enabled else tensor

    def save_details(self, evaluator: str, data: dict[str, Any]) -> Path | None:
        """Write an evaluator's bulky output to ``<out_dir>/eval/details/<evaluator>_step_N.json``.

        Returns the path, or None when there is no run directory (standalone
        ``eval`` keeps details in its own JSON instead).
        """
        if self.out_dir is None:
            return None
        folder = Path(self.out_dir) / "eval" / DETAILS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f"_step_{self.step:08d}" if self.step is not None else ""
        path = folder / f"{evaluator}{suffix}.json"
        path.write_text(json.dumps({"step": self.step, "evaluator": evaluator, **data}, ensure_ascii=False),
                        encoding="utf-8")
        return path
