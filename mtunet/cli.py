"""The ``mtunet`` console command: the pipeline's stages one by one, and ``predict``.

Examples::

    mtunet phantoms synapse            # what `dvc repro` runs, stage by stage
    mtunet preprocess synapse
    mtunet train synapse unet 1234     # one run: a model (or ablation) and a seed of `study`
    mtunet evaluate synapse unet 1234  # torchrun --nproc_per_node=2 --no-python mtunet train ...
    mtunet compare synapse             # intervals and paired tests over the study's runs
    mtunet report
    mtunet predict --checkpoint models/synapse/model.pt --input scan.nii.gz --output seg.nii.gz
    mtunet study plan --gpus 8         # the stages, their status and a wall-time estimate
    mtunet study run                   # the stale stages as Ray tasks (pip install -e ".[ray]")
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    _study_parser(sub)
    return parser


def _study_parser(sub: Any) -> None:
    """``mtunet study run`` and ``mtunet study plan`` (docs/scale-out.md)."""
    study = sub.add_parser("study", help="the whole study: run it with Ray, or plan it")
    actions = study.add_subparsers(dest="action", required=True)
    run = actions.add_parser(
        "run", help="run every stale stage of dvc.yaml as a Ray task, as many at once as fit"
    )
    run.add_argument(
        "--address",
        default="local",
        help="'local' (default) starts a Ray instance here; 'auto' or ray://host:port joins one",
    )
    run.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local instance")
    run.add_argument("--num-gpus", type=float, default=None, help="GPUs of a local instance")
    run.add_argument(
        "--max-retries", type=int, default=0, help="retries of a failed stage (default 0)"
    )
    plan = actions.add_parser(
        "plan", help="the stages, their status and the wall time on N GPUs; starts nothing"
    )
    plan.add_argument("--gpus", type=int, default=1, help="GPUs to plan for (0: CPU runs only)")
    plan.add_argument(
        "--cpus", type=int, default=None, help="CPUs to plan for (default: this machine's)"
    )
    plan.add_argument(
        "--epoch-seconds",
        action="append",
        default=[],
        metavar="[DATASET=]S",
        help="per-epoch time of the training runs, for every dataset or one (repeatable); "
        "default: measured on finished runs",
    )


def _epoch_seconds(values: list[str]) -> dict[str, float]:
    """``["9.4", "acdc=5.5"]`` -> ``{"*": 9.4, "acdc": 5.5}``."""
    out: dict[str, float] = {}
    for value in values:
        key, _, number = value.rpartition("=")
        if key and key not in stages.DATASETS:
            raise ValueError(f"--epoch-seconds: unknown dataset {key!r} in {value!r}")
        try:
            seconds = float(number)
        except ValueError:
            raise ValueError(
                f"--epoch-seconds: expected [DATASET=]SECONDS, got {value!r}"
            ) from None
        if not seconds > 0:
            raise ValueError(f"--epoch-seconds: must be > 0, got {value!r}")
        out[key or "*"] = seconds
    return out


def _study(args: argparse.Namespace) -> int:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        root = Path(Repo.find_root())
    except NotDvcRepoError as exc:
        raise ValueError(f"{Path.cwd()}: not inside a DVC repository ({exc})") from exc
    if args.action == "plan":
        from mtunet.scaleout.plan import run_plan

        cpus = args.cpus if args.cpus is not None else (os.cpu_count() or 1)
        if args.gpus < 0 or cpus < 1:
            raise ValueError(f"--gpus must be >= 0 and --cpus >= 1, got {args.gpus}, {cpus}")
        print(run_plan(root, args.gpus, cpus, _epoch_seconds(args.epoch_seconds)))
        return 0
    from mtunet.scaleout.runner import run_study

    return run_study(root, args.address, args.num_cpus, args.num_gpus, args.max_retries)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "study":
            from dvc.exceptions import DvcException

            try:
                return _study(args)
            # Ray missing, a locked repository, an unshared node, a dvc.yaml DVC cannot read
            except (RuntimeError, DvcException) as exc:
                print(f"mtunet study {args.action}: error: {exc}", file=sys.stderr)
                return 2
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
