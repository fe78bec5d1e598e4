"""Autoencoders: an encoder f (x -> z_hat) and a decoder h (z_hat -> x)."""

from __future__ import annotations

from torch import nn


class Autoencoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x):
        z_hat = self.encoder(x)
        return z_hat, self.decoder(z_hat)


def linear_autoencoder(x_dim: int, z_dim: int) -> Autoencoder:
    """Linear mixing is identified up to a block-affine map, so a linear f and h suffice."""
    return Autoencoder(nn.Linear(x_dim, z_dim), nn.Linear(z_dim, x_dim))


AUTOENCODERS = {"linear": linear_autoencoder}


def build_autoencoder(ae_cfg, x_dim: int, z_dim: int) -> Autoencoder:
    name = ae_cfg.name
    if name not in AUTOENCODERS:
        raise ValueError(f"model.autoencoder.name={name!r} is unknown; choose one of {sorted(AUTOENCODERS)}")
    options = {k: v for k, v in ae_cfg.items() if k != "name"}
    return AUTOENCODERS[name](x_dim, z_dim, **options)
