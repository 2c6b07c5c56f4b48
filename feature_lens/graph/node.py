"""Nodes of an attribution graph: one identity, a typed record of fields.

A node is one of:
- **feature**: feature `index` of the dictionary at `site`, at position `pos` (or at every
  position at once when `pos` is None: the "summed over positions" node);
- **error**: the error term of the dictionary at `site`, at `pos` (or every position);
- **token**: the input embedding at `pos` (site `"embed"`);
- **logit**: the metric (site `"metric"`), the graph's output node.

A node's `id` is derived from its fields for display and JSON keys; it is never parsed back (site
names may contain `:`, e.g. `blocks.0.hook_resid_post:directions`). Code that needs a node's fields
reads them from the `Node` (or from a graph's node table), not from its id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from feature_lens.errors import InputError

NodeKind = Literal["feature", "error", "token", "logit"]
NODE_KINDS: tuple[NodeKind, ...] = ("feature", "error", "token", "logit")
METRIC_SITE = "metric"
EMBED_SITE = "embed"  # equal to feature_lens.lens.EMBED_SITE (the graph does not import the Lens)
CLUSTER_SITE = "cluster"
"""Site of a cluster's super-node (`feature_lens.clustering.collapse`); its `index` is the cluster."""


@dataclass(frozen=True, order=True, slots=True)
class Node:
    """Identity of a node (see the module docstring). Hashable and ordered by its fields."""

    kind: NodeKind
    site: str
    pos: int | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in NODE_KINDS:
            raise InputError(f"node kind must be one of {NODE_KINDS}, got {self.kind!r}")
        if self.pos is not None and self.pos < 0:
            raise InputError(
                f"node position must be >= 0 (or None for every position), got {self.pos}"
            )

    @property
    def id(self) -> str:
        """Display/JSON id, e.g. `feature:blocks.1.hook_resid_post:5:123` (`*` = every position);
        a cluster super-node is `cluster:<k>`. Derived from the fields, never parsed back."""
        if self.site == CLUSTER_SITE and self.index is not None:
            return f"cluster:{self.index}"
        pos = "*" if self.pos is None else str(self.pos)
        index = "" if self.index is None else f":{self.index}"
        return f"{self.kind}:{self.site}:{pos}{index}"

    @property
    def writes_to(self) -> str:
        """The site whose output this node is part of: the embedding site for tokens, the node's
        own site otherwise (the metric node writes nowhere; its site is `"metric"`)."""
        return EMBED_SITE if self.kind == "token" else self.site


def feature(site: str, index: int, pos: int | None = None) -> Node:
    """A feature node."""
    return Node("feature", site, pos, index)


def error(site: str, pos: int | None = None) -> Node:
    """An error-term node."""
    return Node("error", site, pos)


def token(pos: int) -> Node:
    """A token-embedding node."""
    return Node("token", EMBED_SITE, pos)


def cluster(k: int) -> Node:
    """The super-node of cluster `k` in a collapsed graph."""
    return Node("feature", CLUSTER_SITE, None, k)


METRIC_NODE = Node("logit", METRIC_SITE)
