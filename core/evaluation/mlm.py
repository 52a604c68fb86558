"""MLM validation loss and accuracy on held-out documents, against the unigram baseline.

A loss means little alone: its scale depends on the tokenizer and the text.
So the evaluator also reports ``unigram_loss``, the loss of a model that has
learned nothing but token frequencies — the frequencies of the training text
(add-one smoothed), scored on the validation text — and ``gain``, how many
nats per token the model does better. A model that has only learned to count
tokens has a gain near 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Evaluator


#: characters of text read for the unigram baseline, per side (its estimate is steady well before this)
UNIGRAM_MAX_CHARS = 2_000_000

#: the training-text counts of the last tokenizer seen: a run scores many evaluations with one tokenizer
#: (the tokenizer object itself is kept, so a new one, even at a reused address, is counted afresh)
_TRAIN_COUNTS: list[tuple[Any, Counter[int]]] = []


def token_counts(texts: Iterable[str], tokenizer: Any, *, max_chars: int = UNIGRAM_MAX_CHARS) -> Counter[int]:
    """How often each token id occurs in ``texts`` (no special tokens: MLM targets never are)."""
    from encoder_recipes.training.batches import DocumentTokenizer

    doc_tokenizer = DocumentTokenizer(tokenizer)
    counts: Counter[int] = Counter()
    chunk: list[str] = []
    read = 0
    for text in texts:
        chunk.append(text)
        read += len(text)
        if len(chunk) == 64 or read >= max_chars:
            for ids, _ in doc_tokenizer(chunk):
                counts.update(ids)
            chunk = []
        if read >= max_chars:
            break
    for ids, _ in doc_tokenizer(chunk) if chunk else []:
        counts.update(ids)
    return counts


def unigram_loss(texts: Iterable[str], tokenizer: Any, reference: Counter[int] | None = None) -> float:
    """Cross-entropy, in nats per token, of ``texts`` under a unigram (context-free) model.

    The model is the add-one smoothed token frequencies of ``reference``
    (the training text's counts, :func:`token_counts`): what a model that only
    counted tokens would score. Without a reference, the frequencies of
    ``texts`` themselves: their entropy, which no context-free model beats.
    """
    counts = token_counts(texts, tokenizer)
    total = sum(counts.values())
    if not total:
        raise ValueError("no validation tokens to count for the unigram baseline")
    if reference is None:
        return -sum(c / total * math.log(c / total) for c in counts.values())
    vocab = len(tokenizer)
    denominator = sum(reference.values()) + vocab
    return -sum(c * math.log((reference.get(i, 0) + 1) / denominator) for i, c in counts.items()) / total


class MLMEvaluator(Evaluator):
    """Masked-LM loss, perplexity and accuracy on held-out documents (same masking every time), and the
    unigram baseline (``unigram_loss``: training-text token frequencies scored on the validation text;
    ``gain`` = unigram_loss − loss)."""

    name: ClassVar[str] = "mlm"
    shardable: ClassVar[bool] = True

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
        full, rest = divmod(self.params.num_sequences, self.params.batch_size)
        sizes = [self.params.batch_size] * full + ([rest] if rest else [])
        mine = set(context.shard(len(sizes)))
        # summed on the device (no host sync per batch), then over the ranks: loss, correct, targets
        sums = torch.zeros(3, dtype=torch.float64, device=context.device)
        with torch.no_grad():
            for index, n in enumerate(sizes):
                # every rank draws every batch (the stream is sequential), and scores only its own
                batch = maker.next(step=index, batch_size=n, seq_len=seq_len, rate=rate)
                if index not in mine:
                    continue
                labels = batch.labels.to(context.device)
                out = model(input_ids=batch.input_ids.to(context.device),
                            attention_mask=batch.attention_mask.to(context.device), labels=labels)
                targets = labels[labels != -100]
                if targets.numel() == 0:
                    continue
                logits = out.logits if out.logits.dim() == 2 else out.logits[labels != -100]
                sums[0] += torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum").double()
                sums[1] += (logits.argmax(-1) == targets).sum()
                sums[2] += targets.numel()
        total_loss, total_correct, total = context.all_sum(sums).tolist()
        total_correct, total = int(total_correct), int(total)
        loss = total_loss / max(total, 1)
        scores = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "accuracy": total_correct / max(total, 1),
                  "masked_tokens": total, "seq_len": seq_len, "mask_rate": rate}
        if not context.dist.main:
            return scores  # only the main rank's scores are kept: the baseline is counted there alone
        reference = None
        if context.train_documents is not None:
            if not (_TRAIN_COUNTS and _TRAIN_COUNTS[0][0] is tokenizer):
                _TRAIN_COUNTS[:] = [(tokenizer, token_counts(context.train_documents(), tokenizer))]
            reference = _TRAIN_COUNTS[0][1]
        baseline = unigram_loss(context.documents(), tokenizer, reference)
        return {**scores, "unigram_loss": baseline, "gain": baseline - loss}


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
