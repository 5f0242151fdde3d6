"""TensorBoard logs of fits and searches (optional extra `tensorboard`: pip install 'dipsearch[tensorboard]').

    fit(problem, spec, config, hooks=[stopper, TensorBoardHook("runs/tb/fit")])   # stopping hooks first

A fit's run holds every trace column as a scalar curve (`trace/loss`, `trace/psnr`, `trace/stat_emv`, ...),
the output image every `image_every` steps (`image/output`), the observation and clean image, the final, EMA
and stopped images, the step a stopping rule chose (`stop/chosen_step`) and the summary's numbers
(`summary/...`). Nothing is written per step: scalars are written when the engine flushes its trace (every
config.trace_every steps, when the values are fetched from the device anyway), and an image is kept on the
device until that flush. A search writes one run per evaluated candidate, `candidate_<index>`, holding that
fit plus its genes as hparams and its scores as metrics (`hparam/fitness`, `hparam/psnr` where the clean image
is known, ...): TensorBoard's HParams view then compares the candidates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from ..errors import ArgumentError, DipsearchError
from .fit import FitConfig, FitHook, FitResult, StepState

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from ..problems.problem import Problem

FOLDER = "tensorboard"  # a run folder's TensorBoard logs: `tensorboard --logdir <run folder>/tensorboard`
IMAGE_EVERY = 100
MISSING = "TensorBoard logs (--log tensorboard) need the tensorboard extra: pip install 'dipsearch[tensorboard]'"
METRICS = ("fitness", "psnr", "params", "iters_run", "seconds", "stopped_iter")


def require() -> None:
    """Fail with the install line when the extra is missing: before any work, and before any folder is made."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401 - imports the tensorboard package
    except ImportError:
        raise DipsearchError(MISSING) from None


def writer(logdir: str | Path) -> SummaryWriter:
    require()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(logdir))


def _image(image: Tensor) -> Tensor:
    """1xCxHxW on any device -> CxHxW in [0, 1] on the CPU, as add_image takes it."""
    return image.detach()[0].float().clamp(0, 1).cpu()


class TensorBoardHook(FitHook):
    """Writes one fit as one TensorBoard run in `logdir` (see the module's docstring for the tags).

    Put it after any stopping hook: it reads the step the rule chose when the fit ends.
    image_every: the output image every k steps (and at step 1); 0: only the final images.
    """

    name = "tensorboard"
    step_feed = "cadence"  # only the image steps need the live output: a captured CUDA step replays between them

    def __init__(self, logdir: str | Path, image_every: int = IMAGE_EVERY) -> None:
        if image_every < 0:
            raise ArgumentError("{image_every} must be >= 0, got {value}", value=image_every)
        require()
        self.logdir, self.image_every = Path(logdir), image_every
        self.writer: SummaryWriter | None = None
        self.images: list[tuple[int, Tensor]] = []
        self.problem: Problem | None = None

    def on_start(self, problem: Problem, spec: Any, config: FitConfig) -> None:
        self.writer = writer(self.logdir)
        self.problem, self.images = problem, []
        self.writer.add_text("config", f"```\n{json.dumps(config.to_dict(), indent=1, default=str)}\n```")
        self.writer.add_image("image/observed", _image(problem.observed), 0)
        if problem.clean is not None:
            self.writer.add_image("image/clean", _image(problem.clean), 0)

    def wants_live(self, step: int) -> bool:
        every = self.image_every
        return bool(every) and (step == 1 or step % every == 0)

    def on_step(self, state: StepState) -> None:
        if self.wants_live(state.step):
            # Copied on the device (an engine may reuse its output buffer, as a captured CUDA graph does), and
            # fetched at the next flush, with the trace rows: no host synchronisation here.
            self.images.append((state.step, state.out.clone()))

    def on_flush(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"trace/{key}", float(value), step)
        last = int(rows[-1]["step"])
        due = [(step, image) for step, image in self.images if step <= last]
        self.images = [(step, image) for step, image in self.images if step > last]
        for step, image in due:
            self.writer.add_image("image/output", _image(image), step)

    def on_end(self, result: FitResult) -> None:
        w, end = self.writer, result.iters_run
        w.add_image("image/output_final", _image(result.output), end)
        w.add_image("image/output_ema", _image(result.ema), end)
        for name, image in result.extras.get("images", {}).items():
            w.add_image(f"image/{name}", _image(image), end)
        chosen = result.summary_extra.get("stopped_iter")
        if chosen is not None:
            w.add_scalar("stop/chosen_step", int(chosen), end)
            w.add_text("stop", f"{result.stopped_by or 'no rule fired'}: step {chosen} chosen, {end} run")
        for key, value in result.summary(self.problem).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                w.add_scalar(f"summary/{key}", float(value), end)
        self.close()

    def close(self) -> None:
        """Write out and close the run (on_end does; call it after a fit that raised). Idempotent."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
