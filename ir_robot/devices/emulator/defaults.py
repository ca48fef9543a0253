"""What the emulated board says about itself: its GRBL version and the ``$`` settings it starts with.

The values a rig config does not pin down are GRBL 1.1's own defaults. The version and
build date are read at the moment they are printed (banner, ``$I``), so a test can
pretend to be an older board by changing :data:`VERSION`.
"""

from __future__ import annotations

VERSION = "1.1h"
BUILD_DATE = "20190825"
#: GRBL defaults for the settings a rig config does not pin down
DEFAULT_SETTINGS: dict[int, float] = {
    0: 10,
    1: 25,
    2: 0,
    3: 0,
    4: 0,
    5: 0,
    6: 0,
    10: 3,
    11: 0.010,
    12: 0.002,
    13: 0,
    20: 0,
    21: 0,
    22: 0,
    23: 0,
    24: 25.0,
    25: 500.0,
    26: 250,
    27: 1.0,
    30: 1000,
    31: 0,
    32: 0,
    100: 250.0,
    101: 250.0,
    102: 250.0,
    110: 500.0,
    111: 500.0,
    112: 500.0,
    120: 10.0,
    121: 10.0,
    122: 10.0,
    130: 200.0,
    131: 200.0,
    132: 200.0,
}
#: settings ``$$`` prints without decimals
INTEGER_SETTINGS = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})
