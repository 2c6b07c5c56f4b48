"""The feature side panel's data, computed on demand with the dashboards' own functions.

For a feature: its top activating examples over the explorer's corpus (token-level activations),
the histogram of its positive activations, its direct logit effect (top and bottom tokens, through
the final LayerNorm's centring and gain and the unembedding), its strongest upstream and
downstream nodes in the current graph with their edge weights, and its strongest neighbours across
every layer on its top corpus prompts (the dashboards' `neighbours`: attribution patching upstream,
exact patching downstream). The corpus is the embedded model's
own text for the zoo, else the lines of `--corpus`, else the prompts typed so far.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from feature_lens.dashboard.data import (
    Dataset,
    FeatureData,
    feature_activations,
    feature_index,
    feature_label,
    logit_effects,
    page_data,
    prepare_dataset,
)
from feature_lens.dashboard.neighbours import Link, Neighbours
from feature_lens.dashboard.neighbours import neighbours as neighbours_on_corpus
from feature_lens.dashboard.page_stats import PageSpec, stats_of
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph
from feature_lens.graph.node import Node
from feature_lens.graph.node import feature as feature_node
from feature_lens.lens import Lens
from feature_lens.serve.view import neighbours, node_record


def top_token_labels(lens: Lens, features: Sequence[tuple[str, int]]) -> dict[str, str]:
    """`SITE:INDEX` -> the token a feature most promotes through the direct path, quoted."""
    ids = [feature_node(site, index) for site, index in features]
    effects = logit_effects(lens, ids, k=1, n_bins=2)
    return {feature_label(f): f"#{f.index} {effects[f].top[0][0]!r}" for f in ids if effects[f].top}


@dataclass
class FeaturePanels:
    """Panel data for features of `lens`, over a corpus fixed at the first request."""

    lens: Lens
    corpus: Callable[[], Sequence[str]]
    max_examples: int = 8
    _dataset: Dataset | None = None
    _cache: dict[Node, FeatureData] = field(default_factory=dict[Node, FeatureData])
    _links: dict[Node, Neighbours] = field(default_factory=dict[Node, Neighbours])

    def dataset(self) -> Dataset:
        """The tokenized corpus (built once)."""
        if self._dataset is None:
            texts = [t for t in self.corpus() if t.strip()]
            if not texts:
                raise InputError("no corpus for feature examples: start with --corpus FILE")
            self._dataset = prepare_dataset(self.lens, texts)
        return self._dataset

    def data(self, feature: Node) -> FeatureData:
        """Examples, histogram and logit effect of one feature (cached)."""
        if feature.site not in self.lens.dictionaries:
            raise InputError(f"{feature.site[:80]!r} is not a dictionary site of this Lens")
        d_sae = self.lens.dictionary(feature.site).d_sae
        if not 0 <= feature_index(feature) < d_sae:
            raise InputError(f"feature {feature.index} is out of range at {feature.site!r}")
        if feature not in self._cache:
            dataset = self.dataset()
            acts = feature_activations(self.lens, dataset, [feature])[feature]
            spec = PageSpec(n_top=self.max_examples, n_intervals=1)
            stats = stats_of(feature.site, feature_index(feature), acts, dataset.lengths, spec)
            data = page_data(dataset, feature, stats)
            effect = logit_effects(self.lens, [feature])[feature]
            data.top_logits, data.bottom_logits = effect.top, effect.bottom
            self._cache[feature] = data
            # Neighbours across every layer on the feature's top corpus prompts (the dashboards'
            # computation: attribution patching upstream, exact patching downstream).
            found = neighbours_on_corpus(
                self.lens, dataset, {feature: stats.strongest_prompts()}, n_prompts=4, k=8
            )
            self._links[feature] = found[feature]
        return self._cache[feature]

    def panel(
        self, feature: Node, graph: AttributionGraph | None, node_id: str | None
    ) -> dict[str, Any]:
        """The JSON the side panel shows."""
        data = self.data(feature)
        examples = [
            {"tokens": e.tokens, "acts": e.acts, "max": e.value, "at": e.pos - e.start}
            for e in (data.groups[0].examples if data.groups else [])
        ]
        up: list[dict[str, Any]] = []
        down: list[dict[str, Any]] = []
        if graph is not None and node_id is not None and node_record(graph, node_id) is not None:
            upstream, downstream = neighbours(graph, node_id)
            up = [{"id": n.id, "weight": w} for n, w in upstream]
            down = [{"id": n.id, "weight": w} for n, w in downstream]
        across = self._links.get(feature, Neighbours())
        return {
            "acrossUp": [_link(link) for link in across.upstream],
            "acrossDown": [_link(link) for link in across.downstream],
            "acrossPrompts": len(across.prompts),
            "feature": feature_label(feature),
            "site": feature.site,
            "index": feature.index,
            "density": data.density,
            "maxAct": data.max_act,
            "nTokens": data.n_tokens,
            "examples": examples,
            "hist": {"edges": data.hist_edges, "counts": data.hist_counts},
            "topLogits": [[t, v] for t, v in data.top_logits],
            "bottomLogits": [[t, v] for t, v in data.bottom_logits],
            "upstream": up,
            "downstream": down,
            "edgeMethod": graph.settings.get("edge_method", graph.method) if graph else None,
        }


def _link(link: Link) -> dict[str, Any]:
    """A corpus neighbour for the panel."""
    return {
        "kind": link.kind,
        "site": link.site,
        "index": link.index,
        "weight": link.weight,
        "method": link.method,
    }
