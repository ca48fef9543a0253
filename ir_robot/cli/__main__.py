"""``python -m ir_robot.cli``: the ``ir-robot`` command."""

import sys

from ir_robot.cli import main

if __name__ == "__main__":
    sys.exit(main())
