"""A fit variant in one module: AdamW (Adam with decoupled weight decay) instead of the seed's Adam.

A variant changes how the engine fits through its seams (here the optimizer factory of FitParts) and may add
hooks; register_variant makes it a `variant=` value of VariantSettings and of every search space's `variant`
gene in this process.

    python docs/extending/examples/adamw_variant.py     # fits the demo crop with both variants
"""

from __future__ import annotations

import torch

from dipsearch.variants import Variant, register_variant

WEIGHT_DECAY = 1e-4  # decoupled: it shrinks the weights directly, not through Adam's gradient statistics


@register_variant
class AdamW(Variant):
    name = "adamw"
    summary = "Adam with decoupled weight decay"

    def apply(self, parts, settings, config):
        parts.optimizer = lambda params, fit_config: torch.optim.AdamW(
            params, lr=fit_config.lr, weight_decay=WEIGHT_DECAY
        )
        return []  # no hooks: the optimizer is all this variant changes


def main(iters: int = 300) -> dict[str, float]:
    """The true PSNR of a plain and an AdamW fit of the demo image's 64 px crop (Gaussian noise, sigma 25)."""
    import dipsearch
    from dipsearch.nets.space import load_space
    from dipsearch.problems.recipe import demo_image_path
    from dipsearch.store.imageio import load_image
    from dipsearch.variants import VariantSettings, fit_variant

    clean = load_image(demo_image_path())[..., :64, :64]
    problem = dipsearch.make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=0)
    spec = load_space("demo").default_spec
    config = dipsearch.FitConfig(iters=iters, seed=0)
    return {
        name: fit_variant(problem, spec, config, VariantSettings(variant=name)).summary(problem)["psnr_final"]
        for name in ("plain", "adamw")
    }


if __name__ == "__main__":
    for name, value in main().items():
        print(f"{name}: {value:.2f} dB")
