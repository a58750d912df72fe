"""Stage `preprocess`: raw data or a preprocessed release to slices, volumes and dataset.json.

Usage: `python pipeline/preprocess.py <dataset>` with <dataset> one of synapse, acdc.
"""

from __future__ import annotations

import sys

from mtunet.stages import load, run_preprocess

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} <dataset>")
    run_preprocess(load(), sys.argv[1])
