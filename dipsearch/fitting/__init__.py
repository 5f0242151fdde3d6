"""One DIP fit: its settings, hooks and result (fitbase.py), fit() (fit.py), the engine in its parts
(parts.py: optimiser, losses and weights; step.py: the training step and trace; capture.py: the
CUDA-graph step and its ring buffer; loop.py: Engine, the loop; replicas.py: K replicas in one launch),
the memory estimate (memory.py) and the hooks that watch a fit (progress.py, tensorboard.py).

Nothing here knows searches, scores or run folders: those layers (scoring, search, pipelines) call in."""
