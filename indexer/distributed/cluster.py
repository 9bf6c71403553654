"""Joining a Ray cluster (an existing one, or a local one started for the job)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


def import_ray() -> Any:
    """Ray, or a ValueError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ValueError("the ray engine needs Ray: pip install 'promptsim[ray]' (or pip install 'ray[data]')") from err
    return ray


@dataclass(frozen=True)
class RayCluster:
    """What the job may use: CPUs and GPUs of the cluster it joined."""

    cpus: int
    gpus: int
    started_here: bool


@contextmanager
def ray_cluster(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[RayCluster]:
    """Connect to the cluster at address (e.g. 'ray://head:10001' or 'auto'), or start a local one.

    A cluster that was already initialized in this process (tests, notebooks) is reused and
    left running; one started here is shut down on exit.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
        started = True
    resources = ray.cluster_resources()
    cluster = RayCluster(int(resources.get("CPU", 1)), int(resources.get("GPU", 0)), started)
    logger.info("ray: %d CPUs, %d GPUs (%s)", cluster.cpus, cluster.gpus, address or "local")
    try:
        yield cluster
    finally:
        if started:
            ray.shutdown()
