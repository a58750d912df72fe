"""Stage `evaluate`: Dice and HD95 per organ on the test split (params: evaluate).

Usage: `python pipeline/evaluate.py <dataset>` with <dataset> one of synapse, acdc.
"""

from __future__ import annotations

import sys

from mtunet.stages import load, run_evaluate

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} <dataset>")
    run_evaluate(load(), sys.argv[1])
