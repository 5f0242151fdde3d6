"""Tiny synthetic images so that tests need no data files."""

import math

import pytest
import torch

from dipsearch.nets.arch import ArchSpec
from dipsearch.store.imageio import save_image

# The 3-level, 8-channel hourglass most tests fit: small enough for 32 px images and a few hundred steps.
SMALL = ArchSpec(
    n_down=[8, 8, 8],
    n_up=[8, 8, 8],
    n_skip=[0, 4, 4],
    k_down=[3] * 3,
    k_up=[3] * 3,
    k_skip=[1] * 3,
    upsample=["bilinear"] * 3,
)


# Tiny test images gain nothing from intra-op threads, and several torch processes each spinning two
# OpenMP threads on a 2-core machine slow everything down many times over.
torch.set_num_threads(1)


def synthetic_image(h: int = 32, w: int = 32, channels: int = 3) -> torch.Tensor:
    """Smooth gradients plus a bright square and a disc: structure a DIP fit can learn fast."""
    ys = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    xs = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    planes = [0.2 + 0.6 * xs, 0.3 + 0.4 * ys, 0.5 + 0.3 * torch.sin(2 * math.pi * (xs + ys))]
    img = torch.stack(planes[:channels]) if channels > 1 else planes[0].unsqueeze(0)
    img = img.clone()
    img[:, h // 4 : h // 2, w // 4 : w // 2] = 0.9
    disc = (ys - 0.7) ** 2 + (xs - 0.7) ** 2 < 0.02
    img[:, disc] = 0.1
    return img.unsqueeze(0).clamp(0, 1)


@pytest.fixture
def clean32() -> torch.Tensor:
    return synthetic_image(32, 32)


@pytest.fixture
def image_file(tmp_path):
    def make(name="clean.png", h=32, w=32, channels=3):
        path = tmp_path / name
        save_image(synthetic_image(h, w, channels), path)
        return path

    return make
