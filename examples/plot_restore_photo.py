"""
Restore a photo
===============

Denoise a photo without ground truth: fit the default hourglass to the noisy image and let the EMV detector
stop the fit at the iteration it judges best. The clean image is known here (the packaged demo image, noise
synthesised with seed 0), so the figure can show the true PSNR; the fit itself never sees it.

``dipsearch restore photo.png`` does this on the command line at the full budget, with the recommended stopping
(``auto``), and averages the fit with three refits of other seeds.
"""

import matplotlib.pyplot as plt
import torch

import dipsearch
from dipsearch.search import ProblemRecipe
from dipsearch.stopping import StoppingHook, make_detector

torch.set_num_threads(1)

# %%
# The problem: a 64 px crop of the demo image with Gaussian noise of sigma 25 (on the 0-255 scale).
problem = ProblemRecipe(demo=True, crop=64, seed=0).build()

# %%
# The fit: at most 600 iterations; EMV stops it after 150 steps without a new minimum of its statistic.
detector = make_detector("emv")
hook = StoppingHook.online(detector, detector.rule(patience=150))
result = dipsearch.fit(hook.prepare(problem), dipsearch.ArchSpec(), dipsearch.FitConfig(iters=600, seed=0), [hook])
summary = result.summary(problem)
print({k: summary[k] for k in ("iters_run", "stopped_iter", "psnr_observed", "psnr_stopped", "psnr_peak")})

# %%
# Observation, restoration and ground truth side by side.
images = {
    f"noisy ({summary['psnr_observed']:.2f} dB)": problem.observed,
    f"restored, stopped at {summary['stopped_iter']} ({summary['psnr_stopped']:.2f} dB)": result.extras["images"][
        "output_stopped"
    ],
    "clean": problem.clean,
}
fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
for ax, (title, image) in zip(axes, images.items()):
    ax.imshow(image[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()
