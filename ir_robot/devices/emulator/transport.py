"""The emulator's end of a pseudo-terminal: clients open :attr:`PtyPort.path` as they would a USB serial port."""

from __future__ import annotations

import errno
import os
import select
import time
import tty


class PtyPort:
    """One pty pair; the emulator keeps the master, clients open the slave path.

    Until a client opens the path the master reports POLLHUP, which is how the
    emulator tells a connection (and a reconnection) from an idle line. Writes never
    block: what the pty cannot take is counted in :attr:`dropped_bytes`.
    """

    def __init__(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)  # no opener: the master reports POLLHUP until a client opens the path
        os.set_blocking(master, False)
        self.fd: int | None = master
        self._poll = select.poll()
        self._poll.register(master, select.POLLIN | select.POLLHUP | select.POLLERR)
        self.dropped_bytes = 0

    def poll(self, timeout_s: float) -> tuple[bool, bool]:
        """(client connected, data readable) after waiting up to ``timeout_s``."""
        if self.fd is None:
            time.sleep(timeout_s)
            return False, False
        events = self._poll.poll(max(0, int(timeout_s * 1000)))
        if not events:
            return True, False
        ev = events[0][1]
        if ev & (select.POLLHUP | select.POLLERR):
            return False, False
        return True, bool(ev & select.POLLIN)

    def connected(self) -> bool:
        """Whether a client holds the port open right now (no waiting)."""
        return self.poll(0)[0]

    def read(self) -> bytes:
        """Whatever the client has written so far (``b""`` when nothing, or when the port is closed)."""
        if self.fd is None:
            return b""
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> None:
        """Send ``data`` to the client without blocking; bytes the pty refuses are counted, not retried."""
        if self.fd is None or not data:
            return
        try:
            n = os.write(self.fd, data)
            self.dropped_bytes += len(data) - n
        except OSError:  # BlockingIOError included: the client is not reading
            self.dropped_bytes += len(data)

    def close(self) -> None:
        """Close the master: the client sees the device vanish, as when a USB cable is pulled."""
        if self.fd is not None:
            try:
                self._poll.unregister(self.fd)
            except (KeyError, ValueError):
                pass
            os.close(self.fd)
            self.fd = None
