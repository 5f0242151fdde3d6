"""dipsearch's SSIM (pytorch-msssim, Gaussian window) against scikit-image's, and against the SSIM dipsearch used before.

    python bench/ssim_vs_skimage.py [--data ../shared/data] [IMAGE ...]

For each image (full size) and two degraded versions of it (Gaussian noise sigma 25, a 3x3 box blur): SSIM by
dipsearch.metrics.ssim (float64 on the CPU), by scikit-image with the same definition (gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1), and by scikit-image's defaults that dipsearch used before
(uniform 7x7 window, sample covariance).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skimage.metrics import structural_similarity  # noqa: E402

from dipsearch.metrics import ssim  # noqa: E402
from dipsearch.problems.noise import add_noise  # noqa: E402
from dipsearch.store.imageio import load_image  # noqa: E402

IMAGES = [
    "classic9/Baboon.png",
    "classic9/F16.png",
    "classic9/House.png",
    "classic9/kodim03.png",
    "set14/monarch.png",
    "set14/zebra.png",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    parser.add_argument("images", nargs="*", default=IMAGES)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    same, shift = [], []
    for name in args.images:
        clean = load_image(args.data / name)
        degraded = {
            "gauss25": add_noise(clean, "gaussian", 25, generator).clamp(0, 1),
            "blur": F.avg_pool2d(clean, 3, 1, 1, count_include_pad=False),
        }
        b = clean[0].permute(1, 2, 0).double().numpy()
        for what, other in degraded.items():
            a = other[0].permute(1, 2, 0).double().numpy()
            gaussian = structural_similarity(
                a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
            before = structural_similarity(a, b, data_range=1.0, channel_axis=2, win_size=7)
            ours = ssim(other, clean)
            same.append(ours - gaussian)
            shift.append(ours - before)
            print(
                f"{Path(name).name:14s} {what:8s} dipsearch {ours:.6f}  scikit-image (Gaussian) {gaussian:.6f}  "
                f"diff {ours - gaussian:+.1e}  before (uniform 7x7) {before:.6f}  now - before {ours - before:+.4f}"
            )
    same_a, shift_a = np.abs(np.array(same)), np.array(shift)
    print(
        f"{len(same)} pairs: largest |dipsearch - scikit-image Gaussian| {same_a.max():.1e}; now - before: mean "
        f"{shift_a.mean():+.4f}, from {shift_a.min():+.4f} to {shift_a.max():+.4f}"
    )


if __name__ == "__main__":
    main()
