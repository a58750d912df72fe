"""Stage `phantoms`: synthetic raw data in the release layout (params: datasets.<ds>.phantoms).

Usage: `python pipeline/phantoms.py <dataset>` with <dataset> one of synapse, acdc.
"""

from __future__ import annotations

import sys

from mtunet.stages import load, run_phantoms

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} <dataset>")
    run_phantoms(load(), sys.argv[1])
