"""Interactive (plotly) views of training, and convex hulls of feature directions (FeatureFinding).

- :func:`weights_history_figure`: 2-D feature directions at each logged step, with a slider.
- :func:`eigenvalue_histogram_figure`: Hessian eigenvalue histograms over training, with a slider,
  on shared bins (:func:`.hessian.eigenvalue_histograms`).
- :func:`convex_hull_vertices` and :func:`polyhedron_figure`: which features sit on the convex
  hull of a 3-D (or 2-D) embedding, and the hull drawn as a polyhedron.

Figures are ``plotly.graph_objects.Figure``; ``fig.write_html(path, include_plotlyjs=True)`` makes a
self-contained page.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go  # type: ignore[import-untyped]
import torch
from scipy.spatial import ConvexHull  # type: ignore[import-untyped]
from torch import Tensor

from projects.toy_superposition.hessian import eigenvalue_histograms


def _slider(labels: Sequence[str], prefix: str) -> dict[str, Any]:
    steps = []
    for i, lab in enumerate(labels):
        visible = [j == i for j in range(len(labels))]
        steps.append({"args": [{"visible": visible}], "label": lab, "method": "restyle"})
    return {"active": 0, "currentvalue": {"prefix": prefix}, "steps": steps}


def weights_history_figure(history: Sequence[Tensor], steps: Sequence[int]) -> Any:
    """One trace per logged step (only the first visible): feature ``i`` at ``history[t][i]``
    (each ``[n_features, 2]``) as a labelled point with a line from the origin."""
    if len(history) != len(steps) or not history:
        raise ValueError(f"need one step per snapshot, got {len(history)} and {len(steps)}")
    fig = go.Figure()
    lim = 1.1 * max(float(W.abs().max()) for W in history) + 1e-9
    for t, W in enumerate(history):
        if W.ndim != 2 or W.shape[1] != 2:
            raise ValueError(f"snapshots must be [n_features, 2], got {tuple(W.shape)}")
        Wn = W.detach().cpu().double().numpy()
        xs: list[float | None] = []
        ys: list[float | None] = []
        for x, y in Wn:
            xs += [0.0, float(x), None]
            ys += [0.0, float(y), None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                visible=t == 0,
                name=f"step {steps[t]}",
                hovertext=[f"feature {i}" for i in range(len(Wn)) for _ in range(3)],
            )
        )
    fig.update_layout(
        sliders=[_slider([str(s) for s in steps], "step: ")],
        xaxis={"range": [-lim, lim]},
        yaxis={"range": [-lim, lim], "scaleanchor": "x"},
        width=650,
        height=650,
        showlegend=False,
    )
    return fig


def eigenvalue_histogram_figure(eigenvalues: dict[int, Tensor], bins: int = 50) -> Any:
    """Histogram of the Hessian's eigenvalues per step, one slider frame per step."""
    edges, counts = eigenvalue_histograms(eigenvalues, bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    fig = go.Figure()
    for i, step in enumerate(eigenvalues):
        fig.add_trace(go.Bar(x=centres, y=counts[i], visible=i == 0, name=f"step {step}"))
    fig.update_layout(
        sliders=[_slider([str(s) for s in eigenvalues], "step: ")],
        xaxis={"title": "eigenvalue", "range": [float(edges[0]), float(edges[-1])]},
        yaxis={"title": "count", "range": [0, int(counts.max())]},
        width=750,
        height=500,
    )
    return fig


def convex_hull_vertices(points: Tensor | np.ndarray) -> list[int]:
    """Sorted indices of the points that are vertices of their convex hull (2-D or 3-D)."""
    p = np.asarray(points.detach().cpu() if isinstance(points, Tensor) else points, dtype=float)
    if p.ndim != 2 or p.shape[1] not in (2, 3) or p.shape[0] <= p.shape[1]:
        raise ValueError(f"need more than d points of dimension d = 2 or 3, got {p.shape}")
    return sorted(int(i) for i in ConvexHull(p).vertices)


def polyhedron_figure(points: Tensor | np.ndarray, labels: bool = True) -> Any:
    """The convex hull of 3-D feature directions as a translucent polyhedron, hull vertices
    labelled by feature index, interior features as grey points."""
    p = np.asarray(points.detach().cpu() if isinstance(points, Tensor) else points, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"polyhedron_figure needs [n, 3] points, got {p.shape}")
    hull = ConvexHull(p)
    i, j, k = hull.simplices.T
    fig = go.Figure(
        go.Mesh3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], i=i, j=j, k=k, opacity=0.35, color="lightpink")
    )
    on = {int(v) for v in hull.vertices}
    idx = list(range(len(p)))
    fig.add_trace(
        go.Scatter3d(
            x=p[:, 0],
            y=p[:, 1],
            z=p[:, 2],
            mode="markers+text" if labels else "markers",
            text=[str(t) for t in idx],
            marker={"size": 4, "color": ["#1f77b4" if t in on else "#999999" for t in idx]},
        )
    )
    fig.update_layout(scene={"aspectmode": "data"}, width=700, height=650, showlegend=False)
    return fig


def to_numpy(t: Tensor) -> np.ndarray:
    """``t`` as a float64 numpy array (detached, on the CPU)."""
    return torch.as_tensor(t).detach().cpu().double().numpy()
