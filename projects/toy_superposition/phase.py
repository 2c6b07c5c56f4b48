"""Two features in one dimension: the phase change of paper §4.

Feature 1 has importance 1, feature 2 importance ``r``; each is active with probability ``d = 1 - S``
and then uniform in ``[0, 1)``. A tied ReLU model with one hidden dimension, ``x' = ReLU(wwᵀx + b)``
with ``w ∈ R²``, has three candidate solutions:

- ``"first"``: ``w = (1, 0)``; feature 2 is predicted by its mean through the bias. Expected loss
  ``r · Var(x)`` with ``Var(x) = d/3 - d²/4``.
- ``"second"``: ``w = (0, 1)``; loss ``Var(x)``.
- ``"antipodal"``: ``w = (a, -c)`` (superposition). With ``a = c = 1, b = 0`` an error occurs only when
  both features fire, giving loss ``(1 + r) d² E[min(u, v)²] = (1 + r) d² / 6``; the optimum of the
  family is found numerically on the exact expected loss.

The exact expected loss of any ``(w, b)`` is computed by Gauss-Legendre quadrature over the four
cases (none, one, the other, both active). Losses here use the training loop's normalisation:
the mean over the two features, so each formula above is divided by 2.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.optimize import minimize

from projects.toy_superposition.models import ToyModel
from projects.toy_superposition.train import TrainConfig, sparse_sampler, train

Phase = Literal["first", "second", "antipodal", "other"]
PHASES: tuple[Phase, ...] = ("first", "second", "antipodal", "other")

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(160)
_U = (_NODES + 1) / 2  # nodes on [0, 1]
_WU = _WEIGHTS / 2


def variance(density: float) -> float:
    """Variance of one feature that is active with probability ``density``."""
    return density / 3 - density**2 / 4


def expected_loss(w: Sequence[float], b: Sequence[float], r: float, density: float) -> float:
    """Exact expected loss of ``x' = ReLU(wwᵀx + b)`` (mean over the two features)."""
    w_arr, b_arr = np.asarray(w, float), np.asarray(b, float)
    G = np.outer(w_arr, w_arr)
    imp = np.array([1.0, r])

    def err(x1: NDArray[np.float64], x2: NDArray[np.float64]) -> NDArray[np.float64]:
        x = np.stack(np.broadcast_arrays(x1, x2), axis=-1)
        y = np.maximum(x @ G.T + b_arr, 0.0)
        return ((x - y) ** 2 * imp).sum(axis=-1)

    zero = np.zeros(1)
    none = float(err(zero, zero)[0])
    one = float(_WU @ err(_U, np.zeros_like(_U)))
    other = float(_WU @ err(np.zeros_like(_U), _U))
    both = float(_WU @ err(_U[:, None], _U[None, :]) @ _WU)
    s = 1 - density
    total = s * s * none + s * density * (one + other) + density * density * both
    return total / 2


def closed_form_losses(r: float, density: float) -> dict[Phase, float]:
    """The candidate losses in closed form (antipodal at ``a = c = 1, b = 0``)."""
    v = variance(density)
    return {
        "first": r * v / 2,
        "second": v / 2,
        "antipodal": (1 + r) * density**2 / 6 / 2,
    }


def optimal_antipodal_loss(r: float, density: float) -> tuple[float, NDArray[np.float64]]:
    """Lowest expected loss over ``w = (a, -c)`` with ``a, c >= 0.5``, and ``b``.

    Returns ``(loss, [a, c, b1, b2])``.
    """

    def f(p: NDArray[np.float64]) -> float:
        return expected_loss([p[0], -p[1]], [p[2], p[3]], r, density)

    # Bounds keep both features represented (norm >= 0.5); otherwise the family slides into the
    # single-feature solutions, which are the other candidates.
    bounds = [(0.5, 1.5), (0.5, 1.5), (-1.0, 1.0), (-1.0, 1.0)]
    res = minimize(f, np.array([1.0, 1.0, 0.0, 0.0]), method="L-BFGS-B", bounds=bounds)
    return float(res.fun), res.x


def analytic_phase(r: float, density: float, optimise: bool = True) -> Phase:
    """The candidate with the lowest expected loss at ``(r, density)``."""
    losses = closed_form_losses(r, density)
    if optimise:
        losses["antipodal"] = min(losses["antipodal"], optimal_antipodal_loss(r, density)[0])
    return min(losses, key=losses.__getitem__)


def classify(W: torch.Tensor, threshold: float = 0.5) -> list[Phase]:
    """Phase of each instance from its weights ``[inst, 2, 1]``."""
    out: list[Phase] = []
    for w in W.detach().cpu():
        norms = w.norm(dim=-1)
        rep = (norms > threshold).tolist()
        if rep == [True, True] and float(w[0] @ w[1]) < 0:
            out.append("antipodal")
        elif rep == [True, False]:
            out.append("first")
        elif rep == [False, True]:
            out.append("second")
        else:
            out.append("other")
    return out


@dataclass
class EmpiricalPhases:
    """Trained phase per grid point, with the loss of the best seed and its weights."""

    phases: list[Phase]
    losses: torch.Tensor  # [n_points]
    W: torch.Tensor  # [n_points, 2, 1]
    b: torch.Tensor  # [n_points, 2]


def empirical_phases(
    importances: Sequence[float],
    densities: Sequence[float],
    cfg: TrainConfig,
    n_seeds: int = 2,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> EmpiricalPhases:
    """Train one 2-in-1 model per ``(importances[k], densities[k])`` (``n_seeds`` restarts each,
    all in one batched model), keep the restart with the lowest final loss, classify it."""
    if len(importances) != len(densities):
        raise ValueError(f"{len(importances)} importances but {len(densities)} densities")
    n = len(importances)
    r = torch.tensor(list(importances), dtype=torch.float32).repeat(n_seeds)
    d = torch.tensor(list(densities), dtype=torch.float32).repeat(n_seeds)
    k = n * n_seeds
    model = ToyModel(2, 1, k, seed=seed, device=device)
    imp = torch.stack([torch.ones_like(r), r], dim=-1).to(device)
    result = train(model, sparse_sampler(k, 2, 1 - d, device=device), imp, cfg)
    # Score each restart on a common large sample so the choice is not seed noise.
    gen = torch.Generator(device=device).manual_seed(seed + 12345)
    x, _ = sparse_sampler(k, 2, 1 - d, device=device)(16384, gen)
    with torch.no_grad():
        eval_loss = ((imp[:, None, :] * (x - model(x)) ** 2).mean(dim=(1, 2))).cpu()
    del result
    best = eval_loss.view(n_seeds, n).argmin(dim=0)
    idx = best * n + torch.arange(n)
    W = model.W_in.detach().cpu()[idx]
    assert model.b_out is not None
    b = model.b_out.detach().cpu()[idx]
    return EmpiricalPhases(classify(W), eval_loss[idx], W, b)
