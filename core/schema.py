"""The recipe schema: the single source of truth for a recipe's keys and defaults.

Every model forbids unknown keys. Components (tokenizer, optimizer, masking,
context schedule, LR schedule, evaluators) appear here as :class:`ComponentRef` —
``{name: ..., <params>}`` — and are checked against the registered
component's own ``Params`` model by :mod:`encoder_recipes.validation`; those
``Params`` models hold the components' defaults.

``docs/recipe-reference.md`` is generated from this module
(``encoder-recipes schema --markdown``) and a test keeps it in step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from encoder_recipes.batch_warmup import BatchWarmup

#: ``json_schema_extra`` of a field that does not change what a run trains: it is left out of
#: :func:`identity` (the recipe hash), so changing it does not block ``--resume``
NOT_IDENTITY: dict[str, Any] = {"identity": False}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentRef(BaseModel):
    """A registered component chosen by ``name``; every other key is one of its params."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="registered name of the component (`encoder-recipes components`)")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EvaluatorRef(ComponentRef):
    """An evaluator and when it runs during training; other keys are its params."""

    every_steps: int | None = Field(None, gt=0, description="run every N global steps (None: only at stage ends)")
    at_stage_end: bool = Field(True, description="run after the last step of every stage")


class Source(Strict):
    """A document a recipe's numbers come from."""

    id: str = Field(description="short key used in the recipe's comments, e.g. 'llmjp-paper'")
    title: str
    file: str | None = Field(None, description="the seed file under shared/seeds/, when there is one")
    url: str | None = None


class Metadata(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", description="registered name of the recipe")
    language: str = Field(description="ISO 639-1 code of the main language, e.g. 'ja'")
    description: str = Field("", description="one line shown by `encoder-recipes list`", json_schema_extra=NOT_IDENTITY)
    sources: list[Source] = Field(default_factory=list, json_schema_extra=NOT_IDENTITY)
    requires: list[str] = Field(
        default_factory=list, description="plugins (entry-point names) the recipe needs; validation checks they are loaded",
        json_schema_extra=NOT_IDENTITY,
    )


class ModelConfig(Strict):
    """The ModernBERT architecture. Defaults are ModernBERT-base (transformers' ModernBertConfig)."""

    vocab_size: int | None = Field(None, gt=0, description="None: take it from the tokenizer")
    hidden_size: int = Field(768, gt=0)
    intermediate_size: int = Field(1152, gt=0, description="GeGLU inner width (per half)")
    num_hidden_layers: int = Field(22, gt=0)
    num_attention_heads: int = Field(12, gt=0)
    local_attention: int = Field(128, gt=0, description="sliding-window size of local layers, in tokens")
    global_attn_every_n_layers: int = Field(3, gt=0, description="layer i is global when i % n == 0")
    global_rope_theta: float = Field(160_000.0, gt=0)
    local_rope_theta: float = Field(10_000.0, gt=0)
    max_position_embeddings: int = Field(8192, gt=0, description="longest sequence the model accepts")
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = Field(1e-5, gt=0)
    norm_bias: bool = False
    hidden_activation: Literal["gelu", "gelu_new", "gelu_pytorch_tanh", "silu", "relu"] = "gelu"
    attention_bias: bool = False
    mlp_bias: bool = False
    decoder_bias: bool = True
    embedding_dropout: float = Field(0.0, ge=0, lt=1)
    attention_dropout: float = Field(0.0, ge=0, lt=1)
    mlp_dropout: float = Field(0.0, ge=0, lt=1)
    initializer_range: float = Field(0.02, gt=0)
    sparse_prediction: bool = Field(True, description="send only masked positions through the MLM head")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        return self


class DataSource(Strict):
    """One corpus. Exactly one of ``sample``, ``paths`` or ``dataset`` says where it is."""

    name: str = Field(description="label used by mixtures")
    sample: str | None = Field(None, description="language code of the offline sample corpus (`encoder-recipes data samples`)")
    paths: list[str] = Field(default_factory=list, description="local .txt/.jsonl/.parquet files or globs")
    dataset: str | None = Field(None, description="a `datasets` name, e.g. 'wikimedia/wikipedia'")
    config: str | None = Field(None, description="the `datasets` configuration, e.g. '20231101.ja'")
    split: str = "train"
    text_field: str = "text"
    streaming: bool = Field(True, description="stream with an IterableDataset (position saved in checkpoints)")
    size: float | None = Field(
        None, gt=0, description="the source's size for a mixture that weighs by size (e.g. tokens, for "
        "`temperature`); None: its count of training documents, counted when a run starts")

    @model_validator(mode="after")
    def _one_location(self) -> DataSource:
        given = [k for k in ("sample", "paths", "dataset") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"data source {self.name!r} needs exactly one of sample, paths, dataset (got {given or 'none'})")
        return self


#: a data mixture: a registered mixture component (``{name: temperature, tau: 0.7}``), or a mapping of
#: sampling weights per source name, short for ``{name: weights, weights: {...}}``
MixtureRef = dict[str, float] | ComponentRef


class Data(Strict):
    sources: list[DataSource] = Field(min_length=1)
    mixture: MixtureRef = Field(
        default_factory=dict, description="how sources are drawn: sampling weight per source name (empty: all "
        "sources equally), or a mixture component, e.g. {name: temperature, tau: 0.7}"
    )
    validation_fraction: float = Field(0.01, gt=0, lt=1, description="documents held out for validation")
    shard_by_rank: bool = Field(
        False, description="each process reads its own part of every source (files shuffled once, by seed; "
        "`dataset:` split by node) instead of all reading everything; gives up the exact equality of N "
        "processes with one"
    )
    store: str | None = Field(
        None, description="train from the store `encoder-recipes prepare` wrote (a folder or object-store URL): "
        "each rank reads, packs and masks only its own rows, with the store's tokenizer; null: tokenise on the fly. "
        "Where the store lives does not count in the recipe's identity (a moved store resumes); what it holds is "
        "checked against the recipe and tokenizer",
        json_schema_extra=NOT_IDENTITY,
    )
    store_mask_group: int = Field(
        1, gt=0, description="with a store: consecutive rows masked by one call (1: per row, exact for every "
        "process count; 8-16 are several times faster and stay exact while each rank's share of the batch is "
        "whole groups)",
    )

    @model_validator(mode="after")
    def _mixture_names(self) -> Data:
        if not isinstance(self.mixture, dict):
            return self  # a component checks its own names (Component.check)
        names = {s.name for s in self.sources}
        unknown = sorted(set(self.mixture) - names)
        if unknown:
            raise ValueError(f"mixture names unknown sources {unknown}; sources are {sorted(names)}")
        if any(w < 0 for w in self.mixture.values()):
            raise ValueError("mixture weights must be >= 0")
        if self.store and self.shard_by_rank:
            raise ValueError("data.shard_by_rank applies to tokenising on the fly; a store (data.store) is always "
                             "read by rank: drop one of them")
        return self


class OptimizerRef(ComponentRef):
    """The optimizer, a registered component (`name` and its params), and the trainer's gradient clipping."""

    name: str = Field("adamw", description="registered name of the optimizer (`encoder-recipes components optimizer`)")
    grad_clip: float | None = Field(
        1.0, gt=0, description="max global grad norm, clipped by the trainer before each optimizer step (not an "
        "optimizer param); null: no clipping",
    )


class Rope(Strict):
    """RoPE bases set on the model for one stage (unset: keep the model's)."""

    global_theta: float | None = Field(None, gt=0)
    local_theta: float | None = Field(None, gt=0)


class BatchWarmupSpec(Strict):
    """Batch-size warmup: the global batch grows from start to the stage's batch_size over its first tokens.

    As ModernBERT and mmBERT do: equal rises, each size getting a share of the
    warmup tokens proportional to it, so each lasts about as many steps
    (:mod:`encoder_recipes.batch_warmup`, which follows their code to the token).
    """

    start: PositiveInt = Field(description="global batch (sequences) of the stage's first step; ModernBERT: one "
                               "micro-batch per device (96 × 8 GPUs = 768)")
    tokens: float = Field(gt=0, description="tokens (padding included) over which the batch rises to batch_size")
    increment: PositiveInt | None = Field(
        None, description="sequences each rise adds; None: start (one micro-batch per device, as ModernBERT)"
    )


class Stage(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    context: ComponentRef = Field(description="context-length schedule, e.g. {name: fixed, seq_len: 1024}")
    steps: int | None = Field(None, gt=0, description="optimizer steps (give steps or tokens)")
    tokens: float | None = Field(
        None, gt=0, description="tokens incl. padding (batch × seq len per step; a multi-length context counts "
        "its mean length); the stage lasts until the tokens seen reach it: ceil(tokens / (batch × seq len)) steps, "
        "counted through batch_warmup's smaller batches when there is one",
    )
    batch_size: int = Field(gt=0, description="global batch size in sequences (after batch_warmup)")
    batch_warmup: BatchWarmupSpec | None = Field(
        None, description="grow the global batch from batch_warmup.start to batch_size over the stage's first "
        "batch_warmup.tokens tokens; None: batch_size from the first step",
    )
    micro_batch_size: PositiveInt | Literal["auto"] | None = Field(
        "auto", description="sequences per device per forward; auto: the largest that fits the GPU's memory "
        "by an estimate of activations (the whole share on CPU); None: the whole share (no accumulation)"
    )
    lr: float = Field(gt=0, description="peak learning rate of the stage")
    lr_schedule: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="constant"),
        description="multiplier on lr; a schedule with scope: run spans stages",
    )
    masking: ComponentRef = Field(description="masking strategy and its rate (or rate schedule)")
    packing: Literal["none", "naive", "best_fit"] = Field(
        "none", description="none: one document per sequence, truncated ('line by line'); "
        "naive: concatenate and cut; best_fit: bin-pack whole documents"
    )
    document_isolation: bool = Field(
        False, description="packed documents attend only within themselves: FlashAttention 2 varlen cu_seqlens, "
        "a block-diagonal mask on SDPA/eager (off: they attend to each other, as in ModernBERT's own training)"
    )
    restart_positions: bool = Field(
        False, description="with document_isolation: position ids restart at 0 in every packed document"
    )
    rope: Rope = Field(default_factory=Rope)
    mixture: MixtureRef | None = Field(
        None, description="data mixture for this stage, weights or a component (default: data.mixture)")
    epochs: float | None = Field(None, gt=0, description="passes over the stage's data, where the source says so")
    allow_context_shrink: bool = Field(False, description="permit a shorter max length than the stage before")
    reset_optimizer: bool = Field(
        False, description="start the stage with a fresh optimizer (new moments and step counts), as a new run "
        "from the previous stage's weights would (false: the optimizer's state carries over)"
    )

    @model_validator(mode="after")
    def _steps_or_tokens(self) -> Stage:
        if (self.steps is None) == (self.tokens is None):
            raise ValueError(f"stage {self.name!r} needs exactly one of steps or tokens")
        if self.batch_warmup is not None:
            spec = self.batch_warmup
            try:  # the ramp's own rules (start <= batch_size, sizes in whole increments)
                BatchWarmup(start=spec.start, end=self.batch_size, tokens=spec.tokens, increment=spec.increment)
            except ValueError as exc:
                raise ValueError(f"stage {self.name!r}: batch_warmup: {exc}") from None
        if self.restart_positions and not self.document_isolation:
            # restarting positions while documents still see each other would garble RoPE's relative positions
            raise ValueError(f"stage {self.name!r}: restart_positions needs document_isolation: true")
        return self


class ScaleRule(Strict):
    """How a named scale (e.g. ``smoke``) shrinks the full recipe. Defaults are the generic rule."""

    seq_len_divisor: int = Field(8, gt=0, description="every sequence length is divided by this")
    min_seq_len: int = Field(64, gt=0)
    total_tokens: int = Field(
        5_000_000, gt=0,
        description="token positions (batch × sequence length, padding included) over all stages: each stage gets "
        "the share of them its full-scale tokens have, so its steps = share / (batch × its scaled length); a "
        "1,024-token step costs 8 of a 128-token one, so steps are not shared by full-scale step counts",
    )
    min_stage_steps: int = Field(10, gt=0)
    min_warmup_steps: int = Field(
        100, ge=0,
        description="an LR warmup scaled by its span's step ratio lasts at least this many steps (at most a tenth "
        "of the span): Adam's second-moment average spans about 1/(1-β2) steps (50 at the seeds' β2 = 0.98), and "
        "a linear warmup over 2/(1-β2) steps is enough for it (Ma & Yarats 2021, arXiv 1910.04209); the paper's "
        "warmup fraction of a short run is a few steps, too few at the scale's larger LR",
    )
    batch_size: int = Field(16, gt=0, description="global batch size in sequences, every stage")
    vocab_size: int = Field(4096, gt=0, description="tokenizer vocabulary trained for this scale")
    model: dict[str, Any] = Field(
        default_factory=lambda: {
            "hidden_size": 128,
            "intermediate_size": 192,
            "num_hidden_layers": 4,
            "num_attention_heads": 2,
        },
        description="model fields replaced at this scale (layer pattern, norms and thetas are kept)",
    )
    local_attention_divisor: int | None = Field(
        None, gt=0, description="divide the local window too (default: seq_len_divisor)"
    )
    lr_multiplier: float | None = Field(
        None, gt=0, description="peak LRs are multiplied by this; None: full width / scale width "
        "(Adam's best LR grows as a model narrows, as in muP), so a tiny model learns in few steps"
    )
    sample_data: bool = Field(True, description="train on the offline sample corpus of the recipe's language")
    languages: list[str] = Field(
        default_factory=list, description="mix these languages' sample corpora instead, one source each, listed "
        "in the order the full-scale language sets take them (largest first); each temperature mixture keeps its "
        "τ and its language set is mapped by rank (see core/scale_languages.py)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="key.path: value applied last")


class EvalDefaults(Strict):
    """What `encoder-recipes eval` evaluates a model directory at, where no training stage says."""

    seq_len: int = Field(512, gt=0, description="length of the validation sequences (at most the model's maximum)")
    packing: Literal["none", "naive", "best_fit"] = Field("none", description="one document per sequence, as in fine-tuning")
    mask_rate: float = Field(0.15, gt=0, lt=1, description="token-level MLM rate (BERT's 15%)")


class Distributed(Strict):
    """How the model is spread over the processes of a multi-process run (torchrun)."""

    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp: every process holds the whole model, optimizer state and gradients; fsdp: "
        "FSDP2 (fully_shard per transformer layer, then the root) shards them over the processes, for a model "
        "whose training state outgrows one GPU. Both train the same weights; checkpoints (torch.distributed."
        "checkpoint) resume under either, on any number of processes",
        json_schema_extra=NOT_IDENTITY,
    )


class Recipe(Strict):
    metadata: Metadata
    extends: str | None = Field(None, description="a registered recipe name or a path, deep-merged under this one",
                                json_schema_extra=NOT_IDENTITY)
    model: ModelConfig = Field(default_factory=ModelConfig)
    tokenizer: ComponentRef
    data: Data
    optimizer: OptimizerRef = Field(default_factory=OptimizerRef, description="optimizer and gradient clipping")
    stages: list[Stage] = Field(min_length=1)
    evaluators: list[EvaluatorRef] = Field(default_factory=list, json_schema_extra=NOT_IDENTITY)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on GPUs that support it, fp32 on CPU"
    )
    attention: Literal["auto", "sdpa", "flash_attention_2", "eager"] = Field(
        "auto", description="auto: FlashAttention 2 when flash-attn is installed on a GPU, else SDPA"
    )
    compile: bool = Field(False, description="torch.compile the model")
    activation_checkpointing: bool = Field(
        False, description="recompute each layer in the backward pass: less activation memory, about a third more compute"
    )
    distributed: Distributed = Field(default_factory=Distributed, description="sharding strategy of a multi-process run")
    head_loss_chunk_rows: int | None = Field(
        4096, gt=0, description="with sparse prediction, the MLM head's logits and loss are computed this many "
        "predicted rows at a time and recomputed in the backward pass, so a large vocabulary's logits never exist "
        "whole (batches with fewer rows run unchunked); None: the model's own unchunked loss"
    )
    distributed_timeout_s: float = Field(
        7200, gt=0, description="seconds a process waits in a collective for the others (rank 0 training the "
        "tokenizer or evaluating) before the job fails; longer than the longest evaluation"
    )
    data_workers: int = Field(
        1, ge=0, description="data worker processes per rank making batches ahead of the model (0: in the "
        "training process). On the fly at most 1: one worker keeps up with the model at small scale "
        "(bench/RESULTS.md: +1% over the model alone) and its stream state is sequential; with data.store any "
        "number, worker w of W making steps w, w+W, ...",
        json_schema_extra=NOT_IDENTITY,
    )
    prefetch: int = Field(4, gt=0, description="batches the data worker may make ahead", json_schema_extra=NOT_IDENTITY)
    on_nan: Literal["stop", "skip"] = Field(
        "stop", description="a non-finite loss: stop (naming the step and last good checkpoint) or skip the batch"
    )
    max_nan_skips: int = Field(100, ge=0, description="with on_nan: skip, stop after this many skipped batches")
    log_every: int = Field(10, gt=0, description="steps between metrics.jsonl lines", json_schema_extra=NOT_IDENTITY)
    checkpoint_every: int = Field(1000, gt=0, description="steps between checkpoints (also at each stage end)",
                                  json_schema_extra=NOT_IDENTITY)
    keep_checkpoints: int = Field(2, gt=0, description="complete checkpoints kept on disk", json_schema_extra=NOT_IDENTITY)
    scales: dict[str, ScaleRule] = Field(
        default_factory=lambda: {"smoke": ScaleRule()},
        description="named offline scales; `--scale smoke` applies scales.smoke",
        json_schema_extra=NOT_IDENTITY,
    )

    @model_validator(mode="after")
    def _workers_for_the_data_path(self) -> Recipe:
        if self.data_workers > 1 and not self.data.store:
            raise ValueError(f"data_workers: {self.data_workers} needs data.store (a prepared store); tokenising "
                             "on the fly takes 0 or 1")
        return self


def identity(value: Any) -> Any:
    """What of a recipe (or any part of it) decides what a run trains: its data without the
    fields marked :data:`NOT_IDENTITY`. The recipe hash that guards ``--resume`` is taken over this."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        out = {name: identity(getattr(value, name)) for name, field in fields.items()
               if not _marked(field)}
        out.update({key: identity(extra) for key, extra in (value.model_extra or {}).items()})
        return out
    if isinstance(value, dict):
        return {str(key): identity(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [identity(item) for item in value]
    return value


def _marked(field: Any) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("identity") is False
