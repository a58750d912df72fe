"""Published results on the REAL datasets (MT-UNet paper, ICASSP 2022), for reference rows.

Values are copied from ``docs/protocol.md`` (Synapse: DSC % per organ, mean DSC %, mean HD95
in voxels; ACDC: DSC % per structure). Keys are this project's class names.
"""

from __future__ import annotations

from typing import Any

from mtunet.data.common import ACDC_CLASSES, SYNAPSE_CLASSES

# Foreground classes in the order the published tables print them (the class ids' order).
SYNAPSE_ORDER: tuple[str, ...] = SYNAPSE_CLASSES[1:]
ACDC_ORDER: tuple[str, ...] = ACDC_CLASSES[1:]


def _row(
    method: str, dsc: float, hd95: float | None, names: tuple[str, ...], values: list[float]
) -> dict[str, Any]:
    return {
        "method": method,
        "dsc": dsc,
        "hd95": hd95,
        "per_class": dict(zip(names, values, strict=True)),
    }


PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "synapse": [
        _row(
            "U-Net",
            76.85,
            39.70,
            SYNAPSE_ORDER,
            [89.07, 69.72, 77.77, 68.60, 93.43, 53.98, 86.67, 75.58],
        ),
        _row(
            "Att-UNet",
            77.77,
            36.02,
            SYNAPSE_ORDER,
            [89.55, 68.88, 77.98, 71.11, 93.57, 58.04, 87.30, 75.75],
        ),
        _row(
            "TransUNet",
            77.48,
            31.69,
            SYNAPSE_ORDER,
            [87.23, 63.13, 81.87, 77.02, 94.08, 55.86, 85.08, 75.62],
        ),
        _row(
            "Swin-Unet",
            79.13,
            21.55,
            SYNAPSE_ORDER,
            [85.47, 66.53, 83.28, 79.61, 94.29, 56.58, 90.66, 76.60],
        ),
        # The authors' Synapse script kept the epoch that scored best on these test cases.
        _row(
            "MT-UNet (selected on test)",
            78.59,
            26.59,
            SYNAPSE_ORDER,
            [87.92, 64.99, 81.47, 77.29, 93.06, 59.46, 87.75, 76.81],
        ),
    ],
    "acdc": [
        _row("U-Net", 87.55, None, ACDC_ORDER, [87.10, 80.63, 94.92]),
        _row("TransUNet", 89.71, None, ACDC_ORDER, [86.67, 87.27, 95.18]),
        _row("Swin-Unet", 88.07, None, ACDC_ORDER, [85.77, 84.42, 94.03]),
        _row("MT-UNet", 90.43, None, ACDC_ORDER, [86.64, 89.04, 95.62]),
    ],
}

PUBLISHED_NOTES: dict[str, str] = {
    "synapse": (
        "Published rows: MT-UNet paper (ICASSP 2022), 18 train / 12 test cases of the real "
        "Synapse (BTCV) CT scans; HD95 in voxels (medpy, no spacing). The published MT-UNet "
        "row was selected on the test cases: the authors' Synapse script evaluated the 12 test "
        "cases after every epoch and kept the best, so it is optimistic; this project never "
        "selects on test data (the last epoch here, as TransUNet). The authors later "
        "reported 79.20 mean DSC after training further."
    ),
    "acdc": (
        "Published rows: MT-UNet paper (ICASSP 2022), real ACDC cine MRI, MT-UNet's split "
        "(70 train / 10 val / 20 test patients); no HD95 published. The authors later "
        "reported 91.61 mean DSC after training further."
    ),
}


#: The published training setup (MT-UNet's code, protocol.md), to name where a run differs.
PAPER_SETUP: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-4,
    "weight_decay": 1e-4,
    "batch_size": 12,
    "epochs": 100,
    "poly_power": 0.9,
    "img_size": [224, 224],
    "width_mult": 1.0,
    "win_size": 4,
    "gaussian": True,
    "external_attention": True,
    "attention": "local_global",
}
