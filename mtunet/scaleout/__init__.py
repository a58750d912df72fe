"""The study spread over GPUs and machines: ``mtunet study run`` (Ray) and ``mtunet study plan``.

DVC stays the record and ``dvc.yaml`` the only list of runs; Ray only executes the stages
DVC says are stale, as many at once as the cluster's resources allow (docs/scale-out.md).
One concern per module:

* :mod:`~mtunet.scaleout.resources`: the ``resources`` section (GPUs and CPUs per run);
* :mod:`~mtunet.scaleout.graph`: the DVC stage graph, status and staleness, recording a stage;
* :mod:`~mtunet.scaleout.estimate`: per-stage times and list scheduling on N GPUs;
* :mod:`~mtunet.scaleout.plan`: ``mtunet study plan``;
* :mod:`~mtunet.scaleout.worker`: one stage's command inside a Ray task;
* :mod:`~mtunet.scaleout.cluster`: starting or joining Ray, checking the nodes;
* :mod:`~mtunet.scaleout.progress`: the launcher's progress lines;
* :mod:`~mtunet.scaleout.runner`: ``mtunet study run``, the Ray driver.

Ray is an optional extra (``pip install -e ".[ray]"``); only the runner imports it.
"""

from __future__ import annotations

from mtunet.scaleout.resources import ResourcesConfig, RunResources, stage_kind

__all__ = ["ResourcesConfig", "RunResources", "stage_kind"]
