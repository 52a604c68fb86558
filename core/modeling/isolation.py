"""Packed documents kept apart: per-document attention and position ids from document lengths.

A packed sequence holds several documents; ``doc_lengths`` gives each one's
segment length (delimiters included, summing to the sequence length), as
:mod:`encoder_recipes.data.packing` produces them. From those lengths this
module builds what transformers' ModernBERT already takes as input, so the
model itself is not patched:

* **FlashAttention 2** — the varlen kernel's ``cu_seqlens``. The batch is
  flattened to one row of real tokens (padding dropped) and the model gets
  ``cu_seq_lens_q/k`` and ``max_length_q/k`` keyword arguments, which
  transformers passes down to ``flash_attn_varlen_func``: every document is
  its own attention span, and the local (sliding-window) layers slide inside
  it.
* **SDPA and eager** (CPU, tests) — an ``attention_mask`` mapping
  ``{"full_attention": ..., "sliding_attention": ...}`` of 4-D masks, made by
  transformers' own ``create_bidirectional_mask`` and
  ``create_bidirectional_sliding_window_mask`` with a same-document rule
  added (``and_mask_function``), so each backend gets the mask format it
  expects (boolean for SDPA, additive for eager) and the sliding window is
  the model's own.
* **position ids** — restarting at 0 in every document when asked. ModernBERT
  uses RoPE, which only sees relative positions inside attention, so with
  isolation on a document's logits are the same whether positions restart or
  not (up to float rounding); restarting makes them exactly those of the
  document alone and keeps absolute positions below the document length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["document_ids", "position_ids", "cu_seqlens", "isolated_inputs"]


def _check(doc_lengths: Sequence[Sequence[int]], widths: Sequence[int]) -> None:
    for row, (lengths, width) in enumerate(zip(doc_lengths, widths)):
        if any(n <= 0 for n in lengths):
            raise ValueError(f"row {row}: document lengths must be positive, got {list(lengths)}")
        if sum(lengths) != width:
            raise ValueError(f"row {row}: document lengths sum to {sum(lengths)}, but the row holds {width} tokens")


def document_ids(doc_lengths: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    """(rows, width) index of each token's document within its row; -1 at padding."""
    out = torch.full((len(doc_lengths), width), -1, dtype=torch.long)
    for row, lengths in enumerate(doc_lengths):
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        out[row, : int(lengths_t.sum())] = torch.repeat_interleave(torch.arange(len(lengths_t)), lengths_t)
    return out


def position_ids(doc_lengths: Sequence[Sequence[int]], width: int, *, restart: bool) -> torch.Tensor:
    """(rows, width) position of each token: 0.. per row, or 0.. per document when ``restart``.

    Padding positions continue the count; they are masked out and never read.
    """
    plain = torch.arange(width, dtype=torch.long).expand(len(doc_lengths), width).clone()
    if not restart:
        return plain
    for row, lengths in enumerate(doc_lengths):
        starts = torch.tensor([0, *torch.as_tensor(list(lengths)).cumsum(0)[:-1].tolist()], dtype=torch.long)
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        used = int(lengths_t.sum())
        plain[row, :used] -= torch.repeat_interleave(starts, lengths_t)
    return plain


def cu_seqlens(doc_lengths: Sequence[Sequence[int]]) -> tuple[torch.Tensor, int]:
    """Cumulative document lengths over all rows, as FlashAttention's varlen kernel wants them.

    :returns: ``(cu_seqlens, max_seqlen)``: an int32 tensor ``[0, l0, l0+l1, ...]``
        over the documents of every row in order, and the longest document.
    """
    flat = [n for lengths in doc_lengths for n in lengths]
    if not flat:
        raise ValueError("no documents")
    cu = torch.zeros(len(flat) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(flat, dtype=torch.int32), 0)
    return cu, max(flat)


def _same_document(doc_ids: torch.Tensor):
    # transformers' mask functions take (batch, head, q, kv) index tensors and return where attention is allowed
    def inner(batch_idx, head_idx, q_idx, kv_idx):
        return doc_ids[batch_idx, q_idx] == doc_ids[batch_idx, kv_idx]

    return inner


def isolated_inputs(
    model: Any,
    *,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    doc_lengths: Sequence[Sequence[int]],
    labels: torch.Tensor | None = None,
    restart_positions: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``model(**kwargs)`` that keep each packed document to itself.

    :param model: a transformers ModernBERT model (masked-LM or base); its
        ``config._attn_implementation`` picks the form of the inputs.
    :param input_ids: ``(rows, width)``, right-padded.
    :param attention_mask: ``(rows, width)``, 1 at real tokens.
    :param doc_lengths: per row, the document segment lengths (summing to the
        row's real tokens).
    :param labels: ``(rows, width)`` MLM labels, -100 where nothing is predicted.
    :param restart_positions: position ids restart at 0 in every document.
    :returns: ``input_ids``, ``attention_mask``, ``position_ids`` and, when
        given, ``labels`` — plus the varlen keywords for FlashAttention 2. With
        FlashAttention 2 the rows are flattened into one row without padding,
        so the logits come out in that order (sparse prediction and the loss
        do not care; a caller reading per-token logits must use the real
        tokens of the rows in order).
    """
    from transformers.masking_utils import create_bidirectional_mask, create_bidirectional_sliding_window_mask

    rows, width = input_ids.shape
    real = attention_mask.bool()
    _check(doc_lengths, real.sum(1).tolist())
    device = input_ids.device
    positions = position_ids(doc_lengths, width, restart=restart_positions).to(device)
    config = model.config
    if config._attn_implementation == "flash_attention_2":
        cu, longest = cu_seqlens(doc_lengths)
        cu = cu.to(device)
        out = {
            "input_ids": input_ids[real].unsqueeze(0),
            "attention_mask": None,
            "position_ids": positions[real].unsqueeze(0),
            "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest,
        }
        if labels is not None:
            out["labels"] = labels[real].unsqueeze(0)
        return out
    docs = document_ids(doc_lengths, width).to(device)
    # only the shape, dtype and device of the embeddings are read
    embeds = torch.empty((rows, width, 1), dtype=model.dtype, device=device)
    rule = _same_document(docs)
    masks = {
        "full_attention": create_bidirectional_mask(config=config, inputs_embeds=embeds, attention_mask=attention_mask,
                                                    and_mask_function=rule),
        "sliding_attention": create_bidirectional_sliding_window_mask(
            config=config, inputs_embeds=embeds, attention_mask=attention_mask, and_mask_function=rule),
    }
    out = {"input_ids": input_ids, "attention_mask": masks, "position_ids": positions}
    if labels is not None:
        out["labels"] = labels
    return out
