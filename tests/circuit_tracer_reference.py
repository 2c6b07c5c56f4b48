"""Run circuit-tracer's own `attribute` on a local model folder and transcoder set (reference).

Run with the Python of a virtual environment where circuit-tracer 0.5.0 is installed (never
imported by feature-lens or its tests directly):

    python tests/circuit_tracer_reference.py MODEL_FOLDER TRANSCODER_FOLDER TOKENS JOB [JOB ...]

TOKENS is a comma-separated list of token ids (BOS first). Each JOB is
`OUT[,MAX_FEATURE_NODES,BATCH_SIZE,NODE_THRESHOLD,EDGE_THRESHOLD,REPEATS]`, one graph on the same
model (loaded once): the options are passed to `attribute` (MAX_FEATURE_NODES `all` for every
active feature; default batch size 64) and to `prune_graph` (default 0.8 and 0.98); with
REPEATS > 1 `attribute` runs that many times and the fastest wall time is saved as `seconds`
(benchmarks/bench_circuit_tracer.py). circuit-tracer's
`ReplacementModel.from_pretrained_and_transcoders` only takes hub names, so its steps are repeated
here for a local GPT-2 folder: TransformerLens's GPT-2 config mapping and weight converter, the weights
loaded without LayerNorm folding or centring (as circuit-tracer loads them), then circuit-tracer's
replacement-model configuration. Writes OUT (safetensors): the dense adjacency (rows targets,
columns sources; nodes ordered features, errors layer by layer, tokens, logits), the active
features `[n, 3]` (layer, pos, index), the selected ones, the logit targets and probabilities,
and circuit-tracer's replacement and completeness scores.
"""

from __future__ import annotations

import sys
import time

import torch
from circuit_tracer.attribution.attribute import attribute
from circuit_tracer.graph import compute_graph_scores, prune_graph
from circuit_tracer.replacement_model.replacement_model_transformerlens import (
    TransformerLensReplacementModel,
)
from circuit_tracer.utils.caching import load_transcoders_from_cache
from safetensors.torch import save_file
from transformer_lens import HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast


def main(model_folder: str, transcoder_folder: str, tokens: str, *jobs: str) -> None:
    torch.set_grad_enabled(True)
    hf_model = GPT2LMHeadModel.from_pretrained(model_folder).eval()
    hf = hf_model.config
    # TransformerLens's GPT-2 config conversion, spelled out (its helper wants hf_config.n_ctx,
    # which transformers 4.57 configs no longer carry).
    cfg = HookedTransformerConfig(
        d_model=hf.n_embd,
        d_head=hf.n_embd // hf.n_head,
        n_heads=hf.n_head,
        d_mlp=4 * hf.n_embd,
        n_layers=hf.n_layer,
        n_ctx=hf.n_positions,
        eps=hf.layer_norm_epsilon,
        d_vocab=hf.vocab_size,
        act_fn=hf.activation_function,
        use_attn_scale=True,
        scale_attn_by_inverse_layer_idx=hf.scale_attn_by_inverse_layer_idx,
        normalization_type="LN",
        original_architecture="GPT2LMHeadModel",
        model_name=model_folder.rstrip("/").rsplit("/", 1)[-1],
        dtype=torch.float32,
    )
    # The folder's tokenizer.json, read directly: its tokenizer_config.json may name a class of a
    # newer transformers than circuit-tracer allows. Only `decode` is used (for labels).
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=f"{model_folder}/tokenizer.json", bos_token="<bos>", unk_token="<unk>"
    )
    model = TransformerLensReplacementModel(cfg)
    model.tokenizer = tokenizer  # set afterwards: TransformerLens would reload it by name
    model.load_and_process_state_dict(
        convert_gpt2_weights(hf_model, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
    )
    # circuit-tracer's offline route: a set read from CIRCUIT_TRACER_CACHE_DIR/<ref>/; here the
    # folder itself is the cache entry.
    transcoders, _ = load_transcoders_from_cache(
        transcoder_folder.rsplit("/", 1)[-1],
        cache_dir=transcoder_folder.rsplit("/", 1)[0],
        device=torch.device("cpu"),
        dtype=torch.float32,
        lazy_decoder=False,
    )
    model._configure_replacement_model(transcoders)
    ids = torch.tensor([int(t) for t in tokens.split(",")])
    for job in jobs:
        run_job(model, ids, *job.split(","))


def run_job(
    model: TransformerLensReplacementModel,
    ids: torch.Tensor,
    out: str,
    max_feature_nodes: str = "all",
    batch_size: str = "64",
    node_threshold: str = "0.8",
    edge_threshold: str = "0.98",
    repeats: str = "1",
) -> None:
    """One graph: `attribute` (best of `repeats`), its pruning and scores, saved to `out`."""
    best = float("inf")
    for _ in range(int(repeats)):
        start = time.perf_counter()
        graph = attribute(
            ids,
            model,
            max_n_logits=10,
            desired_logit_prob=0.95,
            batch_size=int(batch_size),
            max_feature_nodes=None if max_feature_nodes == "all" else int(max_feature_nodes),
        )
        best = min(best, time.perf_counter() - start)
    pruned = prune_graph(graph, float(node_threshold), float(edge_threshold))
    save_file(
        {
            "adjacency": graph.adjacency_matrix.contiguous(),
            "active_features": graph.active_features.contiguous(),
            "activation_values": graph.activation_values.float().contiguous(),
            "selected_features": graph.selected_features.contiguous(),
            "logit_ids": torch.tensor([t.vocab_idx for t in graph.logit_targets]),
            "logit_probabilities": graph.logit_probabilities.float().contiguous(),
            "scores": torch.tensor(compute_graph_scores(graph), dtype=torch.float64),
            "node_mask": pruned.node_mask.contiguous(),
            "edge_mask": pruned.edge_mask.contiguous(),
            "seconds": torch.tensor(best, dtype=torch.float64),
        },
        out,
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
