"""The noise kinds, without torch: the task registry (problems/base.py) and the CLI read them at start-up,
the noise models (problems/noise.py, which imports torch) implement them."""

NOISE_KINDS = ("gaussian", "poisson", "impulse", "speckle")
