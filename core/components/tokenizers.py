"""Built-in tokenizers: train a BPE or Unigram tokenizer, or load a pretrained one.

Trained tokenizers are Hugging Face ``tokenizers`` models wrapped as a
``PreTrainedTokenizerFast``, with what ModernBERT expects:

* the special tokens ``[CLS] [SEP] [MASK] [PAD] [UNK]`` (ids 0–4);
  ``[MASK]`` strips the space before it, as in ModernBERT's tokenizer;
* a post-processor framing ``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]``;
* SentencePiece-style ``▁`` (Metaspace) word boundaries and no normaliser,
  so decoding gives back the text;
* byte fallback (on by default): the 256 byte tokens ``<0x00>``…``<0xFF>``
  (ids 5–260) are in the vocabulary, so a character never seen in training
  becomes its UTF-8 bytes instead of ``[UNK]``. Every character seen in
  training stays in the alphabet: ``tokenizers``' ``limit_alphabet`` would
  drop rare ones, but its trainer then glues their neighbours together and
  learns tokens that never occur in the text (e.g. "パコン" from "パソコン");
* a vocabulary (specials included) rounded up to a multiple of
  ``round_to_multiple_of``, padded with never-produced ``<unused_N>`` tokens
  (a multiple of 64 keeps the embedding matmul on fast GPU tiles).

``pre_tokenizer: byte_level`` is GPT-2/RoBERTa's byte-level BPE instead
(``ByteLevel`` pre-tokenizer and decoder, the 256 byte symbols as the initial
alphabet, no prefix space), as the Finnish ModernBERTs' tokenizer is; every
byte is a symbol already, so it takes no byte fallback. ``normalizer: nfc``
composes Unicode (NFC) before anything else, as that tokenizer does too.

``pre_tokenizer: morphological`` trains on text pre-split by the language's
word segmenter (fugashi for Japanese): word boundaries are marked with a
separator that a training-only ``Split`` pre-tokenizer removes, so no learned
token crosses a word boundary. The saved tokenizer runs *without* the
segmenter — raw text in, as llm-jp and sarashina do — because a custom
Python pre-tokenizer cannot be serialised; at encode time BPE merges apply
to the whole unspaced run, so a merge learned inside one word can still
join characters across a boundary.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from encoder_recipes.components.base import Params, Scaling
from encoder_recipes.components.kinds import Tokenizer as TokenizerComponent

if TYPE_CHECKING:
    # transformers is imported where it is used: loading the built-in plugin
    # (every CLI command) must not pay for it.
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

__all__ = [
    "SPECIAL_TOKENS",
    "BYTE_TOKENS",
    "BPE",
    "UnigramTokenizer",
    "Pretrained",
    "wrap",
]

CLS, SEP, MASK, PAD, UNK = "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"
#: ModernBERT's special tokens, in the id order trained tokenizers give them.
SPECIAL_TOKENS: list[str] = [CLS, SEP, MASK, PAD, UNK]
#: SentencePiece's byte-fallback pieces, one per byte value.
BYTE_TOKENS: list[str] = [f"<0x{b:02X}>" for b in range(256)]
#: Marks a word boundary in pre-segmented training text; removed before BPE sees it.
WORD_BOUNDARY = "\u2063"  # INVISIBLE SEPARATOR: never written on purpose in running text
#: ``model_max_length``: no truncation by the tokenizer; the packer cuts sequences.
MODEL_MAX_LENGTH = 1_000_000_000_000_000_019_884_624_838_656  # transformers' VERY_LARGE_INTEGER


def _special_added_tokens() -> list[AddedToken]:
    # [MASK] swallows the space before it (lstrip), so "is [MASK]." predicts the word, not "▁".
    return [AddedToken(t, special=True, normalized=False, lstrip=(t == MASK)) for t in SPECIAL_TOKENS]


class TrainedTokenizerParams(Params):
    """Params shared by the trained tokenizers."""

    vocab_size: int | None = Field(
        None, gt=0, description="target vocabulary incl. specials (None: the vocab_size the recipe passes)"
    )
    byte_fallback: bool = Field(True, description="unseen characters become byte tokens <0x00>..<0xFF>, never [UNK]")
    pre_tokenizer: Literal["metaspace", "morphological", "byte_level"] = Field(
        "metaspace",
        description="metaspace: split at spaces (SentencePiece ▁); morphological: also keep learned tokens "
        "inside the language's words during training; byte_level: GPT-2-style byte-level BPE (no byte_fallback)",
    )
    normalizer: Literal["nfc"] | None = Field(None, description="Unicode normalisation before tokenizing; None: none")
    round_to_multiple_of: int = Field(64, gt=0, description="the final vocabulary is rounded up to a multiple of this")
    max_train_documents: int | None = Field(
        200_000, gt=0, description="documents read to train the tokenizer, taken in turn from each data source; "
        "null: every training document"
    )

    @model_validator(mode="after")
    def _byte_level_has_no_fallback(self) -> TrainedTokenizerParams:
        if self.pre_tokenizer == "byte_level" and self.byte_fallback:
            raise ValueError("pre_tokenizer: byte_level already covers every byte; set byte_fallback: false")
        return self


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _mark_words(text: str, segmenter: Any) -> str:
    """``text`` with :data:`WORD_BOUNDARY` between adjacent words that no space separates."""
    out: list[str] = []
    prev_end = 0
    for start, end in segmenter.spans(text):
        gap = text[prev_end:start]
        if not gap and out:
            out.append(WORD_BOUNDARY)
        out.append(gap)
        out.append(text[start:end])
        prev_end = end
    out.append(text[prev_end:])
    return "".join(out)


class _TrainedTokenizer(TokenizerComponent):
    """Training steps shared by BPE and Unigram; subclasses give the model and trainer."""

    Params: ClassVar[type[TrainedTokenizerParams]] = TrainedTokenizerParams

    def scaled(self, scaling: Scaling) -> dict[str, Any]:
        return {**super().scaled(scaling), "vocab_size": scaling.vocab_size}

    def learns_from_texts(self) -> bool:
        return True

    def planned_vocab_size(self) -> int | None:
        if self.params.vocab_size is None:
            return None
        return _round_up(self.params.vocab_size, self.params.round_to_multiple_of)

    def _model(self) -> models.Model:
        raise NotImplementedError

    def _trainer(self, trainable: int) -> trainers.Trainer:
        """A trainer whose vocabulary (specials included, byte tokens not) is ``trainable``."""
        raise NotImplementedError

    def _initial_alphabet(self) -> list[str]:
        # byte-level: all 256 byte symbols from the start, so no byte is ever unknown
        return pre_tokenizers.ByteLevel.alphabet() if self.params.pre_tokenizer == "byte_level" else []

    def _texts(self, texts: Iterable[str], segmenter: Any) -> Iterator[str]:
        texts = iter(texts)
        if self.params.max_train_documents is not None:
            texts = itertools.islice(texts, self.params.max_train_documents)
        if self.params.pre_tokenizer == "morphological":
            return (_mark_words(t, segmenter) for t in texts)
        return texts

    def build(
        self, *, texts: Any, vocab_size: int | None = None, language: str = "", segmenter: Any = None
    ) -> PreTrainedTokenizerFast:
        target = vocab_size if vocab_size is not None else self.params.vocab_size
        if target is None:
            raise ValueError(f"tokenizer {self.name!r} needs a vocab_size (in its params or from the recipe)")
        if texts is None:
            raise ValueError(f"tokenizer {self.name!r} trains on texts, but none were given")
        if self.params.pre_tokenizer == "morphological" and segmenter is None:
            raise ValueError(
                f"pre_tokenizer: morphological needs a word segmenter for language {language!r}, "
                "but no plugin provides one"
            )
        multiple = self.params.round_to_multiple_of
        target = _round_up(target, multiple)
        n_bytes = len(BYTE_TOKENS) if self.params.byte_fallback else 0
        trainable = target - n_bytes
        if trainable <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size {target} leaves no room for learned tokens beside the specials and bytes")

        tok = Tokenizer(self._model())
        if self.params.normalizer == "nfc":
            tok.normalizer = normalizers.NFC()
        byte_level = self.params.pre_tokenizer == "byte_level"
        # "first": only the text's start gets a ▁, not the text after a [MASK] or a word mark.
        encode_time = (pre_tokenizers.ByteLevel(add_prefix_space=False) if byte_level
                       else pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"))
        if self.params.pre_tokenizer == "morphological":
            # Training only: cut at the word marks, so merges stay inside words.
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [pre_tokenizers.Split(WORD_BOUNDARY, behavior="removed"), encode_time]
            )
        else:
            tok.pre_tokenizer = encode_time
        tok.train_from_iterator(self._texts(texts, segmenter), self._trainer(trainable))
        tok.pre_tokenizer = encode_time  # encode time: raw text in, no segmenter

        tok = _finish_vocab(tok, byte_fallback=self.params.byte_fallback, multiple=multiple)
        if byte_level:
            tok.decoder = decoders.ByteLevel()
        else:
            # Llama's decoder chain: ▁ back to spaces, bytes back to characters, drop the prepended space.
            tok.decoder = decoders.Sequence(
                [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
            )
        tok.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}",
            pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
            special_tokens=[(CLS, tok.token_to_id(CLS)), (SEP, tok.token_to_id(SEP))],
        )
        return wrap(tok)


def _finish_vocab(tok: Tokenizer, *, byte_fallback: bool, multiple: int) -> Tokenizer:
    """Put the byte tokens after the specials and pad the vocabulary to ``multiple``.

    Edits the serialised model: the ``tokenizers`` API cannot add plain (non
    added-token) vocabulary entries to a trained model.
    """
    state = json.loads(tok.to_str())
    model = state["model"]
    if model["type"] == "BPE":
        pieces = sorted(model["vocab"], key=model["vocab"].get)
        scores = None
    else:  # Unigram: an ordered list of [piece, log-probability]
        pieces = [p for p, _ in model["vocab"]]
        scores = dict(model["vocab"])
    specials = [p for p in pieces if p in SPECIAL_TOKENS]
    learned = [p for p in pieces if p not in SPECIAL_TOKENS and (not byte_fallback or p not in BYTE_TOKENS)]
    order = specials + (BYTE_TOKENS if byte_fallback else []) + learned
    padding = [f"<unused_{i}>" for i in range(_round_up(len(order), multiple) - len(order))]
    order += padding

    if scores is None:
        model["vocab"] = {p: i for i, p in enumerate(order)}
    else:
        # Byte pieces only stand in for unknown characters; unused pieces must never win.
        floor = min(scores.values()) if scores else 0.0
        model["vocab"] = [[p, scores.get(p, floor - 10.0 if p in padding else 0.0)] for p in order]
        model["unk_id"] = order.index(UNK)
    model["byte_fallback"] = byte_fallback
    ids = {p: i for i, p in enumerate(order)}
    for added in state["added_tokens"]:
        added["id"] = ids[added["content"]]
    return Tokenizer.from_str(json.dumps(state))


def wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A ``tokenizers`` tokenizer as a transformers fast tokenizer with ModernBERT's specials set."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token=CLS,
        sep_token=SEP,
        mask_token=MASK,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=MODEL_MAX_LENGTH,
        # ModernBERT takes no token_type_ids.
        model_input_names=["input_ids", "attention_mask"],
    )


class BPE(_TrainedTokenizer):
    """Byte-pair-encoding tokenizer trained on the recipe's texts, with byte fallback."""

    name: ClassVar[str] = "bpe"

    class Params(TrainedTokenizerParams):
        min_frequency: int = Field(2, ge=1, description="a pair must occur this often to be merged")

    def _model(self) -> models.Model:
        return models.BPE(unk_token=UNK, byte_fallback=self.params.byte_fallback)

    def _trainer(self, trainable: int) -> trainers.Trainer:
        return trainers.BpeTrainer(
            vocab_size=trainable,
            min_frequency=self.params.min_frequency,
            special_tokens=_special_added_tokens(),
            initial_alphabet=self._initial_alphabet(),
            show_progress=False,
        )


class UnigramTokenizer(_TrainedTokenizer):
    """SentencePiece-style Unigram tokenizer with byte fallback, as ModernBERT-Ja (sarashina2) uses."""

    name: ClassVar[str] = "unigram"

    class Params(TrainedTokenizerParams):
        pass

    def _model(self) -> models.Model:
        return models.Unigram()

    def _trainer(self, trainable: int) -> trainers.Trainer:
        return trainers.UnigramTrainer(
            vocab_size=trainable,
            special_tokens=_special_added_tokens(),
            unk_token=UNK,
            initial_alphabet=self._initial_alphabet(),
            show_progress=False,
        )


class Pretrained(TokenizerComponent):
    """A tokenizer loaded with AutoTokenizer from a local folder or a hub name."""

    name: ClassVar[str] = "pretrained"

    class Params(Params):
        path: str = Field(description="a folder holding a saved tokenizer, or a Hugging Face hub name")

    def scaled(self, scaling: Scaling) -> dict[str, Any]:
        # a hub tokenizer cannot be fetched offline: a small BPE is trained in its place
        return {"name": BPE.name, "vocab_size": scaling.vocab_size}

    def build(
        self, *, texts: Any = None, vocab_size: int | None = None, language: str = "", segmenter: Any = None
    ) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.params.path)
        missing = [attr for attr in ("mask_token", "pad_token", "cls_token", "sep_token") if getattr(tok, attr) is None]
        if missing:
            raise ValueError(f"tokenizer {self.params.path!r} lacks {', '.join(missing)}, which masked-LM training needs")
        return tok
