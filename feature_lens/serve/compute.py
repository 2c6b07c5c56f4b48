"""Typed prompt -> attribution graph, through the public engine (`PromptSet`, metrics, `attribute`).

The metric: with two answers, the logit difference `logit(first) - logit(second)` at the last
position; with one, its log-probability; with none, the log-probability of the model's own top
prediction. A corrupted prompt (same token length) becomes the baseline; without one the baseline
is zero. Each answer must be one token of the model's vocabulary.

All model work runs on one worker thread (`ModelWorker`): a Lens installs hooks on a shared model,
so two runs at once would see each other's hooks. Jobs report their stage while they run.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from feature_lens.attribution import METHODS, LogitDiff, LogProb, PromptSet, attribute
from feature_lens.errors import FeatureLensError, InputError
from feature_lens.graph import AttributionGraph
from feature_lens.lens import Lens, RunPlan
from feature_lens.serve.store import GraphMeta, GraphStore, TokenProb, now

T = TypeVar("T")
MAX_PROMPT_CHARS = 2000


class GraphRequest(BaseModel):
    """What the browser asks for (sizes bounded so one request cannot ask for unbounded work)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    corrupted: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    answers: list[str] = Field(default_factory=list, max_length=2)
    method: Literal["exact", "attribution", "ig", "direct"] = "attribution"
    max_nodes: int = Field(default=64, ge=1, le=512)


def single_token(lens: Lens, text: str) -> int:
    """The id of `text` as one token (InputError naming the text otherwise)."""
    tokenizer = lens.model.tokenizer
    if tokenizer is None:
        if text.isdigit() and int(text) < int(lens.model.cfg.d_vocab):
            return int(text)
        raise InputError(f"answer {text[:60]!r} must be a token id (the model has no tokenizer)")
    ids = lens.model.to_tokens(text, prepend_bos=False)[0]
    if ids.numel() != 1:
        raise InputError(
            f"answer {text[:60]!r} is {ids.numel()} tokens; give a single token (mind the leading "
            "space)"
        )
    return int(ids[0])


def top_outputs(lens: Lens, tokens: torch.Tensor, k: int = 10) -> list[TokenProb]:
    """The model's `k` most likely next tokens after `tokens` `[1, pos]`, with probabilities."""
    with torch.no_grad():
        logits = lens.forward(tokens, RunPlan(splice=False)).logits[0, -1].float()
    probs = torch.softmax(logits, -1)
    top = torch.topk(probs, min(k, probs.numel()))
    return [
        TokenProb(token=token_text(lens, int(i)), prob=float(p))
        for p, i in zip(top.values, top.indices, strict=True)
    ]


def token_text(lens: Lens, token_id: int) -> str:
    """One token as text (its id when the model has no tokenizer)."""
    if lens.model.tokenizer is None:
        return str(token_id)
    return str(lens.model.to_single_str_token(token_id))


def compute_graph(
    lens: Lens,
    request: GraphRequest,
    *,
    max_tokens: int,
    stage: Callable[[str], None] = lambda _s: None,
) -> tuple[AttributionGraph, GraphMeta]:
    """The graph of one typed prompt, and its metadata (see the module docstring)."""
    stage("tokenizing")
    tokens = lens.to_tokens(request.prompt)
    if tokens.shape[1] > max_tokens:
        raise InputError(
            f"the prompt is {tokens.shape[1]} tokens; the explorer takes at most {max_tokens} "
            "(start it with a larger --max-tokens)"
        )
    outputs = top_outputs(lens, tokens)
    answer_ids = [single_token(lens, a) for a in request.answers]
    if len(answer_ids) == 2:
        metric: Any = LogitDiff()
        label = f"logit {request.answers[0]!r} - logit {request.answers[1]!r}"
    elif len(answer_ids) == 1:
        metric = LogProb()
        label = f"log p({request.answers[0]!r})"
    else:
        with torch.no_grad():
            top = int(lens.forward(tokens, RunPlan(splice=False)).logits[0, -1].argmax())
        answer_ids = [top]
        metric = LogProb()
        label = f"log p({token_text(lens, top)!r})"
    corrupted = request.corrupted or None
    prompts = PromptSet.build(lens, tokens, corrupted, answers=[answer_ids])
    stage(f"{request.method}: nodes and edges")
    start = time.perf_counter()
    graph = attribute(
        lens,
        prompts,
        metric,
        method=request.method,
        max_nodes=request.max_nodes,
        progress=False,
    )
    seconds = time.perf_counter() - start
    table = graph.table
    row = graph.metric_row
    labels = list(table.label)
    labels[row] = label
    effect = table.effect.clone()
    # Without a corrupted prompt the metric has no baseline value (NaN), which JSON cannot hold;
    # the metric node's own "effect" is then undefined: store 0.
    if not math.isfinite(float(effect[row])):
        effect[row] = 0.0
    graph = graph.with_table(table.with_columns(label=labels, effect=effect))
    meta = GraphMeta(
        id="",
        prompt=request.prompt,
        corrupted=corrupted,
        answers=list(request.answers),
        method=request.method,
        metric=label,
        created=now(),
        seconds=seconds,
        outputs=outputs,
    )
    return graph, meta


@dataclass
class Job:
    """A graph being computed: its stage while it runs, then its graph id or its error."""

    id: str
    started: float
    stage: str = "queued"
    status: Literal["running", "done", "error"] = "running"
    graph_id: str | None = None
    error: str | None = None
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the browser (elapsed seconds included)."""
        end = self.finished if self.finished is not None else time.time()
        return {
            "id": self.id,
            "stage": self.stage,
            "status": self.status,
            "graph": self.graph_id,
            "error": self.error,
            "elapsed": round(end - self.started, 2),
        }


@dataclass
class ModelWorker:
    """Runs every piece of model work on one thread, and tracks graph jobs."""

    lens: Lens
    store: GraphStore
    max_tokens: int
    jobs: dict[str, Job] = field(default_factory=dict[str, Job])
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="feature-lens-model")
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run `fn` on the model thread."""
        return self._pool.submit(fn)

    def start_graph(self, request: GraphRequest) -> Job:
        """Queue a graph computation; poll the returned job."""
        if request.method not in METHODS:
            raise InputError(f"unknown method {request.method!r}")
        job = Job(uuid.uuid4().hex[:12], time.time())
        with self._lock:
            # Keep the last 100 jobs only.
            for old in list(self.jobs)[:-99]:
                del self.jobs[old]
            self.jobs[job.id] = job

        def stage(text: str) -> None:
            job.stage = text

        def run() -> None:
            try:
                graph, meta = compute_graph(
                    self.lens, request, max_tokens=self.max_tokens, stage=stage
                )
                stage("saving")
                job.graph_id = self.store.add(graph, meta)
                job.status = "done"
                job.stage = "done"
            except FeatureLensError as error:
                job.status, job.error = "error", str(error)
            except Exception as error:  # shown to the user, not swallowed: the job failed
                job.status, job.error = "error", f"{type(error).__name__}: {error}"
            finally:
                job.finished = time.time()

        self._pool.submit(run)
        return job

    def close(self) -> None:
        """Stop the worker thread after the work in hand."""
        self._pool.shutdown(wait=False, cancel_futures=True)
