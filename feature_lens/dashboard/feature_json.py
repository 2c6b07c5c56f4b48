"""A feature's dashboard data as the feature JSON that circuit-tracer's viewer (and Neuronpedia's
graph pages) read next to a graph: `features/<transcoder_id>/<index>.json`.

Mapping from `FeatureData`:
- `examples_quantiles`: one entry per example group ("Top activations", then the interval groups),
  each example its window of tokens with their activations; `train_token_ind` is the example's
  maximum within the window (the token the example was picked for);
- `histogram` / `act_min` / `act_max`: the dashboard's histogram of positive activations, its bin
  counts over `[act_min, act_max]` (the viewer draws the bars and places the node's activation);
- `quantile_values`: the 1st, 2nd, ..., 100th percentile of the feature's positive activations
  over the corpus (the viewer reports "<k>pct" for a node's activation from these), each within
  `act_max / 131,072` of the exact value (`feature_lens.dashboard.page_stats`);
- `activation_frequency`: the fraction of real tokens on which the feature fires (the density);
- `top_logits` / `bottom_logits`: the tokens of the top and bottom logit effects.
"""

from __future__ import annotations

from pydantic import BaseModel

from feature_lens.dashboard.data import FeatureData, feature_index


class FeatureExample(BaseModel):
    """One example: a window of tokens and the feature's activation on each."""

    tokens_acts_list: list[float]
    train_token_ind: int
    is_repeated_datapoint: bool = False
    tokens: list[str]


class ExamplesQuantile(BaseModel):
    """A named group of examples."""

    quantile_name: str
    examples: list[FeatureExample]


class FeatureJson(BaseModel):
    """The whole file."""

    transcoder_id: str
    index: int
    examples_quantiles: list[ExamplesQuantile]
    top_logits: list[str]
    bottom_logits: list[str]
    act_min: float
    act_max: float
    quantile_values: list[float]
    histogram: list[float]
    activation_frequency: float


def to_feature_json(data: FeatureData) -> FeatureJson:
    """`data` in the viewer's feature format."""
    groups = [
        ExamplesQuantile(
            quantile_name=group.title,
            examples=[
                FeatureExample(
                    tokens_acts_list=list(example.acts),
                    train_token_ind=example.pos - example.start,
                    tokens=list(example.tokens),
                )
                for example in group.examples
            ],
        )
        for group in data.groups
    ]
    return FeatureJson(
        transcoder_id=data.feature.site,
        index=feature_index(data.feature),
        examples_quantiles=groups,
        top_logits=[token for token, _ in data.top_logits],
        bottom_logits=[token for token, _ in data.bottom_logits],
        act_min=float(data.hist_edges[0]) if data.hist_edges else 0.0,
        act_max=float(data.max_act),
        quantile_values=list(data.percentiles),
        histogram=[float(c) for c in data.hist_counts],
        activation_frequency=data.density,
    )
