"""The training recipe: ``setup()`` → ``train()`` → ``cleanup()``.

``train()`` is the whole loop, readable top to bottom. Everything that varies
with the step — learning rate, masking rate, sequence length, RoPE thetas,
the global batch under a batch warmup — is a pure function of the global step through the plan's clock, so a run
resumed at step N continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from encoder_recipes import __version__
from encoder_recipes.data import store_run
from encoder_recipes.data.mixing import MixtureSchedule, source_sizes, stage_mixture
from encoder_recipes.data.mixture import stream_positions
from encoder_recipes.data.sources import DocumentStream, require_documents, tokenizer_texts
from encoder_recipes.modeling.build import build_model, describe_attention_backend, set_rope_thetas, special_ids_from_tokenizer
from encoder_recipes.modeling.chunked_loss import ChunkedHeadLoss
from encoder_recipes.modeling.export import export_model
from encoder_recipes.modeling.isolation import isolated_inputs
from encoder_recipes.plan import Plan, StagePlan, build_plan
from encoder_recipes.registry import Registries
from encoder_recipes.schema import identity
from encoder_recipes.training import checkpoint as ckpt
from encoder_recipes.training.batches import Batch
from encoder_recipes.training.memory import micro_batch_size
from encoder_recipes.training.prefetch import PipelineSpec, PrefetchedBatches
from encoder_recipes.training.card import model_card
from encoder_recipes.training.distributed import Dist, close_distributed, init_distributed, pick_device
from encoder_recipes.training.metrics import MetricsLog, StageProgress, read_metrics
from encoder_recipes.training.mixture_log import MixtureLog
from encoder_recipes.training.summary import summarize
from encoder_recipes.validation import ResolvedRecipe

class TrainingError(RuntimeError):
    """The run cannot go on; the message says why and what to do."""


class StopRequested(Exception):
    """SIGTERM or Ctrl-C: a checkpoint was written at the step boundary and the run stopped."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped at step {step}")
        self.step = step


@dataclass
class RunOptions:
    output: Path
    resume: str | None = None
    allow_config_change: bool = False
    device: str | None = None
    max_steps: int | None = None  # stop early (trials, tests); the run stays resumable
    overwrite: bool = False  # start afresh in a run directory that holds an earlier run
    progress: bool = True


def recipe_hash(resolved: ResolvedRecipe) -> str:
    """Identity of what a run trains: the schema marks the fields that do not count (``schema.identity``)."""
    data = identity(resolved.recipe)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StepPlan:
    """What one step trains on: pure functions of the global step, computed once per stage."""

    step: int
    batch_size: int
    seq_len: int
    mask_rate: float
    lr: float


class Trainer:
    def __init__(self, resolved: ResolvedRecipe, registries: Registries, options: RunOptions) -> None:
        self.resolved, self.recipe, self.registries, self.options = resolved, resolved.recipe, registries, options
        self.out = Path(options.output)
        self.step = 0  # the next global step to run
        self.nan_skips = 0
        self._signal: int | None = None  # set by the SIGTERM/SIGINT handler
        self.started = time.perf_counter()  # for the end-of-run summary's time taken (this session)
        self.dist: Dist | None = None  # the process group, joined in setup()
        self.metrics: MetricsLog | None = None  # opened in setup()
        self.store = None  # the prepared store the run reads (data.store), opened in setup()
        # where the documents stood at the checkpoint we resumed from: {"stage": name, "stream": state}
        self.resumed_data: dict[str, Any] | None = None
        self._sizes: dict[str, float] | None = None  # the sources' sizes, counted once if a mixture asks

    # --- setup -------------------------------------------------------------------

    def setup(self) -> None:
        recipe = self.recipe
        self.device = pick_device(self.options.device)
        self.dist = init_distributed(self.device, timeout_s=recipe.distributed_timeout_s)
        self._prepare_output()
        earlier = ckpt.list_checkpoints(self.out / "checkpoints") or (self.out / "final").exists()
        # a prepared store is opened and checked before anything in the run directory changes
        self.store = self._open_store(keep_run=not (earlier and self.options.overwrite and not self.options.resume))
        if earlier and not self.options.resume:
            if not self.options.overwrite:
                raise TrainingError(f"{self.out} holds an earlier run; pass --resume auto to continue it, "
                                    "--overwrite to start again there, or choose another --output")
            if self.dist.main:
                for item in ("checkpoints", "final", "tokenizer", "eval", "metrics.jsonl", "tensorboard"):
                    path = self.out / item
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            self.dist.barrier()
        resume_from = ckpt.resolve_resume(self.out, self.options.resume)
        self.hash = recipe_hash(self.resolved)
        if resume_from is not None:
            saved = resume_from.state.get("recipe_hash")
            if saved != self.hash and not self.options.allow_config_change:
                raise TrainingError(
                    f"the recipe differs from the one that wrote {resume_from.path} (hash {saved} vs {self.hash}); "
                    "pass --allow-config-change to resume anyway"
                )
        if self.dist.main:
            (self.out / "resolved.yaml").write_text(
                yaml.safe_dump(self.resolved.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")

        torch.manual_seed(recipe.seed)
        self.segmenter = self.registries.word_segmenter(recipe.metadata.language)
        self.streams = {s.name: DocumentStream(s, "train", validation_fraction=recipe.data.validation_fraction,
                                               shard=self._shard(), shard_seed=recipe.seed)
                        for s in recipe.data.sources}
        for stream in self.streams.values():
            require_documents(stream)  # an empty source is refused before a tokenizer is trained on nothing
        self.tokenizer = self._tokenizer()
        self.plan: Plan = build_plan(recipe, self.registries, vocab_size=len(self.tokenizer))

        self.attn = describe_attention_backend(self.device.type, requested=recipe.attention)
        model = build_model(recipe.model, vocab_size=len(self.tokenizer),
                            special_ids=special_ids_from_tokenizer(self.tokenizer),
                            attn_implementation=self.attn, seed=recipe.seed)
        if recipe.activation_checkpointing:
            # recompute each layer in the backward pass: activations shrink to one layer's input per layer
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = model.to(self.device)
        self.optimizer = self._optimizer()
        if resume_from is not None:
            self._load(resume_from)
        self.ddp_model = self.model
        if recipe.model.sparse_prediction and recipe.head_loss_chunk_rows:
            # the head's loss over the masked rows in chunks; the model itself (state, export) is unchanged
            self.ddp_model = ChunkedHeadLoss(self.model, recipe.head_loss_chunk_rows)
        if self.dist.enabled:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.ddp_model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if recipe.compile:
            # the width of a micro-batch changes from step to step (padding trims to the longest row):
            # mark it dynamic from the start rather than recompile for each new width
            self.ddp_model = torch.compile(self.ddp_model, dynamic=True)
        self.metrics = MetricsLog(self.out, enabled=self.dist.main)
        self.metrics.truncate_after(self.step)
        self.bf16 = recipe.precision == "bf16" or (
            recipe.precision == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        for stage in self.plan.stages:
            uneven = [b for b in stage.batch_sizes if b % self.dist.world]
            if uneven:  # found now, not at the first such step hours in
                raise TrainingError(f"stage {stage.name}: global batch {uneven[0]} does not split over "
                                    f"{self.dist.world} processes; make batch_size (and batch_warmup's start and "
                                    "increment) multiples of the process count")
        self.micro_batches = {stage.index: self._micro_batch(stage) for stage in self.plan.stages}
        store_run.check_run(self.store, self.resolved, self.registries, self.plan, first=self.step,
                            last=self._last_step(), data=self.resumed_data, world=self.dist.world)

    def _open_store(self, keep_run: bool):
        """The recipe's prepared store (``data.store``), checked against the tokenizer the run will use; or None."""
        if not self.recipe.data.store:
            return None
        kept = self.out / "tokenizer"
        tokenizer = None  # a new run takes the store's own
        if keep_run and (kept / "tokenizer.json").exists():
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(kept)
        return store_run.open_for_run(self.recipe.data.store, self.resolved, self.registries, tokenizer)

    def _last_step(self) -> int:
        """The step this session stops before: the plan's end, or ``--max-steps``."""
        last = self.plan.total_steps
        return last if self.options.max_steps is None else min(last, self.options.max_steps)

    def _shard(self) -> tuple[int, int] | None:
        """(rank, world) when each rank reads its own part of the data (``data.shard_by_rank``)."""
        if not self.recipe.data.shard_by_rank or self.dist.world == 1:
            return None
        return self.dist.rank, self.dist.world

    def _micro_batch(self, stage: StagePlan) -> int:
        """Sequences per forward pass in this stage, on this rank (``micro_batch_size``)."""
        # host memory is rarely the limit, and a CPU run has no device figure to go by
        memory = torch.cuda.get_device_properties(self.device).total_memory if self.device.type == "cuda" else None
        choice = micro_batch_size(self.recipe, stage, gpus=self.dist.world, memory=memory,
                                  vocab_size=len(self.tokenizer), flash_attention=self.attn == "flash_attention_2")
        if self.dist.main and choice.peak:
            print(f"stage {stage.name}: micro-batch {choice.micro} of {choice.share} sequences per rank "
                  f"(estimated peak {choice.peak / 1e9:.1f} GB of {choice.memory / 1e9:.1f} GB)", flush=True)
        return choice.micro

    def _prepare_output(self) -> None:
        """Fail before any work when the run directory cannot be written."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / f".write-test-{self.dist.rank}"
            probe.write_bytes(b"0" * 4096)
            probe.unlink()
        except OSError as exc:
            raise TrainingError(f"cannot write to the run directory {self.out}: {exc.strerror or exc}") from None

    def _tokenizer(self):
        from transformers import AutoTokenizer

        saved = self.out / "tokenizer"
        exists = (saved / "tokenizer.json").exists()
        self.dist.barrier()  # every rank has looked before the main rank may write it
        if not exists:
            if self.dist.main:
                # all or nothing: a kill while saving leaves only the temp folder, replaced next time
                tmp = self.out / ".tmp-tokenizer"
                shutil.rmtree(tmp, ignore_errors=True)
                if self.store is not None:  # the store's ids come from its tokenizer
                    store_run.save_tokenizer(self.store, tmp)
                else:
                    component = self.resolved.component(self.registries, "tokenizer", self.recipe.tokenizer)
                    tok = component.build(texts=tokenizer_texts(self.recipe.data), vocab_size=None,
                                          language=self.recipe.metadata.language, segmenter=self.segmenter)
                    tok.save_pretrained(tmp)
                shutil.rmtree(saved, ignore_errors=True)
                os.replace(tmp, saved)
            self.dist.barrier()
        return AutoTokenizer.from_pretrained(saved)

    def _optimizer(self) -> torch.optim.Optimizer:
        optimizer = self.resolved.component(self.registries, "optimizer", self.recipe.optimizer)
        return optimizer.build(self.model, lr=self.recipe.stages[0].lr)

    def _load(self, found: ckpt.Checkpoint) -> None:
        model_state, optimizer_state, state = ckpt.load_checkpoint(found, map_location=self.device)
        stage = self.plan.stage_at(state["step"])
        # a stage may have changed RoPE thetas: make the module match before loading its weights
        set_rope_thetas(self.model, global_theta=stage.global_rope_theta, local_theta=stage.local_rope_theta)
        self.model.load_state_dict(model_state, strict=False)
        self.model.tie_weights()
        self.optimizer.load_state_dict(optimizer_state)
        self.step = state["step"]
        self.resumed_data = state["data"]
        torch.set_rng_state(torch.tensor(state["rng"]["torch"], dtype=torch.uint8))
        if self.dist.main:
            print(f"resumed from {found.path} at step {self.step} (stage {stage.name})", flush=True)

    # --- train -------------------------------------------------------------------

    def train(self) -> None:
        last = self._last_step()
        self._evaluate_missed()
        data = self.resumed_data  # where the documents stand; each stage hands its end state to the next
        for stage in self.plan.stages:
            end = min(stage.start + stage.steps, last)
            if self.step >= end:
                continue
            spec = self.recipe.stages[stage.index]
            context = self.resolved.component(self.registries, "context", spec.context)
            masking = self.resolved.component(self.registries, "masking", spec.masking)
            schedule = self.resolved.component(self.registries, "lr_schedule", spec.lr_schedule)
            steps = []
            for step in range(self.step, end):
                clock = self.plan.clock(step)
                steps.append(StepPlan(step, self.plan.batch_at(step), context.seq_len(clock), masking.rate(clock),
                                      stage.lr * schedule.multiplier(clock)))
            mixture = self._mixture(stage, steps)
            set_rope_thetas(self.model, global_theta=stage.global_rope_theta, local_theta=stage.local_rope_theta)
            if spec.reset_optimizer and self.step == stage.start:
                # Only at the stage's first step: a resume inside the stage keeps the stage's own moments.
                # A new optimizer from the recipe's component starts every count afresh, whatever the
                # optimizer keeps where (optimi's StableAdamW counts steps in its param groups, not its state).
                self.optimizer = self._optimizer()
            batches = self._batches(stage, masking, data, steps, mixture.schedule)
            try:
                data = self._train_stage(stage, steps, batches, mixture)
            finally:
                batches.close()

    def _mixture(self, stage: StagePlan, steps: list[StepPlan]) -> MixtureLog:
        """The stage's mixture: its probabilities at each of ``steps``, and what the metrics say of it."""
        mixture = stage_mixture(self.resolved, self.registries, stage.index)
        if mixture.needs_sizes() and self._sizes is None:
            self._sizes = source_sizes(self.recipe.data)
        names = list(self.streams)
        schedule = MixtureSchedule.build(mixture, (self.plan.clock(s.step) for s in steps), sources=names,
                                         sizes=self._sizes if mixture.needs_sizes() else None)
        return MixtureLog(mixture, schedule, names)

    def _train_stage(self, stage: StagePlan, steps: list[StepPlan], batches, mixture: MixtureLog) -> dict[str, Any]:
        """The stage's ``steps``; returns the data state after the last one (the next stage starts there)."""
        stage_end = stage.start + stage.steps
        progress = StageProgress(stage.name, stage.steps, self.step - stage.start,
                                 enabled=self.options.progress and self.dist.main)
        tokens, started, first = 0, time.perf_counter(), self.step
        data = None
        try:
            for plan in steps:
                for group in self.optimizer.param_groups:
                    group["lr"] = plan.lr
                batch = batches.next(step=plan.step, batch_size=plan.batch_size, seq_len=plan.seq_len,
                                     rate=plan.mask_rate)
                loss, grad_norm = self._optimizer_step(batch, self.micro_batches[stage.index], plan.step, stage)
                self.step = plan.step + 1
                tokens += batch.tokens
                mixture.add(getattr(batch, "sources", None))  # a prepared store's batches do not count sources

                elapsed = time.perf_counter() - started
                progress.update(loss=f"{loss:.3f}", tok_s=f"{tokens / elapsed:,.0f}", lr=f"{plan.lr:.2e}",
                                mask=f"{plan.mask_rate:.2f}", len=plan.seq_len)
                last_here = plan is steps[-1]  # the stage ends, or --max-steps stops the run here
                if self.step % self.recipe.log_every == 0 or last_here:
                    self.metrics.write({
                        "step": self.step, "stage": stage.name, "stage_step": self.step - stage.start,
                        "loss": loss, "lr": plan.lr, "mask_rate": plan.mask_rate, "seq_len": plan.seq_len,
                        "batch_size": plan.batch_size, "tokens_seen": self.plan.timeline.tokens_before(self.step),
                        "global_rope_theta": stage.global_rope_theta, "local_rope_theta": stage.local_rope_theta,
                        "tokens": batch.tokens, "tokens_per_s": tokens / elapsed, "grad_norm": float(grad_norm),
                        "eta_s": elapsed / (self.step - first) * (stage_end - self.step),
                        **mixture.line(self.plan.clock(plan.step)),
                    })
                stop = self.dist.any(self._signal is not None)  # a rank may have missed the signal
                if stop or self.step % self.recipe.checkpoint_every == 0 or last_here:
                    data = {"stage": stage.name, "stream": batches.state_after(plan.step)}
                    self._checkpoint(stage, data)
                if stop:
                    raise StopRequested(self.step)
                self._evaluate(stage, after_step=self.step)
        finally:
            progress.close()
        return data

    def _optimizer_step(self, batch: Batch, micro: int, step: int, stage: StagePlan) -> tuple[float, torch.Tensor]:
        """One optimizer step over this rank's share of the global batch, in micro-batches of ``micro``.

        The loss of every micro-batch is weighted by its share of the global
        batch's masked tokens (times the world size, since DDP averages), so
        the gradient equals that of one pass over the whole global batch, on
        any number of processes and micro-batches.
        """
        spec = self.recipe.stages[stage.index]
        if self.store is not None:
            # a store hands each rank only its own rows: the global batch's masked tokens (and tokens, for
            # the log) are summed across ranks, on the device, so each weight is the one a single process gives
            start, stop = 0, len(batch.input_ids)
            counts = self.dist.sum(torch.tensor([batch.masked, batch.tokens], dtype=torch.float64, device=self.device))
            total_masked = counts[0].clamp(min=1)
        else:
            start, stop = self.dist.share(len(batch.input_ids))
            total_masked = max(batch.masked, 1)
        # summed on the device: no host sync between micro-batches
        loss_sum = torch.zeros(1, dtype=torch.float64, device=self.device)
        bounds = range(start, stop, micro)
        for lo in bounds:
            part = batch.slice(lo, min(lo + micro, stop))
            last = lo == bounds[-1]
            sync = contextlib.nullcontext() if last or not self.dist.enabled else self.ddp_model.no_sync()
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
            with sync, autocast:
                out = self.ddp_model(**self._model_inputs(part, spec))
                if part.masked:
                    loss = out.loss * (part.masked / total_masked) * self.dist.world
                    loss_sum += out.loss.detach().double() * part.masked
                else:  # nothing to predict here, but DDP still needs every rank's backward
                    loss = out.logits.sum() * 0.0
                loss.backward()
        # the step's one CPU–GPU sync: a non-finite loss must skip the optimizer step
        loss = float(self.dist.sum(loss_sum) / total_masked)
        if self.store is not None:
            batch.tokens = int(counts[1])  # no new sync: the loss above waited for the step
        if not math.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            self.nan_skips += 1
            newest = ckpt.latest_complete(self.out / "checkpoints")
            where = f"at step {step} (stage {stage.name}); last good checkpoint: {newest.path if newest else 'none'}"
            if self.recipe.on_nan == "stop" or self.nan_skips > self.recipe.max_nan_skips:
                raise TrainingError(f"loss became {loss} {where}"
                                    + (f" ({self.nan_skips} batches skipped)" if self.nan_skips > 1 else ""))
            print(f"warning: loss became {loss} {where}; batch skipped ({self.nan_skips} so far)", flush=True)
            return loss, torch.tensor(float("nan"))
        clip = self.recipe.optimizer.grad_clip
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))  # read when logged
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, grad_norm.detach()

    def _model_inputs(self, part: Batch, spec) -> dict[str, Any]:
        """The model's keyword arguments for one micro-batch, on the device.

        With ``document_isolation`` the batch's document lengths become the
        model's own per-document attention inputs (cu_seqlens for
        FlashAttention 2, a block-diagonal mask for SDPA and eager).
        """
        inputs = {"input_ids": part.input_ids.to(self.device),
                  "attention_mask": part.attention_mask.to(self.device),
                  "labels": part.labels.to(self.device)}
        if not spec.document_isolation:
            return inputs
        return isolated_inputs(self.model, doc_lengths=part.doc_lengths,
                               restart_positions=spec.restart_positions, **inputs)

    def _batches(self, stage: StagePlan, masking, data: dict[str, Any] | None, steps: list[StepPlan],
                 mixture: MixtureSchedule):
        """The stage's batches, from where ``data`` says the documents stand.

        ``data`` is None for a fresh run, the state of this stage's checkpoint
        when a run resumes inside the stage, or the previous stage's end state:
        then the documents continue where that stage left them, and the
        sequences it had packed for its own length are dropped.
        """
        if self.store is not None:
            return store_run.run_batches(
                self.store, self.resolved, self.tokenizer, stage_index=stage.index, masking=masking,
                steps=[(s.step, s.batch_size, s.seq_len, s.mask_rate) for s in steps], data=data,
                rank=self.dist.rank, world=self.dist.world, workers=self.recipe.data_workers,
                prefetch=self.recipe.prefetch)
        spec = self.recipe.stages[stage.index]
        same_stage = data is not None and data["stage"] == stage.name
        pipeline = PipelineSpec(
            streams=self.streams,
            weights=mixture,
            mixture_seed=self.recipe.seed + stage.index,
            tokenizer=self.tokenizer, segmenter=self._segmenter_for(masking),
            packing=spec.packing, masking=masking, seed=self.recipe.seed,
            state=data["stream"] if same_stage else None,
            positions=stream_positions(data["stream"]["documents"]) if data is not None and not same_stage else None,
        )
        if self.recipe.data_workers == 0:
            return pipeline.build()
        schedule = [(s.step, s.batch_size, s.seq_len, s.mask_rate) for s in steps]
        return PrefetchedBatches(pipeline, schedule, depth=self.recipe.prefetch)

    def _segmenter_for(self, masking):
        if not masking.needs_words:
            return None
        name = masking.segmenter_name()
        return self.registries.word_segmenter(self.recipe.metadata.language, name) if name else self.segmenter

    def _checkpoint(self, stage: StagePlan, data: dict[str, Any]) -> None:
        if self.dist.main:
            state = {
                "step": self.step, "stage": stage.name, "recipe_hash": self.hash, "data": data,
                "rng": {"torch": torch.get_rng_state().tolist()},
                "versions": {"encoder_recipes": __version__, "torch": torch.__version__},
            }
            ckpt.save_checkpoint(self.out / "checkpoints", self.step, model_state=self.model.state_dict(),
                                 optimizer_state=self.optimizer.state_dict(), state=state,
                                 keep=self.recipe.keep_checkpoints)
        self.dist.barrier()

    # --- evaluation --------------------------------------------------------------

    def _evaluate_missed(self) -> None:
        """On resume: run the evaluation due at the checkpoint's step if a kill came between the two."""
        if self.step == 0:
            return
        log = self.out / "metrics.jsonl"
        done = {r["step"] for r in read_metrics(self.out) if r.get("event") == "eval"} if log.exists() else set()
        # the main rank's log decides: every rank must agree on whether to wait for the evaluation
        if self.dist.any(self.dist.main and self.step not in done):
            self._evaluate(self.plan.stage_at(self.step - 1), after_step=self.step)

    def _evaluate(self, stage: StagePlan, after_step: int) -> None:
        """Run the recipe's evaluators that are due after this step.

        Every rank takes part: a ``shardable`` evaluator scores each rank's
        share of its examples, any other runs on the main rank while the
        others wait, for at most the recipe's ``distributed_timeout_s``. An
        attempt is recorded before it starts (``eval/step_N.attempt``): an
        evaluation that raised, or that was started twice and never finished
        (the job was killed in it, by a watchdog or the out-of-memory killer),
        is skipped on resume with a warning, so a resume does not crash again
        at the same point.
        """
        due = [ev for ev in self.recipe.evaluators
               if (ev.every_steps and after_step % ev.every_steps == 0)
               or (ev.at_stage_end and after_step == stage.start + stage.steps)]
        if not due:
            return
        attempt = EvalAttempt(self.out / "eval", after_step) if self.dist.main else None
        skip = attempt.reason_to_skip() if attempt else None
        if self.dist.any(skip is not None):  # the main rank's record decides for every rank
            if attempt:
                print(f"warning: evaluation after step {after_step} skipped: {skip}; run it on the checkpoint "
                      f"with `encoder-recipes eval` once fixed", flush=True)
                self.metrics.write({"step": after_step, "stage": stage.name, "event": "eval_skipped", "reason": skip})
        else:
            from encoder_recipes.evaluation.runner import run_evaluators

            if attempt:
                attempt.start()
            self.model.eval()
            try:
                results = run_evaluators(due, trainer=self, stage=stage, step=after_step)
            except BaseException as exc:
                if attempt:
                    attempt.failed(exc)
                raise
            finally:
                self.model.train()
            if attempt:
                attempt.done()
                self.metrics.write({"step": after_step, "stage": stage.name, "event": "eval", **results})
        self.dist.barrier()

    # --- cleanup -----------------------------------------------------------------

    def cleanup(self) -> Path | None:
        """Export ``final/`` once every stage is done; close logs and the process group."""
        final = None
        try:
            if self.dist.main and self.step >= self.plan.total_steps:
                self.model.eval()
                summary = summarize(self, self.out / "final", time.perf_counter() - self.started)
                self.metrics.write(summary)
                final = export_model(self.model, self.tokenizer, self.out / "final",
                                     card=model_card(self.resolved, self.plan, self.out, summary=summary))
                _draw_report(self.out)
        finally:
            if self.metrics is not None:
                self.metrics.close()
            close_distributed()
        return final


class EvalAttempt:
    """The record of an evaluation in progress: ``eval/step_N.attempt`` (JSON), removed when it finishes."""

    #: starts of one evaluation that never finished before it is skipped (one retry: a kill may be unrelated)
    MAX_STARTS = 2

    def __init__(self, folder: Path, step: int) -> None:
        self.path = folder / f"step_{step:08d}.attempt"

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def reason_to_skip(self) -> str | None:
        record = self._read()
        if record.get("error"):
            return f"it failed before ({record['error']})"
        if record.get("starts", 0) >= self.MAX_STARTS:
            return f"it was started {record['starts']} times and never finished (killed while evaluating?)"
        return None

    def start(self) -> None:
        self._write({"starts": self._read().get("starts", 0) + 1})

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, Exception):  # a Ctrl-C is not the evaluator's fault
            self._write({**self._read(), "error": f"{type(exc).__name__}: {exc}"[:500]})

    def done(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.path)


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer):
    """SIGTERM and the first Ctrl-C ask for a checkpoint at the next step boundary; a second Ctrl-C interrupts."""
    def handler(signum, frame):
        if trainer._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer._signal = signum
        if trainer.dist is None or trainer.dist.main:
            print(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint "
                  "(Ctrl-C again to stop at once)", flush=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def train(resolved: ResolvedRecipe, registries: Registries, options: RunOptions) -> Path | None:
    trainer = Trainer(resolved, registries, options)
    try:
        with _stop_on_signals(trainer):
            trainer.setup()
            trainer.train()
    except BaseException:
        close_distributed()
        raise
    return trainer.cleanup()


def _draw_report(run_dir: Path) -> None:
    """Training curves and evaluation plots into RUN_DIR/report, when matplotlib is installed."""
    try:
        import matplotlib  # noqa: F401  (optional: the `plot` extra)
    except ImportError:
        return
    from encoder_recipes.evaluation.report import make_report

    make_report([run_dir], run_dir / "report")


def default_output(resolved: ResolvedRecipe) -> Path:
    name = resolved.recipe.metadata.name + (f"-{resolved.scale}" if resolved.scale else "")
    return Path(os.environ.get("ENCODER_RECIPES_RUNS", "runs")) / name
