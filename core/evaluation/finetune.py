"""Fine-tuning evaluation: sentence(-pair) classification and regression over a learning-rate × epochs grid.

The protocol of 001 §3.3 and 002 ("Evaluation"): fine-tune a fresh copy of
the pretrained encoder with a classification head for every combination of
learning rate and number of epochs (001: LR {5e-6, 1e-5, 2e-5, 3e-5, 5e-5,
1e-4} × epochs {1, 2, 3, 4, 5, 10}), train on the train split, score on the
validation split, and report the best validation score. Classification
reports accuracy; regression reports Pearson and Spearman correlation (the
best is chosen by Spearman, which 002 reports for JSTS).

The head is 002's: linear → GELU → linear on the embedding of the first
token (``[CLS]``), on top of the bare encoder (what ``AutoModel`` returns).
We use it rather than ``AutoModelForSequenceClassification`` for the reason
002 gives: the Auto classes bring a different head for every architecture,
so two models would not be compared on the same footing. The optimiser
follows Hugging Face's ``run_glue_no_trainer.py`` (001 §3.3 used a modified
copy): AdamW, linear decay to zero, no warm-up or weight decay by default.

Tasks:

* offline, from the sample corpus of the language (they show the machinery
  works; their figures are not the papers'): ``section`` — which help section
  (``swriter``, ``scalc``, ``sbasic``, …) a paragraph comes from (sentence
  classification); ``same_page`` — do two paragraphs come from one help page
  (sentence-pair classification); ``length`` — log of a paragraph's length in
  characters (regression). Fine-tuning trains on the corpus's ``train``
  split and scores on its ``validation`` pages.
* full scale, through ``datasets`` by name: JGLUE ``jsts`` (pair regression),
  ``jnli`` (pair, 3 classes), ``jcola`` (sentence, 2 classes) from
  ``shunk031/JGLUE``; CLUE ``afqmc``, ``ocnli`` (pairs) and ``tnews``,
  ``iflytek`` (sentences) from ``clue/clue``; or ``custom`` with your own
  ``dataset`` (a hub name or a local .jsonl/.csv/.parquet file), fields and problem.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Evaluator
from encoder_recipes.evaluation import offline_data
from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.embeddings import encoder_of
from encoder_recipes.evaluation.offline_data import Example


@dataclass(frozen=True)
class TaskSpec:
    """Where a full-scale task lives in ``datasets`` and how to read it."""

    dataset: str
    config: str | None
    text_fields: tuple[str, ...]
    label_field: str = "label"
    problem: Literal["classification", "regression"] = "classification"
    train_split: str = "train"
    eval_split: str = "validation"


#: Full-scale tasks by name (001 §3.3: JSTS, JNLI, JCoLA; CLUE for Chinese).
PRESETS: dict[str, TaskSpec] = {
    "jsts": TaskSpec("shunk031/JGLUE", "JSTS", ("sentence1", "sentence2"), problem="regression"),
    "jnli": TaskSpec("shunk031/JGLUE", "JNLI", ("sentence1", "sentence2")),
    "jcola": TaskSpec("shunk031/JGLUE", "JCoLA", ("sentence",)),
    "afqmc": TaskSpec("clue/clue", "afqmc", ("sentence1", "sentence2")),
    "ocnli": TaskSpec("clue/clue", "ocnli", ("sentence1", "sentence2")),
    "tnews": TaskSpec("clue/clue", "tnews", ("sentence",)),
    "iflytek": TaskSpec("clue/clue", "iflytek", ("sentence",)),
}
OFFLINE_TASKS = ("section", "same_page", "length")


class ClassificationHead(torch.nn.Module):
    """002's head: linear → GELU → linear on the first token's embedding."""

    def __init__(self, hidden_size: int, num_outputs: int) -> None:
        super().__init__()
        self.dense = torch.nn.Linear(hidden_size, hidden_size)
        self.act = torch.nn.GELU()
        self.out = torch.nn.Linear(hidden_size, num_outputs)

    def forward(self, first_token: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.dense(first_token)))


# --- metrics ------------------------------------------------------------------------


def pearson(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Pearson correlation; 0.0 when either side is constant (the correlation is undefined)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else 0.0


def average_ranks(values: np.ndarray | list[float]) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (as Spearman's ρ needs)."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Spearman's ρ: the Pearson correlation of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


# --- data ------------------------------------------------------------------------------


def examples_from_rows(rows: list[dict[str, Any]], spec: TaskSpec,
                       labels: list[Any] | None = None) -> tuple[list[Example], list[Any] | None]:
    """Examples of a ``datasets`` table; rows without a label (None, or -1 as in CLUE's test splits) are dropped.

    Classification labels that are not integers (``"entailment"``) are mapped
    to indices by ``labels`` (None: the sorted labels of these rows).
    """
    def usable(row: dict[str, Any]) -> bool:
        label = row.get(spec.label_field)
        return label is not None and not (spec.problem == "classification" and label == -1)

    rows = [r for r in rows if usable(r)]
    if spec.problem == "regression":
        return [Example(tuple(str(r[f]) for f in spec.text_fields), float(r[spec.label_field])) for r in rows], None
    values = [r[spec.label_field] for r in rows]
    if labels is None:
        labels = sorted(set(values)) if any(not isinstance(v, int) for v in values) else \
            list(range(max(values) + 1 if values else 0))
    index = {label: i for i, label in enumerate(labels)}
    return [Example(tuple(str(r[f]) for f in spec.text_fields), index[r[spec.label_field]])
            for r in rows if r[spec.label_field] in index], labels


# --- training -------------------------------------------------------------------------------


def _batches(examples: list[Example], tokenizer: Any, batch_size: int, max_length: int,
             order: list[int] | None = None):
    order = order if order is not None else list(range(len(examples)))
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start:start + batch_size]]
        columns = list(zip(*(e.texts for e in chunk)))
        enc = tokenizer(*[list(c) for c in columns], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt", return_token_type_ids=False)
        yield enc, torch.tensor([e.label for e in chunk])


def train_and_score(model: Any, tokenizer: Any, train: list[Example], evaluation: list[Example], *,
                    problem: str, num_outputs: int, lr: float, epochs: int, batch_size: int = 16,
                    max_length: int = 128, weight_decay: float = 0.0, warmup_ratio: float = 0.0,
                    seed: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """Fine-tune a copy of ``model``'s encoder plus a fresh head; return its validation scores.

    The pretrained model is left untouched, and the global random state too
    (a training run that evaluates must continue exactly as one that does not).
    """
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        encoder = copy.deepcopy(encoder_of(model)).to(device).train()
        head = ClassificationHead(encoder.config.hidden_size, num_outputs).to(device)
        params = [*encoder.parameters(), *head.parameters()]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        total = epochs * math.ceil(len(train) / batch_size)
        warmup = int(warmup_ratio * total)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
        shuffle = random.Random(seed)
        autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

        def outputs(enc: dict) -> torch.Tensor:
            with torch.autocast(**autocast):
                hidden = encoder(input_ids=enc["input_ids"].to(device),
                                 attention_mask=enc["attention_mask"].to(device)).last_hidden_state
                return head(hidden[:, 0]).float()

        for _ in range(epochs):
            order = list(range(len(train)))
            shuffle.shuffle(order)
            for enc, labels in _batches(train, tokenizer, batch_size, max_length, order):
                out, labels = outputs(enc), labels.to(device)
                if problem == "regression":
                    loss = torch.nn.functional.mse_loss(out.squeeze(-1), labels.float())
                else:
                    loss = torch.nn.functional.cross_entropy(out, labels.long())
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)

        encoder.eval()
        predictions, gold = [], []
        with torch.no_grad():
            for enc, labels in _batches(evaluation, tokenizer, batch_size, max_length):
                out = outputs(enc).cpu()
                predictions.extend(out.squeeze(-1).tolist() if problem == "regression" else out.argmax(-1).tolist())
                gold.extend(labels.tolist())
        del encoder, head, optimizer
    if problem == "regression":
        return {"pearson": pearson(predictions, gold), "spearman": spearman(predictions, gold)}
    return {"accuracy": float(np.mean(np.asarray(predictions) == np.asarray(gold)))}


class FinetuneEvaluator(Evaluator):
    """Fine-tune with a linear-GELU-linear head over an LR × epochs grid; best validation accuracy or Spearman."""

    name: ClassVar[str] = "finetune"

    class Params(Params):
        task: str = Field(
            "section",
            description="offline: section | same_page | length (sample corpus); full scale: jsts | jnli | jcola | "
                        "afqmc | ocnli | tnews | iflytek; or custom (dataset, text_fields, label_field, problem)")
        learning_rates: list[float] = Field(
            [3e-5, 1e-4], min_length=1, description="the LR grid (001: 5e-6, 1e-5, 2e-5, 3e-5, 5e-5, 1e-4)")
        epochs: list[int] = Field([1, 3], min_length=1, description="the epochs grid (001: 1, 2, 3, 4, 5, 10)")
        batch_size: int = Field(16, gt=0)
        max_length: int = Field(128, gt=2, description="tokens per input (HF run_glue default)")
        weight_decay: float = Field(0.0, ge=0)
        warmup_ratio: float = Field(0.0, ge=0, lt=1)
        max_train_examples: int | None = Field(512, gt=0, description="train examples used (None: all)")
        max_eval_examples: int | None = Field(512, gt=0, description="validation examples scored (None: all)")
        dataset: str | None = Field(None, description="task custom: a datasets name or a local file")
        dataset_config: str | None = None
        text_fields: list[str] = Field(["sentence"], min_length=1, max_length=2,
                                       description="task custom: one field (sentence) or two (pair)")
        label_field: str = "label"
        problem: Literal["classification", "regression"] = "classification"
        train_split: str = "train"
        eval_split: str = "validation"

    def task_data(self, language: str, rng: random.Random) -> tuple[list[Example], list[Example], str, int]:
        """(train, validation, problem, number of outputs) of the configured task."""
        p = self.params
        if p.task in OFFLINE_TASKS:
            train_rows = offline_data.sample_rows(language, "train")
            eval_rows = offline_data.sample_rows(language, "validation")
            if p.task == "section":
                train, labels = offline_data.section_task(train_rows)
                evaluation, _ = offline_data.section_task(eval_rows, labels)
                return train, evaluation, "classification", len(labels)
            if p.task == "same_page":
                n_train = p.max_train_examples or 4096
                return (offline_data.same_page_task(train_rows, n_train, rng),
                        offline_data.same_page_task(eval_rows, p.max_eval_examples or 4096, rng), "classification", 2)
            return offline_data.length_task(train_rows), offline_data.length_task(eval_rows), "regression", 1
        if p.task == "custom":
            if not p.dataset:
                raise ValueError("finetune task custom needs a dataset")
            spec = TaskSpec(p.dataset, p.dataset_config, tuple(p.text_fields), p.label_field, p.problem,
                            p.train_split, p.eval_split)
        elif p.task in PRESETS:
            spec = PRESETS[p.task]
        else:
            raise ValueError(f"unknown finetune task {p.task!r}; known: "
                             f"{', '.join([*OFFLINE_TASKS, *PRESETS, 'custom'])}")
        train, labels = examples_from_rows(offline_data.load_rows(spec.dataset, spec.config, spec.train_split), spec)
        evaluation, _ = examples_from_rows(offline_data.load_rows(spec.dataset, spec.config, spec.eval_split),
                                           spec, labels)
        return train, evaluation, spec.problem, 1 if spec.problem == "regression" else len(labels or [])

    def evaluate(self, *, model: Any, tokenizer: Any, context: EvalContext) -> dict[str, Any]:
        p = self.params
        rng = random.Random(context.seed)
        train, evaluation, problem, outputs = self.task_data(context.language, rng)
        if p.max_train_examples and len(train) > p.max_train_examples:
            train = rng.sample(train, p.max_train_examples)
        if p.max_eval_examples and len(evaluation) > p.max_eval_examples:
            evaluation = rng.sample(evaluation, p.max_eval_examples)
        if not train or not evaluation:
            raise ValueError(f"finetune task {p.task!r} has {len(train)} train and {len(evaluation)} validation examples")
        metric = "spearman" if problem == "regression" else "accuracy"
        grid = []
        for lr in p.learning_rates:
            for epochs in p.epochs:
                scores = train_and_score(model, tokenizer, train, evaluation, problem=problem, num_outputs=outputs,
                                         lr=lr, epochs=epochs, batch_size=p.batch_size, max_length=p.max_length,
                                         weight_decay=p.weight_decay, warmup_ratio=p.warmup_ratio,
                                         seed=context.seed, device=context.device)
                grid.append({"lr": lr, "epochs": epochs, **scores})
        best = max(grid, key=lambda g: g[metric])
        results: dict[str, Any] = {f"{p.task}/{k}": v for k, v in best.items() if k not in ("lr", "epochs")}
        results.update({f"{p.task}/best_lr": best["lr"], f"{p.task}/best_epochs": best["epochs"],
                        f"{p.task}/train_examples": len(train), f"{p.task}/eval_examples": len(evaluation)})
        if problem == "classification":
            # what always answering the most frequent validation label would score
            counts = np.bincount([int(e.label) for e in evaluation], minlength=outputs)
            results[f"{p.task}/majority_accuracy"] = float(counts.max() / counts.sum())
        details = {"task": p.task, "problem": problem, "metric": metric, "grid": grid}
        context.save_details(f"{self.name}_{p.task}", details)
        return {**results, "details": details}
