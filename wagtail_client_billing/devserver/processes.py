"""Start child processes, show their output line by line under a name, and stop them all.

Each child runs in a session (and so a process group) of its own: a Ctrl-C in the
terminal reaches only the command, which then stops the children one way for all of
them. :meth:`Supervisor.stop` sends ``SIGTERM`` to each child (not to its group: the
qcluster stops its own workers, and a worker that got the signal too would leave its
parent waiting), waits up to a deadline, then kills every process left in each group,
including grandchildren a child left behind. ``SIGTERM`` rather than ``SIGINT``: a
process still importing Django dies of it quietly, where ``SIGINT`` prints a
``KeyboardInterrupt`` traceback; Django's autoreloader, django-q2 and the Stripe
emulator each handle it as a clean stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class Supervisor:
    """The children of one command, and where their output goes.

    ``write`` receives whole lines, already prefixed with the child's name.
    """

    write: Callable[[str], None]
    env: Mapping[str, str]
    cwd: str | None = None
    children: list[Child] = field(default_factory=list)
    _width: int = 8

    def start(self, name: str, args: Sequence[str]) -> Child:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            list(args),
            cwd=self.cwd,
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name, process)
        self._width = max(self._width, len(name))
        child.reader = threading.Thread(
            target=self._relay, args=(child,), name=f"output of {name}", daemon=True
        )
        child.reader.start()
        self.children.append(child)
        return child

    def _relay(self, child: Child) -> None:
        stream: IO[bytes] | None = child.process.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.write(f"{child.name:<{self._width}} | {line}\n")
        stream.close()

    def exited(self) -> Child | None:
        """A child that has stopped on its own, if any."""
        return next((c for c in self.children if not c.running()), None)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask every child to stop, wait up to ``timeout`` seconds in all, then kill."""
        for child in self.children:
            if child.running():
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill_groups(self) -> None:
        """Kill whatever is left in each child's process group, now (safe in a signal handler)."""
        for child in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill whatever is left in each child's process group, and reap the children."""
        self.kill_groups()
        for child in self.children:
            child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=5)


def answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url`` (any status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own loopback URL)
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def wait_until_answers(url: str, child: Child, stop: threading.Event, timeout: float) -> str | None:
    """Poll ``url`` until it answers; the reason if it does not (child died, stop, time)."""
    deadline = time.monotonic() + timeout
    while not answers(url):
        if not child.running():
            return f"{child.name} exited with code {child.process.returncode}"
        if stop.wait(0.25):
            return "stopped"
        if time.monotonic() > deadline:
            return f"{child.name} did not answer at {url} within {timeout:.0f} s"
    return None
