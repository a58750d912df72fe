"""Stage `train`: MT-UNet on one dataset (params: model, train). Also runs under torchrun.

Usage: `python pipeline/train.py <dataset>` with <dataset> one of synapse, acdc.
"""

from __future__ import annotations

import sys

from mtunet.stages import load, run_train

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} <dataset>")
    run_train(load(), sys.argv[1])
