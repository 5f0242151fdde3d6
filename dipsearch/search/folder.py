"""The run folder of a search, as every searcher that drives its own loop makes, reopens and extends it.

A new folder holds the space as searched (SPACE_SNAPSHOT), config.toml ([search], [problem], [rungs], [recipe],
[spec], the stop and the searcher's own settings under its name), versions.toml and the seeding's genomes; a
folder is reopened only by the searcher that made it, and extended, never cut short.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError, DipsearchError
from ..store.runs import RunDir
from ..store.tomlio import load_toml
from .prepare import SPACE_SNAPSHOT, space_snapshot

if TYPE_CHECKING:
    from .prepare import SearchSetup
    from .spec import Runtime


def create_folder(
    setup: SearchSetup,
    searcher: str,
    settings: Any,
    runtime: Runtime,
    initial: list[Any],
    seeding: dict[str, Any] | None,
) -> RunDir:
    """A new run folder under runtime.out/search/ with everything a resume needs, before the first fit."""
    from ..fitting.fit import resolve_device
    from ..preselect.seeding import record_seeding, save_initial

    run = RunDir.create(runtime.out, "search", searcher)
    run.write_text(SPACE_SNAPSHOT, space_snapshot(setup.spec))
    config = setup.config()
    config["search"].update(searcher=searcher, threads=setup.threads, space_snapshot=SPACE_SNAPSHOT)
    config[searcher] = asdict(settings)
    config["stop"] = setup.spec.stop.to_dict() if setup.spec.stop else None  # the stopping of every fit
    run.write_toml("config.toml", config)
    run.write_versions(str(resolve_device(setup.spec.device)))
    if seeding:
        save_initial(run, initial)
        record_seeding(run, seeding)
    return run


def open_folder(
    run_dir: str | Path, searcher: str, command: str, label: str | None = None
) -> tuple[RunDir, dict[str, Any]]:
    """The run folder and its config.toml, refused unless `searcher` made it (with its space snapshot)."""
    run = RunDir.open(run_dir)
    config = load_toml(run.file("config.toml"), "run configuration")
    made_by = config.get("search", {}).get("searcher")
    if made_by != searcher or searcher not in config or not run.file(SPACE_SNAPSHOT).is_file():
        other = f"; it was made by `dipsearch search {made_by}`: resume it with that" if made_by != searcher else ""
        raise DipsearchError(
            f"{run.path} is not a {label or searcher} search run folder (its config.toml has no [{searcher}] table "
            f"or it has no {SPACE_SNAPSHOT}); resume a folder made by `{command}`" + (other if made_by else "")
        )
    return run, config


def refuse_shrink(argument: str, value: int, done: int, run_dir: Path, has: str) -> None:
    """A resumed run is extended, never cut short: `value` below what the run already has is an error.
    `has` says what it has, with {done}: "finished {done} generations"."""
    if value < done:
        raise ArgumentError(
            "{" + argument + "} is {value}, but the run in {run_dir} has " + has + ": a run is extended, "
            "never cut short (give more than {done} to extend it, or leave {" + argument + "} out to continue it "
            "as it was)",
            value=value,
            done=done,
            run_dir=run_dir,
        )
