"""The ensemble that ends a final rung: a weighted average of the finalists' stopped outputs.

Choosing one network without ground truth is close to a coin flip between good finalists; averaging them is not:
their errors are partly independent, so the average is closer to the clean image than most members. The weights
are judged on the held-out pixels that no member was fitted on (the final rung fits every member on the same
split), where E[(prediction - observed)^2] = true error + sigma^2: a combination that predicts the withheld
observations better is closer to the clean image by the same amount.

Weightings (WEIGHTINGS):
  equal         1/n each; needs no held-out pixels.
  inverse-mse   each member's weight proportional to 1 / its held-out MSE: the noise variance sits in every MSE,
                so the weights stay near equal unless a member fitted clearly worse.
  fitted        the non-negative weights summing to one that best predict the held-out values (least squares on
                the simplex), shrunk towards equal weights by the amount that predicts held-out folds best
                (cross-validated): a ground-truth-free way to drop a bad member without overfitting a few
                hundred noisy pixels.

Members on their own splits (RungPlan.splits "own": each restart withholds the pixels of its own seed): the
withheld pixels are where a member is weakest (it inpaints them), and a shared split puts that weakness in every
member at the same place. With splits of their own, each member is weighed by the held-out MSE of its own split
(inverse-mse; equal), and on a pointwise task (denoising, inpainting: the split lies on the output's pixels) each
pixel is averaged over the members that fitted it. No pixel is then withheld from every member, so the combination
has no held-out score, and fitted weights (which need one) are not available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ArgumentError

WEIGHTINGS = ("equal", "inverse-mse", "fitted")


def default_weighting(held_out: bool) -> str:
    """inverse-mse where held-out pixels exist, else equal. Measured (bench/search_vs_default.py, four images,
    sigma 25, members stopped with the recommended stopping): inverse-mse and equal within 0.05 dB of each other on
    every image, fitted 0.3-2.1 dB below them on three of four (its few hundred held-out values overfit)."""
    return "inverse-mse" if held_out else "equal"


SHRINKS = (0.0, 0.25, 0.5, 0.75, 1.0)  # candidate amounts of pull towards equal weights, chosen by cross-validation
FOLDS = 5


@dataclass(frozen=True)
class HeldOutValues:
    """What the members predict on the held-out pixels and what was observed there (float64, CPU)."""

    predictions: Tensor  # members x values
    targets: Tensor  # values

    @property
    def members(self) -> int:
        return self.predictions.shape[0]

    def mse(self, weights: Tensor) -> float:
        return float(((weights @ self.predictions - self.targets) ** 2).mean())


def check_weighting(name: str) -> None:
    if name not in WEIGHTINGS:
        raise ArgumentError("unknown {weights} {name!r}; choose one of {names}", name=name, names=", ".join(WEIGHTINGS))


def simplex_least_squares(values: HeldOutValues, iters: int = 3000) -> Tensor:
    """argmin ||w P - y||^2 over w >= 0, sum w = 1 (accelerated projected gradient on the members' Gram matrix:
    the cost per step does not depend on the number of pixels)."""
    p, y = values.predictions, values.targets
    gram, cross = p @ p.T, p @ y
    n = values.members
    step = 1.0 / max(float(torch.linalg.eigvalsh(gram).max()), 1e-12)
    w = torch.full((n,), 1.0 / n, dtype=p.dtype)
    z, t = w.clone(), 1.0
    for _ in range(iters):
        nxt = project_simplex(z - step * (gram @ z - cross))
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = nxt + (t - 1) / t_next * (nxt - w)
        w, t = nxt, t_next
    return w


def project_simplex(v: Tensor) -> Tensor:
    """The Euclidean projection of v onto {w >= 0, sum w = 1} (sort-based, exact)."""
    u, _ = torch.sort(v, descending=True)
    cumulative = torch.cumsum(u, 0) - 1
    ranks = torch.arange(1, v.numel() + 1, dtype=v.dtype)
    rho = int((u - cumulative / ranks > 0).nonzero().max())
    return torch.clamp(v - cumulative[rho] / (rho + 1), min=0)


def fitted_weights(values: HeldOutValues, folds: int = FOLDS, seed: int = 0) -> tuple[Tensor, float]:
    """Simplex least-squares weights shrunk towards equal by the cross-validated amount; returns the weights and
    their cross-validated held-out MSE (each fold scored with weights fitted on the other folds)."""
    n, count = values.members, values.targets.numel()
    if count < 2 * folds:
        raise ArgumentError(
            "fitted ensemble weights need at least {least} held-out values, got {count}; use a larger image, a "
            "larger held-out fraction, or {weights} equal",
            least=2 * folds,
            count=count,
        )
    equal = torch.full((n,), 1.0 / n, dtype=values.predictions.dtype)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    parts = torch.chunk(order, folds)
    errors = torch.zeros(len(SHRINKS), dtype=values.predictions.dtype)
    for part in parts:
        train = torch.ones(count, dtype=torch.bool)
        train[part] = False
        w = simplex_least_squares(HeldOutValues(values.predictions[:, train], values.targets[train]))
        test = HeldOutValues(values.predictions[:, part], values.targets[part])
        for i, shrink in enumerate(SHRINKS):
            errors[i] += test.mse((1 - shrink) * w + shrink * equal) * part.numel()
    best = int(errors.argmin())
    w = (1 - SHRINKS[best]) * simplex_least_squares(values) + SHRINKS[best] * equal
    return w / w.sum(), float(errors[best]) / count


def ensemble_weights(method: str, values: HeldOutValues | None, members: int) -> tuple[list[float], float | None]:
    """The members' weights by `method` and the held-out MSE that judges the combination (cross-validated for
    the fitted weights); values None means no held-out pixels exist, which only equal weights can do without."""
    check_weighting(method)
    equal = [1.0 / members] * members
    if values is None:
        if method != "equal":
            raise ArgumentError(
                "{weights} {name} needs held-out pixels, and this search's fitness holds none out; use "
                "{fitness} holdout or {weights} equal",
                name=method,
            )
        return equal, None
    if method == "equal":
        w = torch.tensor(equal, dtype=values.predictions.dtype)
        return equal, values.mse(w)
    if method == "inverse-mse":
        inverse = 1.0 / ((values.predictions - values.targets) ** 2).mean(dim=1).clamp_min(1e-20)
        w = inverse / inverse.sum()
        return w.tolist(), values.mse(w)
    w, mse = fitted_weights(values)
    return w.tolist(), mse


def combine(images: list[Tensor], weights: list[float], withheld: list[Tensor] | None = None) -> Tensor:
    """The weighted average of same-shaped images, in [0, 1]. `withheld` (one 1x1xHxW {0, 1} mask per image, on
    the images' grid): each pixel is averaged over the images whose fit saw it, with their weights renormalised;
    a pixel every image withheld keeps the plain average."""
    out = torch.zeros_like(images[0], dtype=torch.float64)
    for weight, image in zip(weights, images):
        out += weight * image.to(torch.float64)
    if withheld is not None:
        seen = [weight * (1 - mask.to(torch.float64).cpu()) for weight, mask in zip(weights, withheld)]
        total = sum(seen)
        covered = sum(s * image.to(torch.float64) for s, image in zip(seen, images)) / total.clamp_min(1e-12)
        out = torch.where(total > 1e-12, covered, out)
    return out.clamp(0, 1).to(images[0].dtype)


def to_psnr(mse: float | None) -> float | None:
    if mse is None:
        return None
    return math.inf if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def held_out_values(fitness: Any, problem: Any, seed: int, images: list[Tensor]) -> HeldOutValues | None:
    """The images' predictions of the pixels `fitness` withholds with `seed` (None when it withholds none)."""
    from ..scoring.fitness import HoldoutFitness

    if not isinstance(fitness, HoldoutFitness):
        return None
    prepared = fitness.prepare(problem, seed)
    pairs = [fitness.held.values(image, prepared) for image in images]
    return HeldOutValues(torch.stack([p for p, _ in pairs]), pairs[0][1])


@dataclass(frozen=True)
class OwnSplits:
    """Members fitted on splits of their own: each one's predictions of the pixels it withheld, and where those
    pixels lie on the output's grid (None when the split is in another space: super-resolution, blur)."""

    values: list[HeldOutValues]  # one single-member HeldOutValues per member
    withheld: list[Tensor] | None  # one 1x1xHxW {0, 1} mask per member

    def mse(self) -> list[float]:
        return [v.mse(torch.ones(1, dtype=v.predictions.dtype)) for v in self.values]


def own_splits(fitness: Any, problem: Any, seeds: list[int], images: list[Tensor]) -> OwnSplits | None:
    """Each image scored on the pixels `fitness` withholds with its own seed (None when it withholds none)."""
    from torch import nn

    from ..scoring.fitness import HoldoutFitness

    if not isinstance(fitness, HoldoutFitness):
        return None
    values, withheld = [], []
    for seed, image in zip(seeds, images):
        prepared = fitness.prepare(problem, seed)
        predicted, observed = fitness.held.values(image, prepared)
        values.append(HeldOutValues(predicted.unsqueeze(0), observed))
        withheld.append(fitness.held.mask.cpu())
    pointwise = isinstance(problem.operator, nn.Identity) and tuple(problem.observed.shape[-2:]) == tuple(
        images[0].shape[-2:]
    )
    return OwnSplits(values, withheld if pointwise else None)


def own_split_weights(method: str, splits: OwnSplits, members: int) -> list[float]:
    """Weights of members on splits of their own: equal, or inverse to each member's own held-out MSE."""
    check_weighting(method)
    if method == "fitted":
        raise ArgumentError(
            "{weights} fitted needs every member on one held-out split; these members withheld splits of their "
            "own: use {weights} inverse-mse or equal"
        )
    if method == "equal":
        return [1.0 / members] * members
    inverse = [1.0 / max(mse, 1e-20) for mse in splits.mse()]
    return [w / sum(inverse) for w in inverse]


def make_ensemble(
    keys: list[str],
    images: list[Tensor],
    values: HeldOutValues | OwnSplits | None,
    method: str | None,
    clean: Tensor | None,
) -> Ensemble:
    """The ensemble of `images` by `method` (None: inverse-mse where held-out values exist, else equal), with the
    other weightings' weights and scores beside it; true PSNRs only when `clean` is given. `values`: the members'
    predictions of one shared split, or of their own splits (OwnSplits), or None."""
    from ..metrics import psnr

    method = method or default_weighting(values is not None)
    own = values if isinstance(values, OwnSplits) else None

    def judged(name: str) -> tuple[list[float], Tensor, float | None, float | None]:
        if own is not None:
            weights, mse = own_split_weights(name, own, len(images)), None
            image = combine(images, weights, own.withheld)
        else:
            weights, mse = ensemble_weights(name, values, len(images))
            image = combine(images, weights)
        return weights, image, to_psnr(mse), psnr(image, clean.cpu()) if clean is not None else None

    weights, image, score, true = judged(method)
    alternatives = {}
    available = ("equal", "inverse-mse") if own is not None else WEIGHTINGS if values is not None else ("equal",)
    for name in WEIGHTINGS:
        if name != method and name in available:
            try:
                w, _, other_score, other_true = judged(name)
            except ArgumentError:  # a comparison only (e.g. fitted weights on too few held-out values): not shown
                continue
            alternatives[name] = {"weights": [round(x, 6) for x in w], "heldout_psnr": other_score, "psnr": other_true}
    return Ensemble(method, keys, weights, image, score, true, alternatives)


@dataclass
class Ensemble:
    """The final rung's ensemble: which members, how weighted, and its scores."""

    method: str
    keys: list[str]  # the members' candidate keys, in the order of `weights`
    weights: list[float]
    image: Tensor
    # the GT-free score of the combination (cross-validated for fitted weights); None without a split that every
    # member withheld
    heldout_psnr: float | None
    psnr: float | None = None  # true PSNR, only when a clean image is known
    alternatives: dict[str, dict[str, Any]] | None = None  # the other weightings, for comparison

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "members": self.keys,
            "weights": [round(w, 6) for w in self.weights],
            "heldout_psnr": self.heldout_psnr,
            "psnr": self.psnr,
            "weightings": self.alternatives or {},
        }
