"""Single-feature activations of a stored run, and the seed's ordering of them for plotting.

A record written by ``store.make_record`` keeps the final encoder exactly (float32) and the run's
seed; the fixed embedding is redrawn from that seed exactly as ``data.TaskData`` draws it, so the
(N features, k neurons) response matrix of the trained model is recovered from the JSON alone.

The seed's single-feature activation plot (``sfa_plot`` in the original plotting helper) shows the
responses as a (neurons x features) image with the neurons sorted from most to least
monosemantic (largest response over mean response, descending) and then the features sorted by the
position of the neuron each one drives most strongly, so monosemantic neurons form a diagonal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from projects.engineering_monosemanticity.data import make_embedder
from projects.engineering_monosemanticity.model import make_nonlinearity
from projects.engineering_monosemanticity.store import decode_tensors


def record_embedder(record: dict[str, Any]) -> Float[Tensor, "m N"]:
    """The run's fixed input embedding, redrawn from its seed as ``TaskData`` draws it."""
    config = record["config"]
    generator = torch.Generator().manual_seed(int(config["seed"]))
    return make_embedder(int(config["N"]), int(config["m"]), generator)


def record_activations(record: dict[str, Any]) -> Float[Tensor, "N k"]:
    """Hidden activations of the final model for each feature alone at value 1 (row i = feature i).

    Raises:
        ValueError: the record predates stored encoders (rerun it, or train with
            ``--save_weights`` and use the ``.pt`` file).
    """
    if "final_encoder" not in record:
        raise ValueError(
            f"run {record.get('path', '?')} has no stored encoder (written before encoders were "
            "kept); rerun it to draw its single-feature activations"
        )
    encoder = decode_tensors(record["final_encoder"])
    embedder = record_embedder(record)
    act = make_nonlinearity(record["config"]["nonlinearity"])
    with torch.no_grad():
        return act(embedder.T @ encoder["weight"].T + encoder["bias"])


def sfa_image(responses: Float[Tensor, "N k"]) -> np.ndarray:
    """The seed's plotting order: a (k neurons, N features) array, diagonal-first.

    Neurons are sorted by ``max / (1e-10 + mean)`` over features, descending; features are then
    sorted (stably) by the index, in that order, of the neuron each one activates most.
    """
    image = responses.T.detach().cpu().numpy().astype(np.float64)  # (k, N)
    score = image.max(axis=1) / (1e-10 + image.mean(axis=1))
    image = image[np.argsort(-score, kind="stable")]
    strongest = np.argmax(image, axis=0)  # per feature: its strongest neuron's sorted position
    return image[:, np.argsort(strongest, kind="stable")]
