"""A decision's explanation bounded to a number of clusters: the placed ones always listed, then
the best-ranked others, then rejected ones; the rest counted, and every rejection counted per
plugin and reason."""

from __future__ import annotations

from sched_fixtures import DIVIDED_AGGREGATED, cluster, node, workload

from flotilla.scheduler import GPU_PRODUCT_LABEL, GPU_RESOURCE, Scheduler, SchedulerCache

GiB = 1 << 30


def decide(replicas: int = 3) -> object:
    cache = SchedulerCache()
    for i in range(30):
        model = "H100" if i % 3 == 0 else "A100"  # 10 clusters with H100s
        gpus = 8 if i < 27 else 0  # the last three: no free GPU at all
        cache.update_cluster(
            cluster(
                f"m{i:02d}",
                [
                    node(f"m{i:02d}-n{j}", gpus=8, used_gpus=8 - gpus if j else 8, model=model)
                    for j in range(2)
                ],
            )
        )
    w = workload(
        {"cpu": 1000, "memory": GiB, GPU_RESOURCE: 8}, replicas, node_selector={GPU_PRODUCT_LABEL: "H100"}
    )
    outcome = Scheduler().schedule(cache.snapshot(), w)
    assert outcome.ok
    return outcome


def test_everything_listed_when_within_the_bound() -> None:
    outcome = decide()
    full = outcome.explanation.to_dict()
    assert len(full["clusters"]) == 30 and "omitted" not in full
    assert outcome.explanation.to_dict(30) == full


def test_bounded_lists_placed_then_best_ranked_then_rejected_and_counts_the_rest() -> None:
    outcome = decide()
    expl = outcome.explanation
    full = expl.to_dict()
    placed = {c["cluster"] for c in full["clusters"] if c["replicas"] > 0}
    feasible = [c["cluster"] for c in full["clusters"] if c["feasible"]]
    rejected = [c["cluster"] for c in full["clusters"] if not c["feasible"]]
    assert len(placed) == 3 and len(feasible) == 9 and len(rejected) == 21

    five = expl.to_dict(5)
    listed = [c["cluster"] for c in five["clusters"]]
    assert len(listed) == 5 and placed <= set(listed)
    best_others = [n for n in full["selected"] if n not in placed][: 5 - len(placed)]
    assert set(listed) == placed | set(best_others)
    # Listed entries are exactly the full entries of those clusters.
    by_name = {c["cluster"]: c for c in full["clusters"]}
    assert all(c == by_name[c["cluster"]] for c in five["clusters"])
    assert five["omitted"] == {"feasible": 9 - 5, "rejected": 21}
    assert sum(r["clusters"] for r in five["rejections"]) == 21
    assert five["rejections"][0]["plugin"] == "NodeAffinity"
    assert five["selected"] == full["selected"][:5] and five["selectedCount"] == len(full["selected"])

    many = expl.to_dict(15)  # room for rejected clusters too: the first by name
    listed = [c["cluster"] for c in many["clusters"]]
    assert set(feasible) <= set(listed)
    assert set(listed) - set(feasible) == set(sorted(rejected)[:6])
    assert many["omitted"] == {"feasible": 0, "rejected": 15}


def test_omitted_counts_match_the_full_list_with_clusters_rejected_before_node_fit() -> None:
    """Clusters a cluster filter rejects have no node-level entry: counted all the same."""
    cache = SchedulerCache()
    for i in range(12):
        cache.update_cluster(
            cluster(f"m{i:02d}", [node(f"m{i:02d}-n0", gpus=8, used_gpus=8 if i % 4 == 3 else 0)])
        )
    names = [f"m{i:02d}" for i in range(9)]  # three more clusters out of the affinity
    placement = {**DIVIDED_AGGREGATED, "clusterAffinity": {"clusterNames": names}}
    outcome = Scheduler().schedule(cache.snapshot(), workload({"cpu": 1000, GPU_RESOURCE: 1}, 2, placement))
    assert outcome.ok
    expl = outcome.explanation
    full = expl.to_dict()
    assert len(full["clusters"]) == 12
    assert sum(1 for c in full["clusters"] if "available" not in c) == 3  # not node-checked
    for bound in range(1, 12):
        bounded = expl.to_dict(bound)
        listed = {c["cluster"] for c in bounded["clusters"]}
        assert bounded["omitted"] == {
            "feasible": sum(1 for c in full["clusters"] if c["feasible"] and c["cluster"] not in listed),
            "rejected": sum(1 for c in full["clusters"] if not c["feasible"] and c["cluster"] not in listed),
        }
