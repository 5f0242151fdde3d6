"""Supervised studies across images: learn the network (and fit settings) that restore's members should fit.

A trial is a genome of a space; it is fitted on every clean image x noise level of the study with a restore
member's settings (the holdout split, auto stopping, the member's budget) and scored by the true PSNR of the
stopped output. The per-instance scores go to Optuna one by one, where the Wilcoxon pruner stops trials that lose
to the best so far; the pick (the best mean PSNR within a cost cap) is written as an arch file and as a space whose
default it is, and a study's best genomes can start a per-image search (`--start-from`).

    from dipsearch.study import StudySettings, run_study
    result = run_study(StudySettings(images=["photos/"], sigmas=[25], crop=128, trials=30))
    result.outcome.pick["mean_psnr"], result.run_dir / "winner_space.toml"
"""

from .api import Prepared, StudyResult, prepare_study, resume_study, run_study
from .files import TOP_GENOMES, WINNER_ARCH, WINNER_SPACE
from .settings import StudySettings

__all__ = [
    "TOP_GENOMES",
    "WINNER_ARCH",
    "WINNER_SPACE",
    "Prepared",
    "StudyResult",
    "StudySettings",
    "prepare_study",
    "resume_study",
    "run_study",
]
