"""MLM validation loss and accuracy on held-out documents."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Evaluator


class MLMEvaluator(Evaluator):
    """Masked-LM loss, perplexity and accuracy on held-out documents (same masking every time)."""

    name: ClassVar[str] = "mlm"

    class Params(Params):
        num_sequences: int = Field(64, gt=0, description="validation sequences scored")
        batch_size: int = Field(16, gt=0)
        seq_len: int | None = Field(None, gt=0, description="None: the current stage's length")
        mask_rate: float | None = Field(None, gt=0, lt=1, description="None: the current stage's rate")

    def evaluate(self, *, model: Any, tokenizer: Any, context: Any) -> dict[str, Any]:
        import torch  # late: loading the plugin must stay cheap for the CLI

        from encoder_recipes.components.masking import TokenMasking
        from encoder_recipes.training.batches import BatchMaker, DocumentTokenizer, SequenceStream

        if context.documents is None:
            raise ValueError("the mlm evaluator needs validation documents")
        masking = context.masking or TokenMasking()
        seq_len = self.params.seq_len or context.seq_len
        rate = self.params.mask_rate or context.mask_rate
        segmenter = context.segmenter if getattr(masking, "needs_words", False) else None
        stream = SequenceStream(_Endless(context.documents), DocumentTokenizer(tokenizer, segmenter),
                                context.packing, tokenizer.cls_token_id, tokenizer.sep_token_id)
        # the same seed at every evaluation: scores at different steps mask the same positions
        maker = BatchMaker(stream, masking, tokenizer, seed=context.seed)
        total_loss, total_correct, total = 0.0, 0, 0
        remaining, index = self.params.num_sequences, 0
        with torch.no_grad():
            while remaining > 0:
                n = min(self.params.batch_size, remaining)
                batch = maker.next(step=index, batch_size=n, seq_len=seq_len, rate=rate)
                remaining, index = remaining - n, index + 1
                labels = batch.labels.to(context.device)
                out = model(input_ids=batch.input_ids.to(context.device),
                            attention_mask=batch.attention_mask.to(context.device), labels=labels)
                targets = labels[labels != -100]
                logits = out.logits if out.logits.dim() == 2 else out.logits[labels != -100]
                if targets.numel() == 0:
                    continue
                total_loss += float(torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum"))
                total_correct += int((logits.argmax(-1) == targets).sum())
                total += targets.numel()
        loss = total_loss / max(total, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": total_correct / max(total, 1),
                "masked_tokens": total, "seq_len": seq_len, "mask_rate": rate}


class _Endless:
    """Restart a document source when it runs out (validation splits are small)."""

    def __init__(self, factory) -> None:
        self.factory = factory

    def __iter__(self):
        while True:
            empty = True
            for text in self.factory():
                empty = False
                yield ("validation", text)
            if empty:
                raise ValueError("the validation split has no documents")

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
