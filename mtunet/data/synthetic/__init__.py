"""Synthetic phantoms in the RAW release layouts.

Entry points:

- ``phantom_config(name, d) -> SynapsePhantomConfig | AcdcPhantomConfig`` builds the
  config from a ``params.yaml`` mapping (``datasets.<ds>.phantoms``).
- ``write_phantoms(name, cfg, out_dir) -> dict`` writes the raw dataset (name
  ``"synapse"`` or ``"acdc"``) and returns a summary (also written as
  ``out_dir/phantoms.json``).

Everything is a function of ``cfg.seed`` and the case id (one generator per case), so a
case does not change when other cases are added, and reruns give identical bytes.

The package, one concern per module:

* :mod:`~mtunet.data.synthetic.config`: the two configs and the ids they write;
* :mod:`~mtunet.data.synthetic.shapes`: drawing helpers both phantoms use;
* :mod:`~mtunet.data.synthetic.synapse_ct`: Synapse-like abdominal CT (13 BTCV organs);
* :mod:`~mtunet.data.synthetic.acdc_cine`: ACDC-like cine MR (RV, myocardium, LV);
* :mod:`~mtunet.data.synthetic.writer`: :func:`write_phantoms`, by dataset name.
"""

from __future__ import annotations

from mtunet.data.synthetic.acdc_cine import acdc_patient, write_acdc_phantoms
from mtunet.data.synthetic.config import AcdcPhantomConfig, SynapsePhantomConfig, phantom_config
from mtunet.data.synthetic.synapse_ct import synapse_case, write_synapse_phantoms
from mtunet.data.synthetic.writer import write_phantoms

__all__ = [
    "AcdcPhantomConfig",
    "SynapsePhantomConfig",
    "acdc_patient",
    "phantom_config",
    "synapse_case",
    "write_acdc_phantoms",
    "write_phantoms",
    "write_synapse_phantoms",
]
