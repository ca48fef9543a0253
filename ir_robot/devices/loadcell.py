"""HX711 load cell over serial: parse the ASCII stream, convert to newtons, watch it.

The usual build is an HX711 breakout on a small Arduino (or the like) printing one
reading per line at 10 or 80 samples/s (RATE pin). This module accepts lines whose
last field is the reading: ``123456``, ``-2048``, ``t_ms,123456``, ``HX711: 123456``
or a float. Calibration (docs/rig.md): read the mean with nothing on the cell
(``tare_counts``), hang a known mass, read again; ``counts_per_n`` is the
difference divided by ``mass_kg * 9.80665``.

``force_n = sign * (counts - tare_counts) / counts_per_n``.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ir_robot.core.errors import ProtocolError, RigError
from ir_robot.devices.config import LoadCellConfig
from ir_robot.devices.grbl import LineSplitter
from ir_robot.devices.serial_port import open_serial

log = logging.getLogger(__name__)

STANDARD_GRAVITY = 9.80665
_READING_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)\Z")
_SPLIT_RE = re.compile(r"[\s,;:=]+")
#: HX711 readings are 24-bit two's complement
HX711_MIN, HX711_MAX = -(2**23), 2**23 - 1

SampleCallback = Callable[[float, float], None]
"""on_sample(t, force_n), called on the reader thread for every sample (``t`` on the reader's clock)."""


def parse_loadcell_line(raw: bytes | str) -> float:
    """One line from the load-cell board -> the raw reading (counts). Raises ProtocolError."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"malformed load-cell line {bytes(raw)[:40]!r}: non-ASCII bytes "
                "(baud mismatch? the config's loadcell.baud must match the board's Serial.begin)"
            ) from None
    else:
        text = raw
    text = text.strip()
    if not text:
        raise ProtocolError("malformed load-cell line: empty")
    if len(text) > 80:
        raise ProtocolError(f"malformed load-cell line {text[:40]!r}...: {len(text)} characters (expected one reading)")
    last = _SPLIT_RE.split(text)[-1]
    if not _READING_RE.match(last):
        raise ProtocolError(
            f"malformed load-cell line {text!r}: the last field {last!r} is not a number "
            "(expected one HX711 reading per line, e.g. '123456' or 't_ms,123456')"
        )
    value = float(last)
    if not HX711_MIN <= value <= HX711_MAX:
        raise ProtocolError(f"malformed load-cell line {text!r}: {value:g} is outside the HX711's 24-bit range")
    return value


def counts_to_force(counts, config: LoadCellConfig):
    """Raw counts (scalar or array) -> newtons with the config's tare, slope and sign."""
    return config.sign * (np.asarray(counts, dtype=float) - config.tare_counts) / config.counts_per_n


def calibrate(
    tare_counts: float, loaded_counts: float, mass_kg: float, g: float = STANDARD_GRAVITY
) -> tuple[float, int]:
    """(counts_per_n, sign) from the mean reading unloaded and with ``mass_kg`` hanging on the cell."""
    if not mass_kg > 0:
        raise RigError(f"calibration mass must be > 0 kg, got {mass_kg}")
    delta = float(loaded_counts) - float(tare_counts)
    if abs(delta) < 1.0:
        raise RigError(
            f"the reading did not change with {mass_kg} kg on the load cell ({tare_counts:.0f} -> "
            f"{loaded_counts:.0f} counts): check the wiring (E+/E-/A+/A-) and that the mass hangs on the cell"
        )
    return abs(delta) / (mass_kg * g), (1 if delta > 0 else -1)


class LoadCell:
    """Reader thread on the load-cell port; latest force, tare, and a per-sample callback.

    ``open()`` waits for the first valid sample and raises a RigError naming the
    port and the likely fix if none comes. Samples are stamped with ``clock``
    (``time.monotonic``; GrblRig passes its own).
    """

    def __init__(
        self,
        config: LoadCellConfig,
        port: str | None = None,
        on_sample: SampleCallback | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        port = port or config.port
        if not port:
            raise RigError("no load-cell port configured (config/rig.yaml loadcell.port is null)")
        self.port: str = port
        self.clock = clock
        self.tare_counts = float(config.tare_counts)
        self._callbacks: list[SampleCallback] = [on_sample] if on_sample else []
        self._ser: Any = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._first = threading.Event()
        self.latest_t: float | None = None
        self.latest_counts: float | None = None
        self.latest_force_n: float = float("nan")
        self.sample_count = 0
        self.protocol_errors: collections.deque = collections.deque(maxlen=100)
        self.protocol_error_count = 0
        self.error: RigError | None = None
        self._recent: collections.deque = collections.deque(maxlen=4096)

    # ------------------------------------------------------------------ lifecycle
    def open(self, timeout_s: float = 2.0) -> LoadCell:
        """Open the port and start the reader; returns once the first valid sample has come."""
        self._ser = open_serial(self.port, self.config.baud, what="load cell")
        self._thread = threading.Thread(target=self._reader, name=f"loadcell-{self.port}", daemon=True)
        self._thread.start()
        if not self._first.wait(timeout_s):
            errs = list(self.protocol_errors)
            self.close()
            if errs:
                raise RigError(
                    f"load cell on {self.port} sends lines that are not readings (last: {errs[-1]}); "
                    f"check the port (is this the GRBL board?) and loadcell.baud ({self.config.baud})"
                )
            raise RigError(
                f"no readings from the load cell on {self.port} within {timeout_s:.1f} s: check that its board "
                "is flashed with a sketch printing one HX711 reading per line, the USB cable, and loadcell.port"
            )
        return self

    def close(self) -> None:
        """Stop the reader and release the port (idempotent)."""
        self._closing = True
        if self._ser is not None:
            try:
                self._ser.cancel_read()
            except Exception:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        if self._ser is not None:
            try:
                self._ser.close()
            except Exception:
                pass
        self._ser = None

    def __enter__(self) -> LoadCell:
        return self.open() if self._ser is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_callback(self, fn: SampleCallback) -> None:
        """Also call ``fn(t, force_n)`` for every sample (on the reader thread)."""
        self._callbacks.append(fn)

    # ------------------------------------------------------------------ reading
    def _reader(self) -> None:
        import serial

        splitter = LineSplitter(max_bytes=128)
        ser = self._ser
        while not self._closing:
            try:
                data = ser.read(ser.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._closing:
                    self.error = RigError(f"load cell port {self.port} vanished ({exc}); reconnect it")
                    log.error("%s", self.error)
                return
            if not data:
                continue
            t = self.clock()
            for raw in splitter.feed(data):
                if not raw.strip():
                    continue
                try:
                    counts = parse_loadcell_line(raw)
                except ProtocolError as exc:
                    self.protocol_errors.append(exc)
                    self.protocol_error_count += 1
                    continue
                force = float(self.config.sign * (counts - self.tare_counts) / self.config.counts_per_n)
                with self._lock:
                    self.latest_t, self.latest_counts, self.latest_force_n = t, counts, force
                    self.sample_count += 1
                    self._recent.append(counts)
                self._first.set()
                for fn in self._callbacks:
                    try:
                        fn(t, force)
                    except Exception:  # a callback must never kill the reader
                        log.exception("load-cell callback failed")

    def latest(self) -> tuple[float | None, float]:
        """(time of the last sample, force in N); force is NaN before the first sample."""
        with self._lock:
            return self.latest_t, self.latest_force_n

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the last sample (inf before the first)."""
        t = self.latest_t
        return float("inf") if t is None else (now if now is not None else self.clock()) - t

    def mean_counts(self, n_samples: int = 40, timeout_s: float = 5.0) -> float:
        """Mean raw reading over the next ``n_samples`` samples (for tare and calibration)."""
        with self._lock:
            start = self.sample_count
        deadline = self.clock() + timeout_s
        while True:
            with self._lock:
                got = self.sample_count - start
                if got >= n_samples:
                    values = list(self._recent)[-n_samples:]
                    return float(np.mean(values))
            if self.clock() > deadline:
                raise RigError(f"load cell on {self.port}: only {got} of {n_samples} samples in {timeout_s:.1f} s")
            time.sleep(0.01)

    def tare(self, n_samples: int = 40, timeout_s: float = 5.0) -> float:
        """Zero the force with the current load (needle out of tissue!); returns the new tare in counts."""
        self.tare_counts = self.mean_counts(n_samples, timeout_s)
        return self.tare_counts
