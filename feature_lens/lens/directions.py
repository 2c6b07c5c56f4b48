"""Arbitrary directions as features: steering vectors, probe weights, decoder rows, any tensor.

A `Directions` object is a dictionary whose k "features" are vectors v_1..v_k at one hook:

- **activation** of direction j: the projection `x . v_j / |v_j|` — the length of x along v_j, in the
  activation's own units (with `normalize=False`: `x . v_j`, for a vector whose scale matters);
- **decoder** row j: the unit vector `v_j / |v_j|` (or `v_j` unnormalised), so moving direction j's
  activation by d adds `d * v_hat_j` to the stream: intervening adds or removes a multiple of the
  direction;
- there is no nonlinearity (the gate is 1), and the error term `x - sum_j a_j v_hat_j` keeps the
  splice exact as for any dictionary.

Because it is a dictionary with an affine decoder, directions take part in activation patching,
attribution patching and direct attribution as upstream and downstream nodes, and get dashboard
pages, with no special cases. Give it a `name` to attach it at a hook that already has an SAE.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from feature_lens.errors import InputError, LoadingError
from feature_lens.lens.dictionary import Dictionary, hook_layer
from feature_lens.typed import vector_norm


class Directions(Dictionary):
    """k directions at `hook` as features (see the module docstring).

    Args:
        vectors: `[k, d]` (or `[d]` for one direction).
        hook: the TransformerLens hook they live at, e.g. `blocks.1.hook_resid_post`.
        labels: a name per direction (shown in dashboards).
        name: the site name (default `"<hook>:directions"`).
        normalize: divide each vector by its norm (activation = scalar projection).
    """

    def __init__(
        self,
        vectors: Float[Tensor, "k d"] | Float[Tensor, " d"],
        hook: str,
        *,
        labels: Sequence[str] | None = None,
        name: str | None = None,
        normalize: bool = True,
    ) -> None:
        matrix = vectors.detach().clone()
        if matrix.ndim == 1:
            matrix = matrix.unsqueeze(0)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise InputError(
                f"directions must be a [k, d] tensor, got shape {tuple(vectors.shape)}"
            )
        if not matrix.is_floating_point():
            matrix = matrix.float()
        finite = torch.isfinite(matrix).all(dim=-1)
        if not bool(finite.all()):
            bad = [int(j) for j in torch.nonzero(~finite).flatten()[:5]]
            raise InputError(
                f"direction(s) {bad} of {hook!r} hold non-finite values (NaN or inf); "
                "every vector must be finite"
            )
        norms = vector_norm(matrix, dim=-1, keepdim=True)
        if not torch.all(norms > 0):
            bad = [int(j) for j in torch.nonzero(norms.flatten() == 0).flatten()[:5]]
            raise InputError(
                f"direction(s) {bad} of {hook!r} have zero norm; every vector must be non-zero"
            )
        self.vectors: Tensor = matrix / norms if normalize else matrix
        self.normalize = normalize
        self.labels: list[str] = (
            list(labels) if labels is not None else [f"direction {j}" for j in range(len(matrix))]
        )
        if len(self.labels) != len(matrix):
            raise InputError(f"{len(self.labels)} labels for {len(matrix)} directions")
        self.sae = None
        self.is_transcoder = False
        self.hook_in = hook
        self.hook_out = hook
        self.name = name or f"{hook}:directions"

    @property
    def layer(self) -> int:
        """Block index of the hook."""
        return hook_layer(self.hook_out)

    @property
    def kind(self) -> str:
        """Always "directions"."""
        return "directions"

    @property
    def d_in(self) -> int:
        """Width of the hook's activation."""
        return int(self.vectors.shape[1])

    @property
    def d_out(self) -> int:
        """Same as `d_in`."""
        return self.d_in

    @property
    def d_sae(self) -> int:
        """Number of directions."""
        return int(self.vectors.shape[0])

    @property
    def model_name(self) -> str | None:
        """Directions are not tied to a model name."""
        return None

    @property
    def W_dec(self) -> Float[Tensor, "k d"]:
        """The (unit) direction vectors."""
        return self.vectors

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Directions:
        """Move the vectors (returns self)."""
        self.vectors = self.vectors.to(device=device, dtype=dtype)
        return self

    def encode(self, x: Float[Tensor, "... d"]) -> Float[Tensor, "... k"]:
        """Projections onto the directions."""
        return x @ self.vectors.to(x.dtype).T

    def encode_with_pre(self, x: Float[Tensor, "... d"]) -> tuple[Tensor, Tensor]:
        """(activation, pre-activation): equal, there is no nonlinearity."""
        acts = self.encode(x)
        return acts, acts

    def decode(self, f: Float[Tensor, "... k"]) -> Float[Tensor, "... d"]:
        """Sum of activation times direction."""
        return f @ self.vectors.to(f.dtype)

    def check_affine(self, rtol: float | None = None) -> None:
        """Always affine (linear)."""

    def pre_affine(self) -> tuple[Tensor, Tensor]:
        """`(vectors.T, 0)`: the projection is linear."""
        return self.vectors.T, torch.zeros(self.d_sae, dtype=self.vectors.dtype)

    def __repr__(self) -> str:
        return f"Directions({self.d_sae} at {self.hook_out}: {', '.join(self.labels[:3])}{'...' if self.d_sae > 3 else ''})"

    # ------------------------------------------------------------------------ builders
    @classmethod
    def from_mean_difference(
        cls,
        lens: Any,
        hook: str,
        positive: Any,
        negative: Any,
        *,
        position: int | None = -1,
        label: str = "steering vector",
        name: str | None = None,
    ) -> Directions:
        """The difference of mean activations at `hook` between two prompt sets (at `position`,
        or averaged over every position when None): the usual steering vector, in one call."""
        means: list[Tensor] = []
        for prompts in (positive, negative):
            tokens = lens.to_tokens(prompts) if not isinstance(prompts, Tensor) else prompts
            if tokens.shape[0] == 0:
                raise InputError("each prompt set needs at least one prompt")
            _, cache = lens.model.run_with_cache(tokens, names_filter=hook)
            if hook not in cache:
                raise InputError(f"the model has no hook {hook!r}")
            acts = cache[hook]
            means.append((acts[:, position] if position is not None else acts.mean(1)).mean(0))
        return cls(means[0] - means[1], hook, labels=[label], name=name)

    @classmethod
    def from_decoder(
        cls, lens: Any, site: str, indices: Sequence[int], *, normalize: bool = True
    ) -> Directions:
        """Decoder rows of the dictionary at `site` as directions at its output hook."""
        dictionary = lens.dictionary(site)
        for index in indices:
            if not 0 <= index < dictionary.d_sae:
                raise InputError(
                    f"feature index {index} out of range [0, {dictionary.d_sae}) at {site!r}"
                )
        rows = dictionary.W_dec[list(indices)].detach()
        return cls(
            rows,
            dictionary.hook_out,
            labels=[f"{site} #{i}" for i in indices],
            name=f"{site}:decoder",
            normalize=normalize,
        )


# ------------------------------------------------------------------------------ files
_FORMATS = ".npy (numpy.save), .safetensors (first tensor) or .pt/.pth (torch.save of a tensor)"


def read_vectors(path: str | Path) -> Tensor:
    """The tensor of direction vectors in a file: `.npy`, `.safetensors` (its first tensor) or
    `.pt`/`.pth` (a plain tensor, loaded with `weights_only=True`). Pickled Python objects are
    never loaded. Raises `LoadingError` naming the file and what to do for anything else."""
    path = Path(path)
    name = repr(str(path))
    if not path.is_file():
        raise LoadingError(f"no direction file at {name}; give HOOK:FILE with an existing file")
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as stream:
            head = stream.read(8)
        if suffix == ".npy":
            vectors = _read_npy(path, head)
        elif suffix == ".safetensors":
            vectors = _read_safetensors(path)
        elif suffix in (".pt", ".pth"):
            vectors = _read_torch(path, head)
        else:
            raise LoadingError(f"{name} has an unknown suffix; save the vectors as {_FORMATS}")
    except OSError as error:
        raise LoadingError(f"cannot read {name}: {error.strerror}") from None
    if vectors.ndim not in (1, 2) or vectors.numel() == 0:
        raise LoadingError(
            f"{name} holds a tensor of shape {tuple(vectors.shape)}; save one vector [d] or a "
            "stack [k, d]"
        )
    if not (vectors.is_floating_point() or vectors.dtype in _INTEGER_DTYPES):
        raise LoadingError(f"{name} holds {vectors.dtype} values; save floating-point vectors")
    return vectors


_INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _read_npy(path: Path, head: bytes) -> Tensor:
    if not head.startswith(b"\x93NUMPY"):
        raise LoadingError(f"{str(path)!r} is not a .npy file; write it with numpy.save")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's note on Python 2 headers
            array = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy's header parser raises several kinds for damaged files
        if "pickle" in str(error):
            raise LoadingError(
                f"{str(path)!r} holds Python objects (a pickle), which feature-lens never loads; "
                "save a numeric array"
            ) from None
        raise LoadingError(
            f"{str(path)!r} is a damaged .npy file ({type(error).__name__}); write it again with "
            "numpy.save"
        ) from None
    loaded: object = array
    if not isinstance(loaded, np.ndarray):
        raise LoadingError(f"{str(path)!r} does not hold a numeric array; save float vectors")
    numeric = cast("np.ndarray[Any, np.dtype[Any]]", loaded)
    if numeric.dtype.kind not in "fiu":
        raise LoadingError(f"{str(path)!r} does not hold a numeric array; save float vectors")
    return torch.as_tensor(np.ascontiguousarray(numeric))


def _read_safetensors(path: Path) -> Tensor:
    from feature_lens.typed import load_file

    try:
        tensors = load_file(path)
    except Exception:  # safetensors raises its own error type for every kind of damage
        raise LoadingError(
            f"{str(path)!r} is not a valid safetensors file (truncated or damaged); write it "
            "with safetensors.torch.save_file"
        ) from None
    if not tensors:
        raise LoadingError(f"{str(path)!r} holds no tensors; save the vectors in it")
    return next(iter(tensors.values()))


def _read_torch(path: Path, head: bytes) -> Tensor:
    if not head.startswith(b"PK"):  # torch.save writes a zip archive
        raise LoadingError(
            f"{str(path)!r} is not a torch.save file (an old-format pickle, or not torch at all); "
            f"save the vectors as {_FORMATS}"
        )
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except Exception:  # torch's text would suggest unsafe loading: never repeat it
        raise LoadingError(
            f"{str(path)!r} could not be loaded as plain tensors: it is damaged or holds Python "
            "objects, which feature-lens never unpickles; save a tensor with torch.save(tensor, "
            "path), or use .npy/.safetensors"
        ) from None
    if not isinstance(loaded, Tensor):
        raise LoadingError(
            f"{str(path)!r} holds a {type(loaded).__name__}, not a tensor; save the tensor itself"
        )
    return loaded
