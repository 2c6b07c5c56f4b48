"""The toy model: Linear(m -> k) + nonlinearity + Linear(k -> out, no bias).

``out`` is N for the autoencoder and abs tasks and m for the re-projector. ``SoLU`` here is
``x * exp(x)``, exactly as in the original code (not the softmax-normalised SoLU of Elhage et al.).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from projects.engineering_monosemanticity.config import RunConfig


class SoLU(nn.Module):
    """``x * exp(x)``, the original code's "SoLU"."""

    def forward(self, x: Tensor) -> Tensor:
        """Elementwise ``x * exp(x)``."""
        return x * torch.exp(x)


def make_nonlinearity(name: str) -> nn.Module:
    """The activation module named ``ReLU``, ``GeLU`` or ``SoLU``."""
    table: dict[str, type[nn.Module]] = {"ReLU": nn.ReLU, "GeLU": nn.GELU, "SoLU": SoLU}
    if name not in table:
        raise ValueError(f"nonlinearity={name!r} is not one of {sorted(table)}")
    return table[name]()


class ToyModel(nn.Module):
    """One hidden layer of k neurons between an m-dim input and an ``out``-dim output."""

    def __init__(
        self, m: int, k: int, out: int, nonlinearity: str = "ReLU", initial_bias: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = nn.Linear(m, k, bias=True)
        self.act = make_nonlinearity(nonlinearity)
        self.decoder = nn.Linear(k, out, bias=False)
        with torch.no_grad():
            # Offset, not replace: the default uniform init is kept around the offset.
            self.encoder.bias.add_(initial_bias)

    @classmethod
    def from_config(cls, config: RunConfig) -> ToyModel:
        """The model a run of ``config`` trains (initialised from the global torch RNG)."""
        return cls(config.m, config.k, config.output_dim, config.nonlinearity, config.initial_bias)

    def activations(self, x: Float[Tensor, "batch m"]) -> Float[Tensor, "batch k"]:
        """Hidden-neuron activations (after the nonlinearity)."""
        return self.act(self.encoder(x))

    def forward(self, x: Float[Tensor, "batch m"]) -> Float[Tensor, "batch out"]:
        """Model output."""
        return self.decoder(self.activations(x))
