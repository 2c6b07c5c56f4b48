"""Batched toy models: many independent instances trained at once, one per setting.

The paper's model is ``h = W x``, ``x' = ReLU(Wᵀ W x + b)``. :class:`Net` generalises it the way the
FeatureFinding repository does:

    h  = act_h(x @ W_in + b_in)                 # [inst, batch, n_hidden]
    h  = h + act(h @ W1 + c1) @ W2 + c2         # ResNet only, once per residual block
    y  = act_out(h @ W_out + b_out)             # W_out = W_inᵀ when tied

Weights are stored with the *feature* axis first: ``W_in[k, i]`` is feature ``i``'s direction in
instance ``k``'s hidden space (the paper's column ``W_i``). ``output_act="softmax"`` returns logits;
the training loop applies cross-entropy.

FeatureFinding's model options are here too: ``unit_weights`` (every feature's embedding is put
back on the unit sphere before each forward pass, as that repository does in place),
``standard_magnitude`` (every feature's embedding rescaled to the mean norm), an output scale
factor (``initial_scale_factor``, learnable with ``learnable_scale_factor``), initial embedding
and output bias, the shifted activations ``ReLU(x+1)``, ``GELU(x+1)``, ``ReLU(x-1)``, and
*copy-tying* (``copy_tied``): the unembedding is its own parameter sharing storage with the
embedding, so each receives its own gradient and the optimiser applies both to the same numbers
(identical to tying under plain SGD; not under Adam, whose moments are kept per parameter).
"""

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

Activation = Literal["linear", "relu", "gelu", "relu_plus1", "gelu_plus1", "relu_minus1"]
OutputActivation = Literal[
    "linear", "relu", "gelu", "relu_plus1", "gelu_plus1", "relu_minus1", "softmax"
]


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
    # FeatureFinding options
    unit_weights: bool = False
    standard_magnitude: bool = False
    learnable_scale_factor: bool = False
    initial_scale_factor: float = 1.0
    copy_tied: bool = False

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
    if kind == "relu_plus1":
        return F.relu(x + 1)
    if kind == "gelu_plus1":
        return F.gelu(x + 1)
    if kind == "relu_minus1":
        return F.relu(x - 1)
    raise ValueError(
        f"unknown activation {kind!r}; use linear, relu, gelu, relu_plus1, gelu_plus1, "
        "relu_minus1 or softmax"
    )


def _xavier(
    n_instances: int, fan_in: int, fan_out: int, gen: torch.Generator, device: Any
) -> Tensor:
    std = (2.0 / (fan_in + fan_out)) ** 0.5
    return torch.randn(n_instances, fan_in, fan_out, generator=gen, device=device) * std


class Net(nn.Module):
    """One-hidden-layer toy network, batched over ``cfg.n_instances`` independent instances."""

    def __init__(
        self,
        cfg: NetConfig,
        seed: int = 0,
        device: torch.device | str = "cpu",
        initial_embed: Tensor | None = None,
        initial_bias: Tensor | None = None,
    ) -> None:
        """``initial_embed`` (``[n_features, n_hidden]`` or ``[inst, n_features, n_hidden]``) and
        ``initial_bias`` (``[d_out]`` or ``[inst, d_out]``) replace the Xavier / zero start."""
        super().__init__()
        if cfg.tied and cfg.d_out != cfg.n_features:
            raise ValueError(
                f"tied weights need n_outputs == n_features, got {cfg.d_out} != {cfg.n_features}; "
                "set tied=False"
            )
        if cfg.copy_tied and not cfg.tied:
            raise ValueError("copy_tied=True is a way of tying: it needs tied=True")
        if cfg.unit_weights and cfg.standard_magnitude:
            raise ValueError("choose one of unit_weights and standard_magnitude, not both")
        self.cfg = cfg
        gen = torch.Generator(device=device).manual_seed(seed)
        k, n, m = cfg.n_instances, cfg.n_features, cfg.n_hidden
        W0 = _xavier(k, n, m, gen, device)
        if initial_embed is not None:
            W0 = _initial(initial_embed, (k, n, m), "initial_embed").to(device)
        self.W_in = nn.Parameter(W0)
        if cfg.copy_tied:
            # a second Parameter over the same storage (a transposed view of W_in)
            self.W_out: nn.Parameter | None = nn.Parameter(self.W_in.data.transpose(1, 2))
        else:
            self.W_out = None if cfg.tied else nn.Parameter(_xavier(k, m, cfg.d_out, gen, device))
        self.b_in = nn.Parameter(torch.zeros(k, m, device=device)) if cfg.hidden_bias else None
        if initial_bias is not None and not cfg.output_bias:
            raise ValueError("initial_bias given but output_bias=False; set output_bias=True")
        b0 = torch.zeros(k, cfg.d_out, device=device)
        if initial_bias is not None:
            b0 = _initial(initial_bias, (k, cfg.d_out), "initial_bias").to(device)
        self.b_out = nn.Parameter(b0) if cfg.output_bias else None
        self.scale = (
            nn.Parameter(torch.full((k,), float(cfg.initial_scale_factor), device=device))
            if cfg.learnable_scale_factor
            else None
        )
        self._constrain()

    @torch.no_grad()
    def _constrain(self) -> None:
        """Put the embedding back on its constraint set (``unit_weights``/``standard_magnitude``)
        in place, as FeatureFinding does before every forward pass."""
        if not isinstance(self.W_in, nn.Parameter):  # inside torch.func.functional_call
            return
        if self.cfg.unit_weights:
            self.W_in.copy_(F.normalize(self.W_in, dim=-1))
        elif self.cfg.standard_magnitude:
            mean_norm = self.W_in.norm(dim=-1).mean(dim=-1)[:, None, None]
            self.W_in.copy_(F.normalize(self.W_in, dim=-1) * mean_norm)

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
        y = _activate(y, self.cfg.output_act)
        if self.scale is not None:
            return self.scale[:, None, None] * y
        if self.cfg.initial_scale_factor != 1.0:
            return self.cfg.initial_scale_factor * y
        return y

    def forward(self, x: Tensor) -> Tensor:
        """``[inst, batch, n_features] -> [inst, batch, d_out]``."""
        self._constrain()
        return self.readout(self.hidden(x))


def _initial(t: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
    """``t`` broadcast to ``shape`` (a leading instance axis may be omitted), as a fresh copy."""
    if tuple(t.shape) not in (shape, shape[1:]):
        raise ValueError(f"{name} must have shape {shape} or {shape[1:]}, got {tuple(t.shape)}")
    return t.detach().to(torch.float32).expand(shape).clone()


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
