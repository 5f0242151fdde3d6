"""Training-free metrics: how far the spectrum of an untrained network's output is from the observation's.

ISNAS-DIP (docs/reference.md, section 6): a randomly initialised candidate whose output already has the
power spectrum of the corrupted image tends to be a better prior for it. Every metric here takes the
outputs of several forward passes (K x C x H x W, one per random input) and the observation (1 x C x H x W,
in the same space as the outputs) and returns one float; LOWER IS BETTER for all of them.

Spectra: |FFT2|^2 per channel, fft-shifted, averaged over the K outputs (a single periodogram is too
noisy to compare on a log scale). Frequency radius is normalised so that 1 is the Nyquist frequency along
an axis; the ring is 0.1 <= r < 0.2 unless a metric says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import DipsearchError

RING = (0.1, 0.2)
_EPS = 1e-12  # keeps ln finite on an exactly zero bin (a constant output)


def power_spectrum(x: Tensor, centre: bool = False) -> Tensor:
    """Mean over the batch of |FFT2|^2 per channel, fft-shifted: C x H x W. `centre` removes each map's mean."""
    x = x.double()
    if centre:
        x = x - x.mean(dim=(-2, -1), keepdim=True)
    spectrum = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))
    return (spectrum.abs() ** 2).mean(dim=0)


def radius(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """H x W normalised frequency radius of the fft-shifted grid (1 = Nyquist along an axis)."""
    fy = torch.fft.fftshift(torch.fft.fftfreq(height, device=device, dtype=torch.float64)) / 0.5
    fx = torch.fft.fftshift(torch.fft.fftfreq(width, device=device, dtype=torch.float64)) / 0.5
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def _log_psd(x: Tensor) -> Tensor:
    return 10 * torch.log(power_spectrum(x) + _EPS)


def _ring(x: Tensor, low: float = RING[0], high: float = RING[1]) -> Tensor:
    r = radius(x.shape[-2], x.shape[-1], x.device)
    mask = (r >= low) & (r < high)
    if not mask.any():
        raise DipsearchError(f"the image is too small for a spectral ring at radius {low}-{high}")
    return mask


def psd_ring_mse(outputs: Tensor, observed: Tensor) -> float:
    """MSE between 10 ln PSD of the outputs and of the observation on the ring, averaged over channels."""
    a, b = _log_psd(outputs), _log_psd(observed)
    mask = _ring(outputs)
    return float(((a - b)[:, mask] ** 2).mean())


def psd_ring_emd(outputs: Tensor, observed: Tensor) -> float:
    """Earth mover's distance between the histograms of 10 ln PSD values on the ring, per channel.

    Both rings hold the same number of bins, so the 1-D EMD between the two empirical distributions is
    the mean absolute difference of their sorted values (no binning choice to make).
    """
    mask = _ring(outputs)
    a = _log_psd(outputs)[:, mask].sort(dim=-1).values
    b = _log_psd(observed)[:, mask].sort(dim=-1).values
    return float((a - b).abs().mean())


def bandwidth(outputs: Tensor, observed: Tensor, share: float = 0.99) -> float:
    """The normalised radius within which `share` of the outputs' energy lies (the observation is unused).

    Each map's mean is removed first: the DC bin of a sigmoid output near 0.5 would otherwise hold almost
    all the energy and every network would look equally low-pass.
    """
    energy = power_spectrum(outputs, centre=True).sum(dim=0).flatten()
    r = radius(outputs.shape[-2], outputs.shape[-1], outputs.device).flatten()
    order = torch.argsort(r)
    cumulative = torch.cumsum(energy[order], dim=0)
    total = float(cumulative[-1])
    if total <= 0:
        return 0.0  # a constant output: no energy beyond DC at all
    index = int(torch.searchsorted(cumulative, share * cumulative[-1]))
    return float(r[order][min(index, len(order) - 1)])


def _profile(x: Tensor, bins: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """Radially averaged 10 ln PSD (mean over channels) per radius bin, and which bins hold any frequency."""
    log_psd = _log_psd(x).mean(dim=0)
    index = torch.bucketize(r, bins) - 1
    keep = (index >= 0) & (index < len(bins) - 1)
    sums = torch.zeros(len(bins) - 1, dtype=log_psd.dtype, device=log_psd.device).index_add_(
        0, index[keep], log_psd[keep]
    )
    counts = torch.zeros_like(sums).index_add_(0, index[keep], torch.ones_like(log_psd[keep]))
    return sums / counts.clamp(min=1), counts > 0


def spectral_slope_gap(outputs: Tensor, observed: Tensor) -> float:
    """|slope difference| of the power-law fits (ln PSD against ln radius) over radii 0.05-1.

    A candidate whose output falls off with frequency as fast as the observation's spectrum does shares
    its balance of coarse and fine structure at every scale, not just on one ring. Bins are spaced
    logarithmically, so each octave weighs the same in the fit; bins without a frequency are skipped.
    """
    r = radius(outputs.shape[-2], outputs.shape[-1], outputs.device)
    bins = torch.logspace(math.log10(0.05), 0.0, 17, dtype=torch.float64, device=outputs.device)
    centres = torch.log(torch.sqrt(bins[1:] * bins[:-1]))
    slopes = []
    for data in (outputs, observed):
        y, filled = _profile(data, bins, r)
        x, y = centres[filled], y[filled] / 10
        xc = x - x.mean()
        slopes.append(float((xc * (y - y.mean())).sum() / (xc**2).sum()))
    return abs(slopes[0] - slopes[1])


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Tensor, Tensor], float]
    summary: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("psd_mse", psd_ring_mse, "MSE of 10 ln PSD, output vs observation, on the 0.1-0.2 ring (ISNAS-DIP)"),
        Metric("psd_emd", psd_ring_emd, "EMD between 10 ln PSD histograms on the 0.1-0.2 ring"),
        Metric("bandwidth", bandwidth, "radius holding 99% of the output's energy (lower: more low-pass)"),
        Metric("slope_gap", spectral_slope_gap, "difference of the power-law slopes of the two spectra"),
    )
}
DEFAULT_METRIC = "psd_mse"


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise DipsearchError(f"unknown pre-selection metric {name!r}; choose one of {', '.join(METRICS)}")
    return METRICS[name]
