"""Batched toy models: many independent instances trained at once, one per setting.

The paper's model is ``h = W x``, ``x' = ReLU(Wᵀ W x + b)``. :class:`Net` generalises it the way the
FeatureFinding repository does:

    h  = act_h(x @ W_in + b_in)                 # [inst, batch, n_hidden]
    h  = h + act(h @ W1 + c1) @ W2 + c2         # ResNet only, once per residual block
    y  = act_out(h @ W_out + b_out)             # W_out = W_inᵀ when tied

Weights are stored with the *feature* axis first: ``W_in[k, i]`` is feature ``i``'s direction in
instance ``k``'s hidden space (the paper's column ``W_i``). ``output_act="softmax"`` returns logits;
the training loop applies cross-entropy.
"""

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

Activation = Literal["linear", "relu", "gelu"]
OutputActivation = Literal["linear", "relu", "gelu", "softmax"]


@dataclass(frozen=True)
class NetConfig:
    """Shape and options of a batched :class:`Net` (``n_outputs=None`` means ``n_features``)."""

    n_features: int
    n_hidden: int
    n_instances: int = 1
    n_outputs: int | None = None
    tied: bool = True
    hidden_bias: bool = False
    output_bias: bool = True
    hidden_act: Activation = "linear"
    output_act: OutputActivation = "relu"
    # ResNet only
    n_blocks: int = 0
    d_mlp: int = 0
    tied_mlp: bool = False

    @property
    def d_out(self) -> int:
        """Number of outputs."""
        return self.n_features if self.n_outputs is None else self.n_outputs

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for JSON settings files)."""
        return asdict(self)


def _activate(x: Tensor, kind: str) -> Tensor:
    if kind in ("linear", "softmax"):
        return x
    if kind == "relu":
        return F.relu(x)
    if kind == "gelu":
        return F.gelu(x)
    raise ValueError(f"unknown activation {kind!r}; use linear, relu, gelu or softmax")


def _xavier(
    n_instances: int, fan_in: int, fan_out: int, gen: torch.Generator, device: Any
) -> Tensor:
    std = (2.0 / (fan_in + fan_out)) ** 0.5
    return torch.randn(n_instances, fan_in, fan_out, generator=gen, device=device) * std


class Net(nn.Module):
    """One-hidden-layer toy network, batched over ``cfg.n_instances`` independent instances."""

    def __init__(self, cfg: NetConfig, seed: int = 0, device: torch.device | str = "cpu") -> None:
        super().__init__()
        if cfg.tied and cfg.d_out != cfg.n_features:
            raise ValueError(
                f"tied weights need n_outputs == n_features, got {cfg.d_out} != {cfg.n_features}; "
                "set tied=False"
            )
        self.cfg = cfg
        gen = torch.Generator(device=device).manual_seed(seed)
        k, n, m = cfg.n_instances, cfg.n_features, cfg.n_hidden
        self.W_in = nn.Parameter(_xavier(k, n, m, gen, device))
        self.W_out = None if cfg.tied else nn.Parameter(_xavier(k, m, cfg.d_out, gen, device))
        self.b_in = nn.Parameter(torch.zeros(k, m, device=device)) if cfg.hidden_bias else None
        self.b_out = (
            nn.Parameter(torch.zeros(k, cfg.d_out, device=device)) if cfg.output_bias else None
        )

    @property
    def unembed(self) -> Tensor:
        """Output weights ``[inst, n_hidden, d_out]`` (``W_inᵀ`` when tied)."""
        return self.W_in.transpose(1, 2) if self.W_out is None else self.W_out

    def hidden(self, x: Tensor) -> Tensor:
        """Hidden activations ``[inst, batch, n_hidden]`` for inputs ``[inst, batch, n_features]``."""
        h = torch.einsum("kbn,knm->kbm", x, self.W_in)
        if self.b_in is not None:
            h = h + self.b_in[:, None, :]
        return _activate(h, self.cfg.hidden_act)

    def readout(self, h: Tensor) -> Tensor:
        """Outputs (or logits, for softmax) ``[inst, batch, d_out]`` from hidden activations."""
        y = torch.einsum("kbm,kmo->kbo", h, self.unembed)
        if self.b_out is not None:
            y = y + self.b_out[:, None, :]
        return _activate(y, self.cfg.output_act)

    def forward(self, x: Tensor) -> Tensor:
        """``[inst, batch, n_features] -> [inst, batch, d_out]``."""
        return self.readout(self.hidden(x))


class ToyModel(Net):
    """The paper's model ``x' = ReLU(WᵀWx + b)`` (tied, output bias); ``output_act`` may vary."""

    def __init__(
        self,
        n_features: int,
        n_hidden: int,
        n_instances: int = 1,
        output_act: OutputActivation = "relu",
        bias: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        cfg = NetConfig(
            n_features, n_hidden, n_instances, output_act=output_act, output_bias=bias, tied=True
        )
        super().__init__(cfg, seed=seed, device=device)


class ResNet(Net):
    """:class:`Net` with ``cfg.n_blocks`` residual MLP blocks acting on the hidden layer.

    Each block adds ``ReLU(h W1 + c1) W2 + c2`` to ``h``; with ``tied_mlp`` ``W2 = W1ᵀ``.
    """

    def __init__(self, cfg: NetConfig, seed: int = 0, device: torch.device | str = "cpu") -> None:
        if cfg.n_blocks < 1 or cfg.d_mlp < 1:
            raise ValueError(
                f"ResNet needs n_blocks >= 1 and d_mlp >= 1, got {cfg.n_blocks}, {cfg.d_mlp}"
            )
        super().__init__(cfg, seed=seed, device=device)
        gen = torch.Generator(device=device).manual_seed(seed + 1)
        k, m, d = cfg.n_instances, cfg.n_hidden, cfg.d_mlp
        self.W1 = nn.ParameterList(
            [nn.Parameter(_xavier(k, m, d, gen, device)) for _ in range(cfg.n_blocks)]
        )
        self.c1 = nn.ParameterList(
            [nn.Parameter(torch.zeros(k, d, device=device)) for _ in range(cfg.n_blocks)]
        )
        self.c2 = nn.ParameterList(
            [nn.Parameter(torch.zeros(k, m, device=device)) for _ in range(cfg.n_blocks)]
        )
        self.W2 = (
            None
            if cfg.tied_mlp
            else nn.ParameterList(
                [nn.Parameter(_xavier(k, d, m, gen, device)) for _ in range(cfg.n_blocks)]
            )
        )

    def hidden(self, x: Tensor) -> Tensor:
        """Hidden activations after the embedding and every residual block."""
        h = super().hidden(x)
        for i in range(self.cfg.n_blocks):
            W1 = self.W1[i]
            W2 = W1.transpose(1, 2) if self.W2 is None else self.W2[i]
            a = F.relu(torch.einsum("kbm,kmd->kbd", h, W1) + self.c1[i][:, None, :])
            h = h + torch.einsum("kbd,kdm->kbm", a, W2) + self.c2[i][:, None, :]
        return h
