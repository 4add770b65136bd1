"""``python -m simulators`` = ``hall-sim`` (see simulators/cli.py)."""
import sys

from .cli import main

sys.exit(main())
