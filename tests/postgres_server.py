"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, pg_ctl start on a free port.

PostgreSQL refuses to run as root, so when the tests run as root (CI containers do) the server runs as the
`postgres` user that Debian's package creates, in a folder that user owns. The folder is made under the system
temporary directory rather than pytest's tmp_path, whose root-only parent the server user cannot enter.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"


class Unavailable(Exception):
    """The server cannot be found or started here: the reason is the skip message."""


def server_bin() -> Path:
    """The folder of initdb and pg_ctl: Debian keeps them off PATH, under /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise Unavailable(
            "no PostgreSQL server here (initdb is neither on PATH nor under /usr/lib/postgresql/*/bin): "
            "install Debian's postgresql package (apt-get install postgresql), as .ci/run does"
        )
    return Path(versions[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    bin: Path
    root: Path  # data folder, socket and log live here
    port: int
    user: pwd.struct_passwd | None  # who runs the server (None: this user)

    @classmethod
    def start(cls) -> Server:
        bin_dir = server_bin()
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise Unavailable(
                    f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as (it "
                    "refuses to run as root; Debian's postgresql package creates the user)"
                ) from None
        root = Path(tempfile.mkdtemp(prefix="dipsearch-pg-"))
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        server = cls(bin_dir, root, free_port(), user)
        try:
            server._run("initdb", "-D", str(root / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
            # fsync off: a test database need not survive a power cut, and fsyncs dominate on a busy disk.
            options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
            server._run(
                "pg_ctl",
                "-D",
                str(root / "data"),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
            server._run("createdb", "-h", str(root), "-p", str(server.port), "-U", "postgres", "dipsearch")
        except Unavailable:
            server.stop()
            raise
        return server

    def url(self, database: str = "dipsearch") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []} if self.user else {}
        done = subprocess.run(
            [str(self.bin / program), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **kwargs,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
            output = (done.stderr or done.stdout).strip()
            raise Unavailable(f"{program} failed (exit {done.returncode}): {output} {tail}")

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").is_file():
            try:
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
            except Unavailable:
                pass  # already gone; the folder goes anyway
        shutil.rmtree(self.root, ignore_errors=True)
