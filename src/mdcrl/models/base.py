"""The autoencoder container every architecture returns."""

from torch import nn


class Autoencoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x):
        z_hat = self.encoder(x)
        return z_hat, self.decoder(z_hat)
