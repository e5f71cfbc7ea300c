"""Knowing when the main container has started and finished (SPEC §5).

Every watcher has the same two calls.  ``wait_to_start`` returns once the main
container is running (or at once if this watcher cannot tell); ``wait_to_exit``
returns once it has finished.  Each wait also ends when the ``ended`` token is
set — the CLI sets it on SIGTERM, which in a pod is Kubernetes telling a
native sidecar the main container is done, whatever watcher was chosen — and
raises :class:`~copilot.cancel.Cancelled` when the step's ``cancel`` token is.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from copilot.cancel import CancelToken
from copilot.constants import ERROR_FILE, START_FILE, SUCCESS_FILE
from copilot.durations import format_duration_ns
from copilot.errors import CopilotError, UsageError
from copilot.modes import WatcherType

log = logging.getLogger("copilot")


class Watcher(Protocol):
    def wait_to_start(self, cancel: CancelToken) -> str: ...

    def wait_to_exit(self, cancel: CancelToken) -> str: ...


class _Wake:
    """Sleeps that end early when ``ended`` or ``cancel`` is set, or ``poke()`` is called."""

    def __init__(self, ended: CancelToken, cancel: CancelToken) -> None:
        self.ended = ended
        self.cancel = cancel
        self.event = threading.Event()
        self._off = [t.on_cancel(self.event.set) for t in (ended, cancel)]

    def poke(self) -> None:
        self.event.set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True once ``ended`` is set; raises if cancelled."""
        self.event.wait(seconds)
        self.event.clear()
        self.cancel.raise_if_cancelled()
        return self.ended.cancelled

    def close(self) -> None:
        for off in self._off:
            off()


class NoopWatcher:
    """Returns at once: the caller knows the main container is done."""

    def wait_to_start(self, cancel: CancelToken) -> str:
        return "noop"

    def wait_to_exit(self, cancel: CancelToken) -> str:
        cancel.raise_if_cancelled()
        return "noop"


class SignalWatcher:
    """Waits for the ``ended`` token: SIGTERM, caught from process start so an early one is kept."""

    def __init__(self, ended: CancelToken) -> None:
        self.ended = ended

    def wait_to_start(self, cancel: CancelToken) -> str:
        return "signal watcher does not wait for a start"

    def wait_to_exit(self, cancel: CancelToken) -> str:
        log.info("waiting for SIGTERM")
        wake = _Wake(self.ended, cancel)
        try:
            while not wake.sleep(3600):
                pass
        finally:
            wake.close()
        return self.ended.reason or "SIGTERM"


class FileWatcher:
    """Waits for marker files in the output dir: ``_START``; ``_SUCCESS`` or ``_ERROR``.

    watchdog wakes the wait as soon as a marker is created; a slow poll covers
    filesystems without change events, and markers present before the wait
    began are seen at once.
    """

    def __init__(
        self,
        directory: str,
        ended: CancelToken,
        poll_seconds: float = 1.0,
        missing_dir_wait: float | None = None,
    ) -> None:
        self.directory = directory
        self.ended = ended
        self.poll_seconds = poll_seconds
        # A directory that is not there when the sidecar starts is most likely a
        # wrong path or a chain that failed before creating it: say so at once, and
        # with ``missing_dir_wait`` wait at most that long for a marker in it.
        self.missing_since = None if os.path.isdir(directory) else time.monotonic()
        self.missing_dir_wait = missing_dir_wait
        self._warned = False

    def _deadline(self, names: tuple[str, ...]) -> float | None:
        if self.missing_since is None:
            return None
        if not self._warned:
            self._warned = True
            bound = (
                f"at most {format_duration_ns(int(self.missing_dir_wait * 1e9))}"
                if self.missing_dir_wait
                else "without a bound"
            )
            log.warning(
                "%s did not exist when the sidecar started (is the path right?): created "
                "it; waiting %s for %s there",
                self.directory,
                bound,
                " or ".join(names),
            )
        if not self.missing_dir_wait:
            return None
        return self.missing_since + self.missing_dir_wait

    def _present(self, names: tuple[str, ...]) -> str | None:
        for name in names:
            if os.path.lexists(os.path.join(self.directory, name)):
                return name
        return None

    def _wait_for(self, names: tuple[str, ...], cancel: CancelToken) -> str:
        deadline = self._deadline(names)
        os.makedirs(self.directory, exist_ok=True)
        wake = _Wake(self.ended, cancel)
        observer = None
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            class _OnEvent(FileSystemEventHandler):
                def on_any_event(self, event: object) -> None:
                    wake.poke()

            observer = Observer()
            observer.schedule(_OnEvent(), self.directory, recursive=False)
            observer.daemon = True
            observer.start()
        except Exception as exc:  # inotify limits, unsupported fs: polling still works
            log.debug("file watcher falls back to polling: %s", exc)
            observer = None
        try:
            while True:
                found = self._present(names)
                if found:
                    return found
                if self.ended.cancelled:
                    return self.ended.reason or "SIGTERM"
                if deadline is not None and time.monotonic() >= deadline:
                    raise CopilotError(
                        f"no {' or '.join(names)} in {self.directory} after "
                        f"{format_duration_ns(int((self.missing_dir_wait or 0) * 1e9))}: the "
                        "directory did not exist when the sidecar started (is the path right?)"
                    )
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                wake.sleep(self.poll_seconds if left is None else min(self.poll_seconds, left))
        finally:
            wake.close()
            if observer is not None:
                observer.stop()

    def wait_to_start(self, cancel: CancelToken) -> str:
        log.info("waiting for %s in %s", START_FILE, self.directory)
        return self._wait_for((START_FILE,), cancel)

    def wait_to_exit(self, cancel: CancelToken) -> str:
        log.info("waiting for %s or %s in %s", SUCCESS_FILE, ERROR_FILE, self.directory)
        return self._wait_for((SUCCESS_FILE, ERROR_FILE), cancel)


def _is_copilot(cmdline: list[str]) -> bool:
    return any(os.path.basename(arg) in ("copilot", "flyte-copilot") for arg in cmdline[:3])


class SharedProcessNSWatcher:
    """Polls ``/proc`` in a pod with ``shareProcessNamespace: true``.

    "Other" processes are all but PID 1 (the pause container or an init), this
    process and its ancestors, zombies, and copilot processes (the downloader
    runs as one).  The main container has exited once other processes were seen
    and then none for ``cycles`` polls in a row.
    """

    def __init__(
        self,
        ended: CancelToken,
        proc: str = "/proc",
        poll_seconds: float = 1.0,
        cycles: int = 2,
    ) -> None:
        self.ended = ended
        self.proc = proc
        self.poll_seconds = poll_seconds
        self.cycles = cycles
        self._seen_other = False
        self._ignored = self._ancestors()

    def _ancestors(self) -> set[int]:
        pids = {1, os.getpid()}
        pid = os.getpid()
        for _ in range(64):
            ppid = self._ppid(pid)
            if ppid is None or ppid <= 1 or ppid in pids:
                break
            pids.add(ppid)
            pid = ppid
        return pids

    def _ppid(self, pid: int) -> int | None:
        try:
            with open(f"{self.proc}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
                after = fh.read().rsplit(")", 1)[1].split()
            return int(after[1])
        except (OSError, IndexError, ValueError):
            return None

    def others(self) -> list[int]:
        """PIDs of processes that count as the main container's."""
        found = []
        try:
            names = os.listdir(self.proc)
        except OSError as exc:
            raise UsageError(f"shared-process-ns watcher: cannot list {self.proc}: {exc}") from None
        me = os.getpid()
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in self._ignored:
                continue
            try:
                with open(f"{self.proc}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
                    after = fh.read().rsplit(")", 1)[1].split()
                state, ppid = after[0], int(after[1])
                if state in ("Z", "X") or ppid == me:
                    continue
                with open(f"{self.proc}/{pid}/cmdline", "rb") as fh:
                    cmdline = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
            except (OSError, IndexError, ValueError):
                continue  # gone between listing and reading
            if not cmdline or _is_copilot(cmdline):
                continue
            found.append(pid)
        return found

    def wait_to_start(self, cancel: CancelToken) -> str:
        log.info("waiting for the main container's processes to appear")
        wake = _Wake(self.ended, cancel)
        try:
            while not self.ended.cancelled:
                if self.others():
                    self._seen_other = True
                    return "process seen"
                wake.sleep(self.poll_seconds)
        finally:
            wake.close()
        return self.ended.reason or "SIGTERM"

    def wait_to_exit(self, cancel: CancelToken) -> str:
        log.info("waiting for the main container's processes to exit")
        wake = _Wake(self.ended, cancel)
        quiet = 0
        try:
            while not self.ended.cancelled:
                if self.others():
                    self._seen_other = True
                    quiet = 0
                elif self._seen_other:
                    quiet += 1
                    if quiet >= self.cycles:
                        return "processes exited"
                if wake.sleep(self.poll_seconds):
                    break
        finally:
            wake.close()
        return self.ended.reason or "SIGTERM"


def make_watcher(
    kind: WatcherType | str,
    output_dir: str,
    ended: CancelToken | None = None,
    missing_dir_wait: float | None = None,
) -> Watcher:
    """A watcher by name; ``ended`` (SIGTERM, in the CLI) also ends its waits;
    ``missing_dir_wait`` bounds a file watcher's wait in a directory that was not there."""
    ended = ended or CancelToken()
    kind = WatcherType.parse(kind, "watcher type")
    if kind == WatcherType.SIGNAL:
        return SignalWatcher(ended)
    if kind == WatcherType.FILE:
        return FileWatcher(output_dir, ended, missing_dir_wait=missing_dir_wait)
    if kind == WatcherType.SHARED_PROCESS_NS:
        return SharedProcessNSWatcher(ended)
    return NoopWatcher()
