"""The ``mtunet`` console command: the pipeline's stages one by one, and ``predict``.

Examples::

    mtunet phantoms synapse            # what `dvc repro` runs, stage by stage
    mtunet preprocess synapse
    mtunet train synapse unet 1234     # one run: a model (or ablation) and a seed of `study`
    mtunet evaluate synapse unet 1234  # torchrun --nproc_per_node=2 --no-python mtunet train ...
    mtunet compare synapse             # intervals and paired tests over the study's runs
    mtunet report
    mtunet predict --checkpoint models/synapse/model.pt --input scan.nii.gz --output seg.nii.gz
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mtunet import stages


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtunet", description="MT-UNet study: data, training, evaluation, report, predict."
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: params.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("phantoms", "write synthetic raw data for a dataset"),
        ("preprocess", "raw data or a preprocessed release to slices and test volumes"),
        ("train", "train one run of the study (also under torchrun)"),
        ("evaluate", "Dice, HD95 and surface Dice of one run on the test split"),
        ("compare", "intervals and paired tests over the study's runs"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("dataset", choices=stages.DATASETS)
        if name in ("train", "evaluate"):
            p.add_argument(
                "variant",
                nargs="?",
                default=None,
                help="a model of study.models or an ablation (default: the first model)",
            )
            p.add_argument("seed", nargs="?", default=None, help="default: study.seeds[0]")
    sub.add_parser("report", help="write reports/report.md, figures and tables")

    p = sub.add_parser("predict", help="segment a new NIfTI scan with a trained checkpoint")
    p.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="mtunet model.pt or an official MT-UNet state dict (then --dataset is required)",
    )
    p.add_argument("--input", required=True, type=Path, help="scan (.nii or .nii.gz)")
    p.add_argument("--output", required=True, type=Path, help="label map to write (.nii.gz)")
    p.add_argument(
        "--dataset",
        choices=stages.DATASETS,
        default=None,
        help="classes and preprocessing for an official checkpoint",
    )
    p.add_argument("--batch-size", type=int, default=16, help="slices per forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "predict":
            from mtunet.inference import predict_file

            out = predict_file(
                args.checkpoint,
                args.input,
                args.output,
                batch_size=args.batch_size,
                device=args.device,
                progress=True,
                dataset=args.dataset,
            )
            print(out)
            return 0
        params = stages.load(args.params)
        if args.command == "report":
            print(stages.run_report(params))
            return 0
        runner = getattr(stages, f"run_{args.command}")
        run_args = (args.variant, args.seed) if args.command in ("train", "evaluate") else ()
        result = runner(params, args.dataset, *run_args)
        if isinstance(result, Path):
            print(result)
        return 0
    except (ValueError, FileNotFoundError) as exc:
        print(f"mtunet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
