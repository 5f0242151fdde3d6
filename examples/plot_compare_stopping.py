"""
Compare stopping detectors
==========================

Record one fit with several detectors watching, then replay each detector's stopping rule on the recorded
trace: no refit per detector. The clean image is known, so the true PSNR curve shows where each rule stopped
against the best iteration. ``dipsearch stop-bench`` does this over many images, noises and seeds.
"""

import matplotlib.pyplot as plt
import torch

import dipsearch
from dipsearch.search import ProblemRecipe
from dipsearch.stopping import EMV, WMV, Holdout, StoppingHook, replay

torch.set_num_threads(1)

problem = ProblemRecipe(demo=True, crop=64, seed=0).build()
detectors = [WMV(window=50), EMV(warmup=50), Holdout()]
recorder = StoppingHook(detectors)  # passive: every statistic goes into the trace
result = dipsearch.fit(recorder.prepare(problem), dipsearch.ArchSpec(), dipsearch.FitConfig(iters=800), [recorder])
trace = result.trace

# %%
# Each detector's rule, with a patience short enough for this 800-step run.
steps = [row["step"] for row in trace]
psnr = [row["psnr"] for row in trace]
peak = max(range(len(psnr)), key=psnr.__getitem__)
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.plot(steps, psnr, color="black", linewidth=1, label=f"true PSNR (peak {psnr[peak]:.2f} dB at {steps[peak]})")
for detector, colour in zip(detectors, ("tab:blue", "tab:orange", "tab:green")):
    decision = replay(trace, detector.rule(patience=200))
    at = steps.index(decision.chosen)
    print(f"{detector.name}: stops at {decision.chosen}, true PSNR {psnr[at]:.2f} dB")
    ax.axvline(decision.chosen, color=colour, linestyle="--", label=f"{detector.name}: {psnr[at]:.2f} dB")
ax.set_xlabel("iteration")
ax.set_ylabel("PSNR (dB)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
