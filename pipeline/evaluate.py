"""Stage `evaluate`: Dice, HD95 and surface Dice per organ of one run (params: evaluate).

Usage: `python pipeline/evaluate.py <dataset> <variant> <seed>` (as `pipeline/train.py`).
"""

from __future__ import annotations

import sys

from mtunet.stages import load, run_evaluate

if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: python {sys.argv[0]} <dataset> <variant> <seed>")
    run_evaluate(load(), *sys.argv[1:])
