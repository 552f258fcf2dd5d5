"""Live member inventory: connections to member clusters feeding the scheduler cache.

The operator creates one :class:`InventoryManager` around the scheduler's cache and calls
``register`` / ``unregister`` from its MemberCluster handlers; ``state(name)`` gives what to
publish on the MemberCluster status. No Kopf here: the engine is plain threads, so it can be
tested and benchmarked alone. See :mod:`flotilla.inventory.manager` for the lock contract.
"""

from flotilla.inventory.client import InventoryError, load_kubeconfig
from flotilla.inventory.convert import (
    format_quantity,
    format_resource_list,
    node_info,
    node_summary,
    pod_info,
    pod_requests,
    resource_summary,
)
from flotilla.inventory.manager import InventoryManager
from flotilla.inventory.member import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_PROBE_INTERVAL,
    MemberConnection,
    MemberState,
    Reason,
)
from flotilla.inventory.store import Change, ClusterMeta, MemberInventory

__all__ = [
    "DEFAULT_FAILURE_THRESHOLD",
    "DEFAULT_PROBE_INTERVAL",
    "Change",
    "ClusterMeta",
    "InventoryError",
    "InventoryManager",
    "MemberConnection",
    "MemberInventory",
    "MemberState",
    "Reason",
    "format_quantity",
    "format_resource_list",
    "load_kubeconfig",
    "node_info",
    "node_summary",
    "pod_info",
    "pod_requests",
    "resource_summary",
]
