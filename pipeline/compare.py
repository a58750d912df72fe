"""Stage `compare`: every run of one dataset -> intervals, paired tests, metrics/<ds>.json
(params: study, evaluate).

Usage: `python pipeline/compare.py <dataset>` with <dataset> one of synapse, acdc.
"""

from __future__ import annotations

import sys

from mtunet.stages import load, run_compare

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} <dataset>")
    run_compare(load(), sys.argv[1])
