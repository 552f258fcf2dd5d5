"""AdmissionReview parsing and serialising."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flotilla.admission.review import AdmissionRequest, AdmissionResponse

REVIEW: dict[str, Any] = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": "team-a",
        "name": "trainer",
        "operation": "UPDATE",
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}},
        "oldObject": {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1}},
        "dryRun": True,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
    },
}


def test_a_full_review_is_parsed() -> None:
    request = AdmissionRequest.from_review(REVIEW)
    assert request.uid == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert (request.kind.group, request.kind.version, request.kind.kind) == ("apps", "v1", "Deployment")
    assert request.resource.resource == "deployments"
    assert (request.namespace, request.name, request.operation) == ("team-a", "trainer", "UPDATE")
    assert request.object is not None and request.object["spec"]["replicas"] == 3
    assert request.old_object is not None and request.old_object["spec"]["replicas"] == 1
    assert request.dry_run is True
    assert request.user == "alice"
    assert request.sub_resource == ""


def test_a_minimal_create_of_a_core_kind() -> None:
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "operation": "CREATE",
            "object": {"metadata": {"generateName": "cm-"}},
        },
    }
    request = AdmissionRequest.from_review(review)
    assert request.kind.group == "" and request.resource.resource == "configmaps"
    assert (request.namespace, request.name, request.user) == ("", "", "")
    assert request.old_object is None
    assert request.dry_run is False


def test_a_scale_subresource_request() -> None:
    review = copy.deepcopy(REVIEW)
    review["request"]["subResource"] = "scale"
    review["request"]["kind"] = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert AdmissionRequest.from_review(review).sub_resource == "scale"


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    review = copy.deepcopy(REVIEW)
    target = review
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return review


@pytest.mark.parametrize(
    ("review", "message"),
    [
        ([], "JSON object"),
        (_broken(["apiVersion"], "admission.k8s.io/v1beta1"), "expected apiVersion admission.k8s.io/v1"),
        (_broken(["kind"], "Status"), "kind AdmissionReview"),
        (_broken(["request"], KeyError), "no request"),
        (_broken(["request", "uid"], KeyError), "request.uid"),
        (_broken(["request", "uid"], ""), "request.uid"),
        (_broken(["request", "operation"], "PATCH"), "request.operation"),
        (_broken(["request", "kind"], KeyError), "request.kind"),
        (_broken(["request", "kind", "kind"], ""), "request.kind needs"),
        (_broken(["request", "resource", "resource"], 3), "request.resource.resource must be a string"),
        (_broken(["request", "object"], "text"), "request.object must be an object"),
        (_broken(["request", "dryRun"], "yes"), "request.dryRun"),
        (_broken(["request", "userInfo"], ["alice"]), "request.userInfo"),
        (_broken(["request", "namespace"], 7), "request.namespace"),
    ],
)
def test_malformed_reviews_say_what_is_wrong(review: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdmissionRequest.from_review(review)


def test_an_allowed_response_has_no_status() -> None:
    assert AdmissionResponse.allow().to_review("u1") == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u1", "allowed": True},
    }


def test_a_denial_carries_code_reason_message_and_warnings() -> None:
    response = AdmissionResponse(
        False, "FederatedResourceQuota team-a/gpus: no", code=403, reason="Forbidden", warnings=("w",)
    )
    assert response.to_review("u2")["response"] == {
        "uid": "u2",
        "allowed": False,
        "status": {"code": 403, "message": "FederatedResourceQuota team-a/gpus: no", "reason": "Forbidden"},
        "warnings": ["w"],
    }
    assert AdmissionResponse.deny("x", code=500, reason="InternalError") == AdmissionResponse(
        False, "x", 500, "InternalError"
    )
