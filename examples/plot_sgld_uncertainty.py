"""
An SGLD uncertainty map
=======================

Bayesian DIP: after every Adam step, Langevin noise on the convolution weights turns the fit into a sampler;
after a burn-in, the outputs are posterior samples. Their mean is the restoration, their per-pixel standard
deviation an uncertainty map, which tends to be high where the error is. Toy size: a 48 px crop and 400 steps
(the published run takes 20000 with a 7000-step burn-in).
"""

import matplotlib.pyplot as plt
import torch

import dipsearch
from dipsearch.search import ProblemRecipe
from dipsearch.variants import VariantSettings, fit_variant

torch.set_num_threads(1)

problem = ProblemRecipe(demo=True, crop=48, seed=0).build()
sgld = VariantSettings("sgld", burn_in=150, sample_every=5)
result = fit_variant(problem, dipsearch.ArchSpec(), dipsearch.FitConfig(iters=400, seed=0), sgld)
summary = result.summary(problem)
print({k: summary[k] for k in ("sgld_samples", "psnr_posterior", "uncertainty_mean", "uncertainty_error_corr")})

# %%
# Posterior mean, its absolute error, and the uncertainty map.
mean = result.extras["images"]["output_posterior"]
error = (mean - problem.clean).abs().mean(dim=1)[0]
uncertainty = result.extras["uncertainty"]
uncertainty = uncertainty.mean(dim=1)[0] if uncertainty.dim() == 4 else uncertainty.squeeze()
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
axes[0].imshow(mean[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
axes[0].set_title(f"posterior mean ({summary['psnr_posterior']:.2f} dB)", fontsize=9)
for ax, image, title in ((axes[1], error, "absolute error"), (axes[2], uncertainty, "uncertainty (std)")):
    shown = ax.imshow(image.cpu().numpy(), cmap="magma")
    ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax, fraction=0.046)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()
