"""A one-line progress display for long syncs, used by the pipeline and the fan-out of scopes."""

from __future__ import annotations

import io
import sys
import time


class Progress:
    """A one-line progress display for long syncs, on an interactive terminal only.

    Off a TTY (cron, systemd, pipes) it stays silent and the log lines tell the story instead.
    """

    def __init__(self, label: str, stream: io.TextIOBase | None = None, min_interval_s: float = 0.2) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._shown = False

    def update(self, text: str) -> None:
        """Redraw the line (at most every min_interval_s)."""
        now = time.monotonic()
        if not self.enabled or now - self._last < self.min_interval_s:
            return
        self._last = now
        self.stream.write(f"\r\x1b[2K{self.label} {text}")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the line so log output continues cleanly."""
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False
