"""Serial ports of the rig: opened exclusively, with errors that name the port and the fix; locked writes.

The lowest layer under the GRBL link (:mod:`ir_robot.devices.grbl_link`) and the
load-cell reader (:mod:`ir_robot.devices.loadcell`): it imports neither, so both can
import it.
"""

from __future__ import annotations

import errno
import threading
from typing import Any

from ir_robot.core.errors import RigError

DIALOUT_FIX = "add your user to the dialout group (`sudo usermod -aG dialout $USER`, then log out and back in)"


def open_error(port: str, what: str, baud: int, exc: BaseException) -> RigError:
    """The RigError for a port that would not open: what is wrong with it and how to fix it."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.ENOENT,) or "No such file" in text:
        return RigError(
            f"{what} port {port} does not exist: is the board plugged in and powered? List the ports with "
            "`python -m serial.tools.list_ports -v` (an Arduino Uno shows as /dev/ttyACM0, CH340 clones as "
            "/dev/ttyUSB0) and pass --port or set it in config/rig.yaml"
        )
    if code in (errno.EACCES, errno.EPERM) or "ermission denied" in text:
        return RigError(f"permission denied opening the {what} port {port}: {DIALOUT_FIX}")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in text.lower():
        return RigError(
            f"{what} port {port} is in use by another program (a G-code sender, the Arduino serial monitor, "
            "screen or another ir-robot): close it and retry"
        )
    if code in (errno.ENXIO, errno.ENODEV, errno.EIO):
        return RigError(f"{what} port {port} exists but the device is gone (unplugged or powered off): reconnect it")
    if code in (errno.ENOTTY, errno.EINVAL) or "Inappropriate ioctl" in text:
        return RigError(f"{port} is not a serial port ({text}); point --port at the {what}'s /dev/tty* device")
    return RigError(f"cannot open the {what} port {port} at {baud} baud: {text}")


def open_serial(port: str, baud: int, what: str = "serial device", timeout_s: float = 0.05) -> Any:
    """Pyserial port opened exclusively, with errors that name the port and the fix."""
    import serial

    try:
        return serial.Serial(port=port, baudrate=baud, timeout=timeout_s, write_timeout=2.0, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise open_error(port, what, baud, exc) from None


class SerialTransport:
    """One serial port with a write lock: every thread that writes (streaming, poller, halts) goes through it.

    :attr:`ser` is the pyserial object (None until :meth:`open` and after :meth:`close`);
    reader threads read it directly.
    """

    def __init__(self, port: str, what: str = "GRBL board") -> None:
        self.port = port
        self.what = what
        self.ser: Any = None
        self._wlock = threading.Lock()

    def open(self, baud: int) -> None:
        """Open the port exclusively (a RigError naming the port and the fix if it will not)."""
        self.ser = open_serial(self.port, baud, self.what)

    def write(self, data: bytes) -> BaseException | None:
        """Write ``data``; returns the exception if the write failed (the port vanished), None if it went out.

        Raises RigError when the port is closed. The caller handles a failure outside
        the write lock, so that its fault path can itself write the halt bytes.
        """
        with self._wlock:
            ser = self.ser
            if ser is None:
                raise RigError(f"GRBL port {self.port} is closed")
            try:
                ser.write(data)
            except Exception as exc:  # SerialException, OSError, write timeout
                return exc
        return None

    def try_write(self, data: bytes) -> bool:
        """Best-effort write for the halt path: True when the bytes reached the port, never raises."""
        with self._wlock:
            ser = self.ser
            if ser is None:
                return False
            try:
                ser.write(data)
                return True
            except Exception:
                return False

    def cancel_read(self) -> None:
        """Wake a reader blocked in ``read`` (it then sees the port closing)."""
        if self.ser is not None:
            try:
                self.ser.cancel_read()
            except Exception:
                pass

    def close(self) -> None:
        """Close the port (idempotent); writes after this raise RigError."""
        with self._wlock:
            if self.ser is not None:
                try:
                    self.ser.close()
                except Exception:
                    pass
                self.ser = None
