"""The nightly pipeline on a Ray cluster: ingest and dedup with the same results as the single-node path.

Ray is an optional extra (`pip install .[ray]`); nothing outside this package imports it,
and this package imports it only inside its functions.
"""

from .cluster import RayCluster, ray_cluster

__all__ = ["RayCluster", "ray_cluster"]
