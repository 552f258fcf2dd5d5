"""FederatedResourceQuota: usage accounting and admission decisions (pure; no I/O).

The admission webhook (:mod:`flotilla.quota.admission`) charges an apply in the quota's status
before admitting it; the quota controller (:mod:`flotilla.controllers.quota`) recomputes the
status from the workloads it watches and releases charges once they show. This module holds
the arithmetic both share.
"""

from flotilla.quota.ledger import (
    Charge,
    Quota,
    QuotaCheck,
    check,
    compute_status,
    effective_usage,
    increase_of,
)
from flotilla.quota.usage import (
    binding_cluster_usage,
    finished,
    quota_resource,
    workload_id,
    workload_usage,
)

__all__ = [
    "Charge",
    "Quota",
    "QuotaCheck",
    "binding_cluster_usage",
    "check",
    "compute_status",
    "effective_usage",
    "finished",
    "increase_of",
    "quota_resource",
    "workload_id",
    "workload_usage",
]
