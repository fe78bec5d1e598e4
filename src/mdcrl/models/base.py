"""The autoencoder container every architecture returns: restarts and input whitening live here.

Restarts: ``restarts`` independently initialised copies are trained at once, on the same batches.
Architectures built from :class:`StackedLinear` carry the copies as a leading weight dimension
(one batched matmul for all of them); others are trained one copy at a time (restarts=1). After
training, ``chosen`` (a buffer, so it is saved in checkpoints) names the copy that ``forward`` and
``encode`` use; the training module picks it by validation loss. With ``only_chosen`` set (the
training module sets it once model.restart_selection_epochs have passed) the stacked layers compute
the chosen copy alone: (1, B, ...) outputs at a quarter of the cost of 4 copies, and since the copies
share nothing, the chosen copy's numbers are those it would have had beside the others.

Whitening: an optional fixed map fitted on the train split, x -> (x - mean) @ input_map (PCA
whitening, dropping directions without variance). The encoder sees whitened inputs and the decoder
reconstructs them, so the loss is computed in whitened units; ``forward`` maps reconstructions back
to the input space. Because the map is part of the model, every consumer (evaluation, stage-1
encodings, the estimator, a reloaded checkpoint) passes raw x.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mdcrl.moment import subspace_overlap


class StackedLinear(nn.Module):
    """``restarts`` independent nn.Linear layers applied at once: (B, in) or (R, B, in) -> (R, B, out).
    Each copy is initialised as nn.Linear initialises itself (uniform in +-1/sqrt(in))."""

    def __init__(self, restarts: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(restarts, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(restarts, 1, out_features).uniform_(-bound, bound))
        self.copies: torch.Tensor | None = None  # indices of the copies to compute (Autoencoder.only_chosen); None: all

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if self.copies is not None:  # the gradient reaches only these copies' slices
            weight, bias = weight.index_select(0, self.copies), bias.index_select(0, self.copies)
        if x.dim() == 2:
            return torch.matmul(x, weight) + bias  # broadcasts the shared batch over restarts
        return torch.baddbmm(bias, x, weight)


class StackedFrame(nn.Module):
    """``restarts`` orthonormal frames Q (in_features x out_features, Q^T Q = I) of free matrices: Q is
    the Q factor of the weight's reduced QR decomposition, signs fixed so that R has a positive
    diagonal (then an orthonormal weight is its own frame, and Q moves smoothly with the weight).
    Column j of Q depends only on the weight's columns 0..j, so the span of the first d_S columns
    (the stable block) is that of the weight's first d_S columns.

    The orthonormal linear autoencoder encodes whitened x as h = x Q and decodes x_hat = h Q^T: h has
    unit variance in every coordinate whatever Q, so no penalty can be lowered by shrinking h, and
    with out_features = in_features the reconstruction is exact (docs/design.md, "Warm start")."""

    def __init__(self, restarts: int, in_features: int, out_features: int):
        super().__init__()
        if out_features > in_features:
            raise ValueError(
                f"an orthonormal frame of {out_features} latents needs at least as many (whitened) input "
                f"features, got {in_features}: set model.autoencoder.frame=free or a smaller model.z_dim"
            )
        weight = torch.empty(restarts, in_features, out_features)
        for r in range(restarts):
            nn.init.orthogonal_(weight[r])
        self.weight = nn.Parameter(weight)
        self.copies: torch.Tensor | None = None  # as StackedLinear.copies

    def frame(self) -> torch.Tensor:
        weight = self.weight if self.copies is None else self.weight.index_select(0, self.copies)
        q, r = torch.linalg.qr(weight)
        signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
        return q * torch.where(signs == 0, torch.ones_like(signs), signs).unsqueeze(-2)


class FrameEncoder(nn.Module):
    def __init__(self, frame: StackedFrame):
        super().__init__()
        self.frame = frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.frame.frame())


class FrameDecoder(nn.Module):
    """x_hat = h Q^T with the encoder's frame (held, not copied: one parameter)."""

    def __init__(self, frame: StackedFrame):
        super().__init__()
        self._frame = [frame]  # a list, so that the shared frame is registered once, in the encoder

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.matmul(h, self._frame[0].frame().transpose(-1, -2))


def non_finite_entries(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or inf."""
    return [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]


def fit_whitening(x: np.ndarray, tolerance: float = 1e-9, dims: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PCA whitening of the rows of x: (mean, map) with (x - mean) @ map of identity covariance.
    Directions whose variance is below ``tolerance`` x the largest are dropped (linear mixing of
    z_dim latents into x_dim > z_dim coordinates has only z_dim of them); with ``dims``, only the
    ``dims`` principal directions of largest variance are kept (model.whiten_dims)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False).reshape(x.shape[1], x.shape[1]))
    keep = values > tolerance * max(values.max(), 1e-300)
    if dims is not None:
        keep &= np.arange(len(values)) >= len(values) - dims  # eigh sorts ascending: the last dims
    return mean.astype(np.float32), (vectors[:, keep] / np.sqrt(values[keep])).astype(np.float32)


@torch.no_grad()
def restart_agreement(autoencoder: Autoencoder, d_s: int, reference: int) -> float | None:
    """How closely every restart's stable subspace (the span of its first ``d_s`` encoder directions,
    in the model's input coordinates) coincides with restart ``reference``'s: the smallest
    moment.subspace_overlap over the other copies (1: the same subspace). Linear encoders only (either
    frame; biases do not move a subspace); None otherwise or with a single restart. Ground-truth free:
    restarts that agree leave nothing to choose between."""
    encoder = autoencoder.encoder
    if isinstance(encoder, FrameEncoder):
        weight = encoder.frame.weight
    elif isinstance(encoder, StackedLinear):
        weight = encoder.weight
    else:
        return None
    stable = weight[..., :d_s].detach().double().numpy()
    others = [r for r in range(stable.shape[0]) if r != reference]
    return min((subspace_overlap(stable[reference], stable[r]) for r in others), default=None)


class Autoencoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, restarts: int = 1):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.restarts = int(restarts)
        self.register_buffer("chosen", torch.zeros((), dtype=torch.long))
        self.only_chosen = False  # not saved: the training module derives it from the epoch
        self._stacked = [m for m in self.modules() if isinstance(m, (StackedLinear, StackedFrame))]
        for name in ("input_mean", "input_map", "input_unmap"):  # set by set_whitening
            self.register_buffer(name, None)

    def set_whitening(self, mean: np.ndarray, matrix: np.ndarray) -> None:
        """Install the fixed input map (see fit_whitening); the encoder/decoder must have been built
        for matrix.shape[1] features."""
        matrix = torch.as_tensor(matrix, dtype=torch.float32).contiguous()  # one layout: same results after a reload
        self.input_mean = torch.as_tensor(mean, dtype=torch.float32)
        self.input_map = matrix
        self.input_unmap = torch.linalg.pinv(matrix)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The model's view of raw x (whitened when a map is installed): the reconstruction target."""
        return x if self.input_map is None else (x - self.input_mean) @ self.input_map

    @property
    def chosen_position(self) -> int:
        """Where the chosen copy is in forward_restarts' outputs."""
        return 0 if self.only_chosen else int(self.chosen)

    def _select_copies(self) -> None:
        copies = self.chosen.view(1) if self.only_chosen and self.restarts > 1 else None
        for layer in self._stacked:
            layer.copies = copies

    def forward_restarts(self, x: torch.Tensor):
        """All restarts (or the chosen one alone, with only_chosen): h (R, B, z), reconstruction
        (R, B, ...) of the target, and the target."""
        self._select_copies()
        target = self.prepare(x)
        h = self.encoder(target)
        if h.dim() == 2:  # an architecture without a restart dimension (restarts == 1)
            return h[None], self.decoder(h)[None], target
        return h, self.decoder(h), target

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The chosen restart's latents (B, z) of raw x."""
        self._select_copies()
        h = self.encoder(self.prepare(x))
        return h if h.dim() == 2 else h[self.chosen_position]

    def unprepare(self, x_hat: torch.Tensor) -> torch.Tensor:
        """A reconstruction of the model's view of x (prepare) in raw x's space."""
        return x_hat if self.input_map is None else x_hat @ self.input_unmap + self.input_mean

    def forward(self, x: torch.Tensor):
        """(latents, reconstruction of x in the input space) for the chosen restart."""
        h, x_hat, _ = self.forward_restarts(x)
        return h[self.chosen_position], self.unprepare(x_hat[self.chosen_position])
