"""Candidates scored: one short fit of one architecture (evaluate.py), the fitnesses that score it
(fitness.py) and the executors that run evaluations in-process, in a pool or on Dask (executors.py)."""
