"""The Ray cluster of a launch: starting or joining it, and checking it can run the study.

:func:`start_ray` starts a local instance or joins a running cluster; :func:`check_cluster`
refuses a run size no node has (Ray would wait for ever); :func:`check_shared_filesystem`
runs :func:`~mtunet.scaleout.worker.probe` on every node, so a node that does not see the
checkout or the DVC cache, or cannot import ``mtunet``, is named before anything starts.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from mtunet.fileio import write_text
from mtunet.scaleout.resources import ResourcesConfig
from mtunet.scaleout.worker import LOG_DIR, probe

INSTALL_HINT = 'Ray is not installed; install it with: pip install -e ".[ray]"'


def import_ray() -> Any:
    """The ``ray`` module, or RuntimeError with the install command."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc
    return ray


def start_ray(ray: Any, address: str, num_cpus: int | None, num_gpus: float | None) -> None:
    """Start a local Ray instance (``address="local"``) or join a cluster (``auto``, an
    address, ``ray://host:port``)."""
    if address != "local" and (num_cpus is not None or num_gpus is not None):
        raise ValueError(
            "--num-cpus/--num-gpus size a local Ray instance; a running cluster "
            f"({address}) has its own resources (set them in `ray start`)"
        )
    kwargs: dict[str, Any] = {"log_to_driver": False}
    if address == "local":
        # The tasks pass no data, so a small object store will do.
        kwargs.update(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            object_store_memory=128 * 2**20,
        )
    ray.init(address=address, **kwargs)


def check_cluster(ray: Any, resources: ResourcesConfig, gpus: float) -> None:
    """Refuse resources no node has: Ray would wait for them for ever."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for kind in ("train", "evaluate", "other"):
        res = resources.for_stage(kind, gpus)
        fits = [
            n for n in nodes if n.get("CPU", 0) >= res.cpus and n.get("GPU", 0) + 1e-9 >= res.gpus
        ]
        if not fits:
            largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
            raise ValueError(
                f"resources.{kind}: a run asks for {res.cpus} CPU(s) and {res.gpus:g} GPU(s), "
                f"but the largest node has {largest.get('CPU', 0):g} CPU(s) and "
                f"{largest.get('GPU', 0):g} GPU(s); lower resources.{kind} in params.yaml"
            )


def check_shared_filesystem(ray: Any, root: Path, cache_dir: str | None) -> None:
    """Every live node must see this checkout and its DVC cache, and import ``mtunet``."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    token_path = root / LOG_DIR / ".probe"
    if cache_dir:  # DVC creates it on first use; it must exist to be seen elsewhere
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    write_text(token_path, token)
    task = ray.remote(probe)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [
        task.options(
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
        ).remote(str(root), str(token_path), token, cache_dir)
        for n in nodes
    ]
    problems: list[str] = []
    for node, ref in zip(nodes, refs, strict=True):
        try:
            problems += ray.get(ref, timeout=300)
        except Exception as exc:  # a node that cannot even import mtunet.scaleout
            problems.append(f"{node.get('NodeManagerAddress')}: {type(exc).__name__}: {exc}")
    token_path.unlink(missing_ok=True)
    if problems:
        raise RuntimeError(
            "mtunet study run needs every Ray node to see the same checkout and DVC cache "
            "(a shared filesystem) and to have the project installed:\n  " + "\n  ".join(problems)
        )
