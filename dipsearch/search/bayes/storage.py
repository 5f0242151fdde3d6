"""Where an Optuna study lives, who owns its running trials, and how stale ones are failed.

Storage URLs:
  PATH or journal:PATH      a journal file (JournalStorage + JournalFileBackend): the default, one file
                            inside the run folder; safe for several processes on one host or a shared
                            filesystem with working file locks.
  postgresql://... mysql://  an RDB storage: the choice for many machines.
  sqlite:///PATH            also an RDB storage, but SQLite locks the whole file on every write: fine for
                            one process, not for many parallel writers.
  redis://...               a journal on Redis (needs the redis package).

Optuna's own heartbeat exists only for RDB storages, so stale trials are found the same way for every
storage: each trial records its owner (host, pid) and a heartbeat that the owner refreshes while the trial
runs. A RUNNING trial is stale when its owner ran on this host and is gone, or when its heartbeat is older
than `stale_after` seconds (how owners on other hosts are judged). Owners beat every min(30 s, stale_after / 4),
so every process working on a study should use the same `stale_after`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from ...errors import ArgumentError, DipsearchError

JOURNAL_NAME = "study.journal"
OWNER = "owner"  # trial user attr: {"host", "pid"} of the process that asked for the trial
HEARTBEAT = "heartbeat"  # trial user attr: unix time of the owner's last sign of life
STALE = "stale"  # trial user attr set when this module failed the trial
RETRY_OF = "retry_of"  # user attr of a queued trial: the number of the abandoned trial whose genome it re-runs
HEARTBEAT_INTERVAL = 30.0
STALE_AFTER = 180.0
SQLITE_HELP = "SQLite is not for many parallel writers: use a journal file or PostgreSQL for parallel workers"


@dataclass(frozen=True)
class StorageSpec:
    """A normalised storage location: `url` is what config.toml records and workers are given."""

    url: str
    kind: str  # "journal" | "rdb" | "redis"
    path: Path | None = None  # the journal file, for kind "journal"

    @classmethod
    def parse(cls, url: str) -> StorageSpec:
        text = str(url).strip()
        if text.startswith("journal:"):
            text = text[len("journal:") :]
        elif "://" in text:
            scheme = text.split("://", 1)[0].lower()
            if scheme in ("redis", "rediss"):
                return cls(text, "redis")
            if scheme == "file":
                text = text[len("file://") :]
            else:
                return cls(text, "rdb")
        if not text:
            raise ArgumentError("empty {storage}: give a journal file path or a database URL")
        path = Path(text).expanduser().resolve()
        return cls(f"journal:{path}", "journal", path)

    @classmethod
    def in_run(cls, run_path: Path) -> StorageSpec:
        return cls.parse(str(Path(run_path) / JOURNAL_NAME))

    @property
    def display(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        if self.kind != "rdb":
            return self.url
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - a URL sqlalchemy cannot parse is shown as given
            return self.url

    def dashboard_command(self) -> str:
        target = str(self.path) if self.path is not None else self.display
        return f"optuna-dashboard {target}"


def open_storage(spec: StorageSpec) -> BaseStorage:
    """Open (creating if needed) the storage; any failure is a DipsearchError that names the URL."""
    try:
        if spec.kind == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            if not spec.path.parent.is_dir():
                raise DipsearchError(
                    f"cannot open the journal storage {spec.path}: folder {spec.path.parent} does not exist"
                )
            return JournalStorage(JournalFileBackend(str(spec.path)))
        if spec.kind == "redis":
            from optuna.storages.journal import JournalRedisBackend, JournalStorage

            return JournalStorage(JournalRedisBackend(spec.url))
        return optuna.storages.RDBStorage(spec.url)
    except DipsearchError:
        raise
    except ImportError as err:
        raise DipsearchError(
            f"cannot open the Optuna storage {spec.display}: a database driver is missing ({err}); install it "
            "(pip install 'dipsearch[postgres]' for postgresql://, redis for redis://) or use a journal file path"
        ) from None
    except Exception as err:  # noqa: BLE001 - sqlalchemy/OS errors of many kinds: report them as one
        raise DipsearchError(f"cannot open the Optuna storage {spec.display}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


# ----------------------------------------------------------------------------- owners and staleness

HOST = socket.gethostname()


def owner_attrs() -> dict[str, Any]:
    return {"host": HOST, "pid": os.getpid()}


def pid_alive(pid: int) -> bool:
    """Whether a process of this host is still running (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stale_reason(
    trial: optuna.trial.FrozenTrial, now: float, stale_after: float, unclaimed: dict[int, float] | None = None
) -> str | None:
    """Why a RUNNING trial is abandoned, or None if its owner may still be working on it.

    unclaimed: trial id -> when this process first saw the trial without an owner. dipsearch claims a trial
    right after asking for it, so one still unclaimed after stale_after seconds lost its asker in between and,
    left RUNNING, would hold the study's target for ever. Without the dict, unclaimed trials are left alone.
    """
    owner = trial.user_attrs.get(OWNER)
    if not isinstance(owner, dict):
        if unclaimed is None:
            return None
        # This process's own clock, not the ask time: an RDB storage keeps that in the asker's local time zone.
        seen = unclaimed.setdefault(trial._trial_id, now)  # noqa: SLF001
        return f"asked but not claimed by any process for {now - seen:.0f} s" if now - seen > stale_after else None
    if owner.get("host") == HOST and owner.get("pid") != os.getpid() and not pid_alive(int(owner.get("pid", -1))):
        return f"owner process {owner.get('pid')} on {HOST} is gone"
    beat = trial.user_attrs.get(HEARTBEAT)
    if isinstance(beat, (int, float)) and now - beat > stale_after:
        return f"no heartbeat from {owner.get('host')}:{owner.get('pid')} for {now - beat:.0f} s"
    return None


def check_stale_after(stale_after: float) -> None:
    if not stale_after > 0:  # also refuses NaN
        raise ArgumentError("{stale_after} must be > 0 seconds, got {value}", value=stale_after)


def fail_stale_trials(
    study: optuna.Study, stale_after: float = STALE_AFTER, unclaimed: dict[int, float] | None = None
) -> list[int]:
    """Mark RUNNING trials whose owner is gone as FAIL (with the reason in user attr 'stale');
    `unclaimed` as in stale_reason, kept by a process that looks at the study again and again."""
    failed = []
    storage = study._storage  # noqa: SLF001 - Study exposes no public storage accessor
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, now, stale_after, unclaimed)
        if reason is None:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, STALE, reason)  # noqa: SLF001
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):  # noqa: SLF001
                failed.append(trial.number)
                _ask_again(study, trial)
        except UpdateFinishedTrialError:
            pass  # its owner (or another restarting process) finished it meanwhile
    return failed


def _ask_again(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue the abandoned trial's genome, so the next ask re-runs it rather than losing the point the sampler chose.
    Only a claimed trial (its genome recorded, every gene suggested) can be re-run; one that died while being asked
    has no complete genome and is simply replaced by a new sample."""
    if "genome" in trial.user_attrs and trial.params:
        study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number})


class Heartbeat:
    """A daemon thread that refreshes the heartbeat of this process's running trials."""

    def __init__(self, storage: BaseStorage, interval: float = HEARTBEAT_INTERVAL):
        self.storage = storage
        self.interval = interval
        self.trials: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dipsearch-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def start_trial(self, trial_id: int) -> None:
        """Record this process as the trial's owner, with a first heartbeat."""
        self.storage.set_trial_user_attr(trial_id, OWNER, owner_attrs())
        self.storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())
        with self._lock:
            self.trials.add(trial_id)

    def end_trial(self, trial_id: int) -> None:
        with self._lock:
            self.trials.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trials = list(self.trials)
            for trial_id in trials:
                try:
                    self.storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())
                except Exception:  # noqa: BLE001 - finished meanwhile, or storage hiccup: next beat retries
                    pass
