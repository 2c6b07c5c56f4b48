"""Nodes of an attribution graph.

A node is one of:
- **feature**: feature `index` of the dictionary at `site`, at position `pos` (or at every
  position at once when `pos` is None: the "summed over positions" node);
- **error**: the error term of the dictionary at `site`, at `pos` (or every position);
- **token**: the input embedding at `pos` (site `"embed"`);
- **logit**: the metric (site `"metric"`), the graph's output node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NodeKind = Literal["feature", "error", "token", "logit"]
METRIC_SITE = "metric"


@dataclass(frozen=True, order=True)
class Node:
    """Identity of a node (see the module docstring). Hashable; `id` is its stable string form."""

    kind: NodeKind
    site: str
    pos: int | None = None
    index: int | None = None

    @property
    def id(self) -> str:
        """Stable string id, e.g. `feature:blocks.1.hook_resid_post:5:123` (`*` = every position)."""
        pos = "*" if self.pos is None else str(self.pos)
        index = "" if self.index is None else f":{self.index}"
        return f"{self.kind}:{self.site}:{pos}{index}"

    @classmethod
    def from_id(cls, node_id: str) -> Node:
        """Inverse of `id`."""
        parts = node_id.split(":")
        kind, site, pos = parts[0], parts[1], parts[2]
        if kind not in ("feature", "error", "token", "logit"):
            raise ValueError(f"not a node id: {node_id!r}")
        index = int(parts[3]) if len(parts) > 3 else None
        return cls(kind, site, None if pos == "*" else int(pos), index)  # type: ignore[arg-type]


def feature(site: str, index: int, pos: int | None = None) -> Node:
    """A feature node."""
    return Node("feature", site, pos, index)


def error(site: str, pos: int | None = None) -> Node:
    """An error-term node."""
    return Node("error", site, pos)


def token(pos: int) -> Node:
    """A token-embedding node."""
    return Node("token", "embed", pos)


METRIC_NODE = Node("logit", METRIC_SITE)
