"""A GRBL 1.1 board and an HX711 load cell on pseudo-terminals, for tests and demos.

:class:`GrblEmulator` opens two pty pairs (``os.openpty``): clients open
:attr:`GrblEmulator.port` and :attr:`GrblEmulator.loadcell_port` exactly as they
would open ``/dev/ttyACM0`` and ``/dev/ttyUSB1``. The GRBL side behaves as GRBL 1.1:

* banner on open (like an Arduino reset by DTR; ``reset_on_open``) and on soft reset;
  Alarm at start when homing is enabled (``$22=1``) with ``[MSG:'$H'|'$X' to unlock]``;
* a 128-byte serial RX buffer with overflow detection (``rx_overflow``), and
  real-time bytes (``? ! ~ 0x18 0x85``) picked off before the buffer and acted on at once;
* a 15-block planner with per-axis trapezoidal acceleration and rate limits
  (``$110-112``, ``$120-122``), junction deviation (``$11``), planning to a stop
  at the end of the queue, feed hold with deceleration, resume, jog cancel;
* soft limits (``$20``, travel ``MPos in [-$130..132, 0]``): ALARM:2 for G-code
  (critical: nothing but a reset is answered) and error:15 for jogs; homing
  (``$22``, ``$H``; status queries are not answered while homing);
* ``$$ $I $X $H $G $N $# $C $SLP $N=value $J=``, G0/G1/G4/G20/G21/G53/G54/G90/G91/G94,
  M0-M9 (accepted, no effect), error codes as GRBL 1.1 gives them;
* status reports ``<State|MPos|Bf|FS|WCO|Ov|Pn|Ln>`` following ``$10``.

The load cell streams one raw HX711 count per line at the configured rate (80
samples/s) with the force from ``force_fn`` (default: the tissue model
:class:`ir_robot.sim.tissue.NeedleTissueModel` on ``sim/phantoms/forearm.yaml``).

Faults on demand: ``unplug``, ``inject_garbage``, ``stall``, ``push_alarm``,
``force_spike``, ``set_pins``, and constructor modes ``baud_mismatch`` and
``personality="silent"|"marlin"``. Random content (noise, garbage) comes from a
Generator seeded by ``seed``.

The pieces, each small enough to read on its own:

* :mod:`.machine` -- :class:`GrblMachine`, the board as a pure state machine:
  ``receive(data, now)`` / ``advance(now)`` return the bytes to send; no threads, no
  clock. Tests that check timing drive it with a fake clock and assert exact numbers;
* :mod:`.interpreter` -- line cleaning, ``$`` system commands, G-code words, modal state;
* :mod:`.planner` -- blocks, junction speeds, acceleration, the 1 ms motion integration, homing;
* :mod:`.hx711` -- the load cell's sample schedule and count lines, the default tissue force;
* :mod:`.faults` -- garbage lines, the baud-mismatch scrambler, force spikes, the Marlin banner;
* :mod:`.defaults` -- the board's version and default ``$`` settings;
* :mod:`.transport` -- one pty pair;
* :mod:`.pty_emulator` -- :class:`GrblEmulator`, which serves the machine and the load
  cell on ptys with two threads and the clock it is given (``time.monotonic``).
"""

from ir_robot.devices.emulator.defaults import BUILD_DATE, DEFAULT_SETTINGS, VERSION
from ir_robot.devices.emulator.hx711 import ForceFn
from ir_robot.devices.emulator.machine import GrblMachine
from ir_robot.devices.emulator.pty_emulator import GrblEmulator

__all__ = ["BUILD_DATE", "DEFAULT_SETTINGS", "VERSION", "ForceFn", "GrblEmulator", "GrblMachine"]
