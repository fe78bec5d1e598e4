"""Autoencoders: an encoder f (x -> z_hat) and a decoder h (z_hat -> x)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mdcrl.data.polynomial import monomial_features, monomial_plan, num_monomials
from mdcrl.models.base import Autoencoder, FrameDecoder, FrameEncoder, StackedFrame, StackedLinear
from mdcrl.models.resnet import resnet18_autoencoder
from mdcrl.settings import ACTIVATION_NAMES, LINEAR_FRAMES


def linear_autoencoder(x_dim: int, z_dim: int, restarts: int = 1, frame: str = "orthonormal") -> Autoencoder:
    """Linear mixing is identified up to a block-affine map, so a linear f and h suffice.

    frame="free": encoder and decoder are free affine maps (the paper's model). frame="orthonormal":
    h = x Q and x_hat = h Q^T with Q an orthonormal frame (models/base.py, StackedFrame), meant for
    whitened inputs: the latents cannot shrink, and with z_dim = x_dim the reconstruction is exact, so
    training minimises the paper's objective with its reconstruction term at the optimum."""
    if frame not in LINEAR_FRAMES:
        raise ValueError(f"model.autoencoder.frame={frame!r} is unknown; choose one of {list(LINEAR_FRAMES)}")
    if frame == "free":
        return Autoencoder(StackedLinear(restarts, x_dim, z_dim), StackedLinear(restarts, z_dim, x_dim), restarts)
    shared = StackedFrame(restarts, x_dim, z_dim)
    return Autoencoder(FrameEncoder(shared), FrameDecoder(shared), restarts)


@torch.no_grad()
def warm_start_linear(autoencoder: Autoencoder, directions: np.ndarray, copy: int = 0) -> None:
    """Start copy ``copy`` of a linear autoencoder (either frame) at the orthonormal columns
    ``directions`` (x_dim, z_dim) of its (whitened) input: encoder h = x directions, decoder its
    transpose, biases 0, so the reconstruction starts at its optimum."""
    q = torch.as_tensor(np.ascontiguousarray(directions), dtype=torch.float32)
    encoder = autoencoder.encoder
    if isinstance(encoder, FrameEncoder):
        encoder.frame.weight[copy].copy_(q)
        return
    if not (isinstance(encoder, StackedLinear) and isinstance(autoencoder.decoder, StackedLinear)):
        raise ValueError("model.init=moment warm-starts the linear autoencoder only: set model.init=random")
    encoder.weight[copy].copy_(q)
    encoder.bias[copy].zero_()
    autoencoder.decoder.weight[copy].copy_(q.T)
    autoencoder.decoder.bias[copy].zero_()


# Hidden-layer nonlinearities. SiLU is smooth: the polynomial stage-1 encoder must invert a smooth
# map to ~1e-4 reconstruction error before the weak stable block is recovered (docs/polynomial.md),
# which a piecewise-linear LeakyReLU net of the same width reaches far more slowly.
ACTIVATIONS = dict(zip(ACTIVATION_NAMES, (None, nn.SiLU, nn.GELU, nn.Tanh)))  # leaky_relu takes its slope


def activation_layer(name: str, negative_slope: float) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.autoencoder.activation={name!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
    return nn.LeakyReLU(negative_slope) if name == "leaky_relu" else ACTIVATIONS[name]()


def mlp(
    dims: list[int],
    negative_slope: float = 0.01,
    batch_norm: bool = False,
    restarts: int = 1,
    activation: str = "leaky_relu",
) -> nn.Sequential:
    """Linear layers with an activation (and optional batch norm) between them, none after the last.
    Without batch norm the layers are stacked over ``restarts``; batch norm needs restarts = 1."""
    if batch_norm and restarts != 1:
        raise ValueError("an MLP with batch_norm=true trains one restart at a time: set model.restarts=1")
    activation_layer(activation, negative_slope)  # an unknown name fails before any layer is built
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b) if batch_norm else StackedLinear(restarts, a, b))
        if i < len(dims) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(activation_layer(activation, negative_slope))
    return nn.Sequential(*layers)


class PolynomialDecoder(nn.Module):
    """x_hat = W [1, monomials of z_hat up to degree]: the decoder class that matches polynomial mixing."""

    def __init__(self, z_dim: int, x_dim: int, degree: int, restarts: int = 1):
        super().__init__()
        self.plan_size = degree - 1
        for q, (parent, variable) in enumerate(monomial_plan(z_dim, degree)):
            self.register_buffer(f"parent_{q}", torch.from_numpy(parent), persistent=False)
            self.register_buffer(f"variable_{q}", torch.from_numpy(variable), persistent=False)
        self.linear = StackedLinear(restarts, num_monomials(z_dim, degree) - 1, x_dim)  # bias: the constant monomial

    def features(self, z: torch.Tensor) -> torch.Tensor:
        plan = [(getattr(self, f"parent_{q}"), getattr(self, f"variable_{q}")) for q in range(self.plan_size)]
        return monomial_features(z, plan, include_constant=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(z))


def polynomial_autoencoder(
    x_dim: int,
    z_dim: int,
    degree: int,
    hidden_dims: list[int] = (200, 200),
    negative_slope: float = 0.01,
    restarts: int = 1,
    activation: str = "leaky_relu",
) -> Autoencoder:
    """MLP encoder with a polynomial decoder (polynomial stage 1)."""
    encoder = mlp([x_dim, *hidden_dims, z_dim], negative_slope, restarts=restarts, activation=activation)
    return Autoencoder(encoder, PolynomialDecoder(z_dim, x_dim, degree, restarts), restarts)


def mlp_autoencoder(
    x_dim: int,
    z_dim: int,
    hidden_dims: list[int] = (128, 128),
    negative_slope: float = 0.01,
    batch_norm: bool = False,
    restarts: int = 1,
    activation: str = "leaky_relu",
    image_size: int | None = None,
    encoder_hidden_dims: list[int] | None = None,
) -> Autoencoder:
    """MLP encoder and mirrored MLP decoder. On images (x_dim channels of side image_size) the
    encoder flattens its input and the decoder reshapes its output back into images.
    encoder_hidden_dims (default: hidden_dims) sets the encoder's own hidden layers; [] makes it one
    affine map, so that its latents are linear in the input (balls stage 2: the stage-1 encodings hold
    the balls' positions linearly, and a linear encoder cannot bend h_S into a saturated copy of them)."""
    hidden = list(hidden_dims)
    encoder_hidden = hidden if encoder_hidden_dims is None else list(encoder_hidden_dims)
    features = x_dim * image_size**2 if image_size else x_dim
    encoder = mlp([features, *encoder_hidden, z_dim], negative_slope, batch_norm, restarts, activation)
    decoder = mlp([z_dim, *hidden[::-1], features], negative_slope, batch_norm, restarts, activation)
    if image_size:
        encoder = nn.Sequential(nn.Flatten(start_dim=-3), encoder)
        decoder = nn.Sequential(decoder, nn.Unflatten(-1, (x_dim, image_size, image_size)))
    return Autoencoder(encoder, decoder, restarts)


AUTOENCODERS = {
    "linear": linear_autoencoder,
    "poly": polynomial_autoencoder,
    "mlp": mlp_autoencoder,
    "resnet18": resnet18_autoencoder,
}


def build_autoencoder(ae_cfg, x_dim, z_dim: int, restarts: int = 1, image_size: int | None = None) -> Autoencoder:
    """x_dim: features of flat inputs, or channels of images, whose side is image_size."""
    name = ae_cfg.name
    if name not in AUTOENCODERS:
        raise ValueError(f"model.autoencoder.name={name!r} is unknown; choose one of {sorted(AUTOENCODERS)}")
    options = {k: v for k, v in ae_cfg.items() if k != "name"}
    if name == "resnet18":
        if restarts != 1:
            raise ValueError("the ResNet-18 autoencoder trains one restart at a time: set model.restarts=1")
        return AUTOENCODERS[name](x_dim, z_dim, **options, **({"image_size": image_size} if image_size else {}))
    if image_size:
        if name != "mlp":
            raise ValueError(f"model.autoencoder.name={name!r} takes flat inputs; for images choose resnet18 or mlp")
        options["image_size"] = image_size
    return AUTOENCODERS[name](x_dim, z_dim, restarts=restarts, **options)
