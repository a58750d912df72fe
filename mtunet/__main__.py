"""``python -m mtunet``: the ``mtunet`` console command without needing it on PATH."""

from __future__ import annotations

import sys

from mtunet.cli import main

if __name__ == "__main__":
    sys.exit(main())
