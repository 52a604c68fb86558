"""The MLM head's loss in chunks of predicted rows, so a 100k-token vocabulary's logits never exist whole.

With sparse prediction only the masked positions reach the head, but those
are still many: ja-llmjp's micro-batch of 52 × 1,024 tokens at a 30% rate is
about 16,000 rows, and their logits over 99,574 tokens cost about 14 bytes
each (bf16 logits, their fp32 copy, the log-softmax kept for the backward
pass, its gradient): some 20 GB, a third of the step's activations. Here each
chunk of rows gets its logits and cross-entropy under activation
checkpointing: the forward keeps only the chunk's loss, and the backward
recomputes one chunk's logits at a time. The loss and the gradients are the
unchunked ones (the same sums, grouped by chunk); the price is one more
decoder matmul per chunk in the backward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.modeling_outputs import MaskedLMOutput

IGNORE = -100


def _chunk_loss_sum(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    targets: torch.Tensor) -> torch.Tensor:
    # at least fp32 cross-entropy, as transformers' masked-LM loss upcasts bf16 logits
    logits = nn.functional.linear(rows, weight, bias)
    logits = logits if logits.dtype == torch.float64 else logits.float()
    return nn.functional.cross_entropy(logits, targets, reduction="sum")


def chunked_cross_entropy(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          targets: torch.Tensor, *, chunk_rows: int) -> torch.Tensor:
    """Mean cross-entropy of ``linear(rows, weight, bias)`` against ``targets``, ``chunk_rows`` rows at a time.

    :param rows: ``(N, hidden)``, the head's output at the predicted positions.
    :param weight: the decoder's ``(vocab, hidden)`` weight; ``bias`` its ``(vocab,)`` bias or None.
    :param targets: ``(N,)`` token ids (no ignored positions: pick the rows first).
    """
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be > 0, got {chunk_rows}")
    total = None
    for start in range(0, len(rows), chunk_rows):
        part = checkpoint(_chunk_loss_sum, rows[start:start + chunk_rows], weight, bias,
                          targets[start:start + chunk_rows], use_reentrant=False)
        total = part if total is None else total + part
    return total / len(rows)


class ChunkedHeadLoss(nn.Module):
    """A ModernBERT masked-LM whose loss is computed by :func:`chunked_cross_entropy` over the masked rows.

    Wraps the model (it does not copy it: the weights, the state dict and the
    export stay the model's own). Called like the model with ``labels``; the
    returned ``loss`` is transformers' (the mean over predicted tokens). With
    no more rows than ``chunk_rows`` it is transformers' own computation, so
    small batches give the same figures to the bit. ``logits`` are returned
    only when no row is predicted (an empty tensor the caller can still
    backpropagate through, as DDP needs every rank's backward).
    """

    def __init__(self, model: nn.Module, chunk_rows: int) -> None:
        super().__init__()
        self.mlm = model
        self.chunk_rows = chunk_rows

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                **kwargs: Any) -> MaskedLMOutput:
        hidden = self.mlm.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        flat = labels.reshape(-1)
        predicted = flat != IGNORE
        rows = self.mlm.head(hidden.reshape(flat.shape[0], -1)[predicted])
        targets = flat[predicted]
        decoder = self.mlm.decoder
        if len(rows) == 0:
            return MaskedLMOutput(loss=None, logits=decoder(rows))
        if len(rows) <= self.chunk_rows:
            return MaskedLMOutput(loss=nn.functional.cross_entropy(decoder(rows).float(), targets), logits=None)
        return MaskedLMOutput(loss=chunked_cross_entropy(rows, decoder.weight, decoder.bias, targets,
                                                         chunk_rows=self.chunk_rows), logits=None)
