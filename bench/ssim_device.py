"""On a CUDA device: does SSIM stay on the GPU, and how far is its float32 value from the CPU's float64 one?

    python bench/ssim_device.py [--size 256] [--iters 200]

1. dipsearch.metrics.ssim_tensor under torch.cuda.set_sync_debug_mode("error"): any host sync raises. The old
   path (scikit-image on host copies) is run the same way as a control that the mode catches a sync.
2. A fit with SSIM every step and one without: the host syncs each makes (set_sync_debug_mode("warn"), counted)
   must be the same, so recording SSIM adds none.
3. SSIM of the packaged demo image and noisy / blurred versions: float32 on the GPU against float64 on the CPU.
4. Milliseconds per SSIM call: on the GPU (read back once at the end) and through scikit-image on the host.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from dipsearch import ArchSpec, FitConfig, fit, make_problem
from dipsearch.metrics import ssim, ssim_tensor
from dipsearch.problems.noise import add_noise
from dipsearch.store.imageio import center_crop, load_image

DEMO = Path(__file__).resolve().parent.parent / "dipsearch" / "data" / "demo.png"


def host_ssim(x: torch.Tensor, ref: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    a, b = (t[0].permute(1, 2, 0).double().cpu().numpy() for t in (x, ref))
    return float(
        structural_similarity(
            a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def syncs(run) -> int:
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    dev = torch.device("cuda")
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    image = load_image(DEMO)
    side = min(args.size, *image.shape[-2:])
    clean = center_crop(image, side, side)
    noisy = add_noise(clean, "gaussian", 25, torch.Generator().manual_seed(0)).clamp(0, 1)
    blurred = F.avg_pool2d(clean, 3, 1, 1, count_include_pad=False)
    gc, gn = clean.to(dev), noisy.to(dev)
    ssim_tensor(gn, gc)  # warm-up outside the checks

    # 1. no sync inside ssim_tensor; the host path syncs
    torch.cuda.set_sync_debug_mode("error")
    try:
        value = ssim_tensor(gn, gc)
        print("1. ssim_tensor under sync-debug 'error': no sync")
        try:
            host_ssim(gn, gc)
            print("   control: the host path raised nothing (the mode did not catch its copy)")
        except RuntimeError as err:
            print(f"   control: the host path raised: {str(err).splitlines()[0][:90]}")
    finally:
        torch.cuda.set_sync_debug_mode(0)
    print(f"   value {float(value):.6f}")

    # 2. a fit records SSIM every step without extra syncs
    small = ArchSpec(
        n_down=[16] * 3,
        n_up=[16] * 3,
        n_skip=[0, 4, 4],
        k_down=[3] * 3,
        k_up=[3] * 3,
        k_skip=[1] * 3,
        upsample=["bilinear"] * 3,
    )
    problem = make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=0)
    counts = {}
    for every in (0, 1):
        config = FitConfig(iters=args.iters, device="cuda", ssim_every=every, seed=0)
        counts[every] = syncs(lambda: fit(problem, small, config))  # noqa: B023 - run at once
    print(f"2. host syncs in a {args.iters}-step fit: {counts[0]} without SSIM, {counts[1]} with SSIM every step")

    # 3. float32 on the GPU against float64 on the CPU
    worst = 0.0
    for name, other in (("noisy", noisy), ("blurred", blurred), ("same", clean)):
        cpu, gpu, host = ssim(other, clean), float(ssim_tensor(other.to(dev), gc)), host_ssim(other, clean)
        worst = max(worst, abs(gpu - cpu))
        print(
            f"3. {name:8s} GPU float32 {gpu:.7f}  CPU float64 {cpu:.7f}  scikit-image {host:.7f}  "
            f"GPU-CPU {gpu - cpu:+.1e}"
        )
    print(f"   largest |GPU - CPU| {worst:.1e}")

    # 4. cost per call
    n = 50
    torch.cuda.synchronize()
    start = time.perf_counter()
    values = [ssim_tensor(gn, gc) for _ in range(n)]
    torch.stack(values).cpu()
    on_device = (time.perf_counter() - start) / n * 1e3
    start = time.perf_counter()
    for _ in range(n):
        host_ssim(gn, gc)
    on_host = (time.perf_counter() - start) / n * 1e3
    print(f"4. {side}x{side} RGB, {n} calls: {on_device:.3f} ms/call on the GPU, {on_host:.2f} ms/call via the host")


if __name__ == "__main__":
    main()
