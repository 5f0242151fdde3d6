"""
Search an architecture
======================

A genetic search over the demo space, scored without ground truth: each candidate is a short fit scored on
held-out pixels (5 % of the observed pixels withheld from the loss), and a final rung refits the best ones and
the default network with EMV stopping and keeps the best by that score. Toy size: a 64 px crop, population 4,
one generation, 60 iterations per candidate.

``dipsearch search ga --demo`` runs the same on the command line at its demo budget.
"""

import json
import tempfile

import matplotlib.pyplot as plt
import torch
from rich.console import Console

from dipsearch.search import ProblemRecipe, Runtime, SearchSpec, ga
from dipsearch.search.ga import GAConfig
from dipsearch.search.rungs import RungPlan

torch.set_num_threads(1)

recipe = ProblemRecipe(demo=True, crop=64, seed=0)
spec = SearchSpec(space="demo", iters=60, ga=GAConfig(pop=4, gens=1), rungs=RungPlan(final=2, final_iters=250))
with tempfile.TemporaryDirectory() as out:
    result = ga.run(recipe, spec, Runtime(out=out, console=Console(quiet=True)))
    # the run folder's log: one line per fit, the final rung's marked with "rung": "final"
    log = (result.run_dir / "evaluations.jsonl").read_text().splitlines()
    evaluations = [json.loads(line) for line in log]

print(result.best_arch)
print(f"held-out fitness {result.best_fitness:.2f} dB, true PSNR {result.best_psnr:.2f} dB")

# %%
# Every evaluation: the held-out fitness (what the search sees) against the true PSNR (what it cannot see).
# Screening fits are short, so their true PSNR is low; the final rung's fits ran to their stop.
screen = [e for e in evaluations if e.get("rung") is None and e.get("fitness") is not None]
final = [e for e in evaluations if e.get("rung") == "final"]
fig, ax = plt.subplots(figsize=(5, 3.6))
ax.scatter([e["fitness"] for e in screen], [e["psnr"] for e in screen], label="screening (60 it)")
ax.scatter([e["fitness"] for e in final], [e["psnr"] for e in final], marker="s", label="final rung (250 it, EMV)")
ax.set_xlabel("held-out PSNR vs the noisy image (dB)")
ax.set_ylabel("true PSNR (dB)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
