"""Stage `train`: one model or ablation, one seed, one dataset (params: model, train, study).

Usage: `python pipeline/train.py <dataset> <variant> <seed>`: <dataset> one of synapse, acdc;
<variant> a model of study.models or an ablation of study.ablations; <seed> one of
study.seeds. Also runs under torchrun.
"""

from __future__ import annotations

import sys

from mtunet.stages import load, run_train

if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: python {sys.argv[0]} <dataset> <variant> <seed>")
    run_train(load(), *sys.argv[1:])
