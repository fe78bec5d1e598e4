"""ResNet-18 image autoencoder for square RGB images in [-1, 1] (balls: 64 in the seed's setting;
coloured digits: 28; see TransposedConvDecoder for the sides it takes).

Our own ResNet-18 (BasicBlock, [2, 2, 2, 2]): torchvision's build does not import beside the
pinned torch here. ``base_width`` scales every layer (64 = the standard ResNet-18).
"""

from __future__ import annotations

from torch import nn

from mdcrl.models.base import Autoencoder


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet18Encoder(nn.Module):
    """Stem (7x7 conv stride 2 + max-pool), four stages of two BasicBlocks, global average pool,
    then an MLP head with batch norm to z_dim."""

    def __init__(self, z_dim: int, base_width: int = 64, head_dim: int = 512, in_channels: int = 3):
        super().__init__()
        w = base_width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
        widths = [w, 2 * w, 4 * w, 8 * w]
        stages, previous = [], w
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(previous, width, stride), BasicBlock(width, width, 1)]
            previous = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Linear(previous, head_dim), nn.BatchNorm1d(head_dim), nn.LeakyReLU(0.01), nn.Linear(head_dim, z_dim)
        )

    def forward(self, x):
        return self.head(self.pool(self.stages(self.stem(x))).flatten(1))


class TransposedConvDecoder(nn.Module):
    """z -> (4 * base_width, s, s) -> u stride-2 transposed convolutions, halving the channels each
    time -> (3, image_size, image_size) in [-1, 1], where image_size = s * 2^u with s in 4..7 and
    u >= 1. At 64 that is s = 4 and the four upsamplings 4w, 2w, w, w/2; at 28 (digits) s = 7, u = 2."""

    def __init__(self, z_dim: int, base_width: int = 64, out_channels: int = 3, image_size: int = 64):
        super().__init__()
        side, upsamplings = int(image_size), 0
        while side > 7 and side % 2 == 0:
            side, upsamplings = side // 2, upsamplings + 1
        if upsamplings < 1 or not 4 <= side <= 7:
            raise ValueError(
                f"datamodule.dataset.image_size={image_size}: the decoder needs a side of s * 2^u with s in 4..7 "
                "and u >= 1 (e.g. 28, 32 or 64)"
            )
        w = base_width
        self.start, self.side = 4 * w, side
        self.fc = nn.Sequential(nn.Linear(z_dim, self.start * side * side), nn.LeakyReLU(0.01))
        layers, channels = [], [max(4 * w >> i, 1) for i in range(upsamplings)]
        for a, b in zip(channels[:-1], channels[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.01)]
        layers += [nn.ConvTranspose2d(channels[-1], out_channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        return self.body(self.fc(z).view(len(z), self.start, self.side, self.side))


def resnet18_autoencoder(x_dim: int, z_dim: int, base_width: int = 64, head_dim: int = 512, image_size: int = 64) -> Autoencoder:
    """x_dim: the images' channels (3 for RGB)."""
    return Autoencoder(
        ResNet18Encoder(z_dim, base_width, head_dim, in_channels=x_dim),
        TransposedConvDecoder(z_dim, base_width, out_channels=x_dim, image_size=image_size),
    )
