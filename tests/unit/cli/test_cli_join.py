"""``kubectl flotilla join|unjoin``: least-privilege rules, the kubeconfig the hub keeps, the steps."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client import ApiException

from flotilla import cli, join, kube
from flotilla.api.cluster import MemberCluster
from flotilla.cli import CliError
from flotilla.interpreter.registry import BUILTIN_INTERPRETERS
from flotilla.inventory.client import load_kubeconfig
from flotilla.join import (
    BUILTIN_RESOURCES,
    WORKLOAD_VERBS,
    Member,
    MemberEndpoint,
    MemberNames,
    build_kubeconfig,
    endpoint_from_configuration,
    member_rules,
    rules_markdown,
    run_join,
    run_unjoin,
    validate_name,
)

REPO = Path(__file__).resolve().parents[3]
CA = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"

# -- the member ClusterRole ------------------------------------------------------------------------


def _grants(rules: list[join.Rule]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule.api_groups for r in rule.resources for v in rule.verbs}


def test_every_builtin_kind_is_watched_applied_and_deleted() -> None:
    grants = _grants(member_rules())
    for cls in BUILTIN_INTERPRETERS:
        interpreter = cls()
        resource = BUILTIN_RESOURCES[(interpreter.group, interpreter.kind)]
        for verb in WORKLOAD_VERBS:
            assert (interpreter.group, resource, verb) in grants, (interpreter.kind, verb)
    assert set(BUILTIN_RESOURCES) == {(c().group, c().kind) for c in BUILTIN_INTERPRETERS}


def test_rules_are_exactly_what_the_operator_does() -> None:
    rules = member_rules()
    grants = _grants(rules)
    # inventory: list+watch only, never a read of single objects
    assert {
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
    } <= grants
    # Secrets and ConfigMaps travel with workloads: written, never read.
    assert {v for g, r, v in grants if r in ("secrets", "configmaps")} == {"create", "patch"}
    assert {v for g, r, v in grants if r == "namespaces"} == {"create", "patch"}
    assert {v for g, r, v in grants if r == "resourcequotas"} == {"list", "create", "patch", "delete"}
    # no wildcard, no get/update/escalation verbs anywhere
    assert not {v for _, _, v in grants} & {"*", "get", "update", "deletecollection", "escalate", "bind"}
    assert not any("*" in rule.api_groups or "*" in rule.resources for rule in rules)
    urls = [r for r in rules if r.non_resource_urls]
    assert len(urls) == 1 and urls[0].verbs == ("get",)
    assert set(urls[0].non_resource_urls) == {"/api", "/api/*", "/apis", "/apis/*", "/version", "/readyz"}
    as_dicts = [r.to_dict() for r in rules]
    assert {"nonResourceURLs": list(urls[0].non_resource_urls), "verbs": ["get"]} in as_dicts
    # one rule per API group: no cross product grants kinds of one group in another
    assert {
        "apiGroups": ["apps"],
        "resources": ["deployments", "statefulsets"],
        "verbs": list(WORKLOAD_VERBS),
    } in (as_dicts)


def test_customized_kinds_join_their_group() -> None:
    rules = member_rules([("ray.io", "rayclusters"), ("example.com", "widgets")])
    groups = {r.api_groups: r.resources for r in rules if not r.non_resource_urls}
    assert groups[("ray.io",)] == ("rayclusters", "rayjobs")
    assert groups[("example.com",)] == ("widgets",)


def test_docs_show_the_rules_the_code_grants() -> None:
    assert rules_markdown() in (REPO / "docs" / "cli.md").read_text()


# -- names and objects -----------------------------------------------------------------------------


def test_names_must_be_dns_labels() -> None:
    assert validate_name("gpu-east-1") is None
    for bad in ("", "Gpu", "-a", "a-", "a.b", "a_b", "x" * 64):
        assert validate_name(bad), bad


def test_member_objects_bind_the_role_to_the_service_account() -> None:
    names = MemberNames("joined-c")
    sa, role, binding, secret = names.member_objects(member_rules())
    assert (sa["kind"], sa["metadata"]["name"], sa["metadata"]["namespace"]) == (
        "ServiceAccount",
        "flotilla-joined-c",
        "flotilla-system",
    )
    assert role["metadata"]["name"] == binding["metadata"]["name"] == "flotilla:member:joined-c"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "flotilla:member:joined-c",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "flotilla-joined-c", "namespace": "flotilla-system"}
    ]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "flotilla-joined-c"}
    for obj in (sa, role, binding, secret):
        assert obj["metadata"]["labels"]["flotilla.dev/member-cluster"] == "joined-c"


def test_member_cluster_is_valid_and_names_its_secret() -> None:
    names = MemberNames("joined-c", hub_namespace="fleet")
    mc = names.member_cluster({"gpu": "h100"}, {"region": "eu-west", "zone": None, "provider": "onprem"})
    parsed = MemberCluster.parse(mc)
    assert parsed.spec.secret_ref.name == "joined-c-kubeconfig"
    assert parsed.spec.secret_ref.namespace == "fleet"
    assert (parsed.spec.region, parsed.spec.zone, parsed.spec.provider) == ("eu-west", None, "onprem")
    assert mc["metadata"]["labels"] == {"gpu": "h100"}
    assert mc["metadata"]["annotations"]["flotilla.dev/member-service-account"] == (
        "flotilla-system/flotilla-joined-c"
    )


# -- the kubeconfig the hub keeps ------------------------------------------------------------------


def test_built_kubeconfig_is_what_the_operator_loads() -> None:
    endpoint = MemberEndpoint("https://10.0.0.7:6443", ca_data=CA, tls_server_name="api.member")
    text = build_kubeconfig("y", endpoint, "the-token")
    doc = yaml.safe_load(text)
    assert doc["current-context"] == "y"  # quoted: a YAML 1.1 reader keeps it a string
    assert '"y"' in text
    cluster = doc["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == CA
    assert cluster["tls-server-name"] == "api.member"
    assert doc["users"][0]["user"] == {"token": "the-token"}
    with pytest.raises(Exception, match="certificates cannot be loaded"):
        load_kubeconfig(text)  # the operator's loader checks the CA: this one is not real
    insecure = build_kubeconfig("m", MemberEndpoint("https://10.0.0.7:6443", insecure=True), "tok")
    cfg = load_kubeconfig(insecure)
    assert cfg.host == "https://10.0.0.7:6443"
    assert cfg.verify_ssl is False
    assert cfg.api_key == {"BearerToken": "Bearer tok"} or cfg.api_key.get("authorization") == "Bearer tok"


def _write_member_kubeconfig(tmp_path: Path, cluster: dict[str, Any]) -> Path:
    path = tmp_path / "member.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "m", "cluster": cluster}],
                "users": [{"name": "admin", "user": {"token": "admin-token"}}],
                "contexts": [{"name": "m", "context": {"cluster": "m", "user": "admin"}}],
                "current-context": "m",
            }
        )
    )
    return path


def _configuration(path: Path) -> Any:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg, persist_config=False)
    return cfg


def test_endpoint_takes_the_ca_from_a_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(CA)
    path = _write_member_kubeconfig(
        tmp_path, {"server": "https://127.0.0.1:7443/", "certificate-authority": "pki/ca.crt"}
    )
    endpoint = endpoint_from_configuration(_configuration(path))
    assert endpoint == MemberEndpoint("https://127.0.0.1:7443", ca_data=CA)
    moved = endpoint_from_configuration(_configuration(path), "https://member.example:6443")
    assert moved.server == "https://member.example:6443" and moved.ca_data == CA


def test_endpoint_takes_inline_ca_data_and_insecure(tmp_path: Path) -> None:
    inline = _write_member_kubeconfig(
        tmp_path,
        {"server": "https://127.0.0.1:7443", "certificate-authority-data": base64.b64encode(CA).decode()},
    )
    assert endpoint_from_configuration(_configuration(inline)).ca_data == CA
    insecure = _write_member_kubeconfig(
        tmp_path, {"server": "https://127.0.0.1:7443", "insecure-skip-tls-verify": True}
    )
    assert endpoint_from_configuration(_configuration(insecure)) == MemberEndpoint(
        "https://127.0.0.1:7443", insecure=True
    )


# -- the steps, against in-memory API servers -----------------------------------------------------


class FakeApi:
    """One API server: objects by (kind, namespace, name), resourceVersions, a token controller."""

    def __init__(self, name: str, kinds: dict[tuple[str, str], tuple[str, bool]]) -> None:
        self.name = name
        self.kinds = kinds
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rv = 0
        self.issue_tokens = True
        self.fail: Exception | None = None

    def key(self, obj: dict[str, Any]) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return (obj["kind"], meta.get("namespace") or "", meta["name"])

    def store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[self.key(obj)] = obj
        return copy.deepcopy(obj)


class FakeKube:
    """``flotilla.kube`` functions over :class:`FakeApi` objects (what join/unjoin call)."""

    def __init__(self) -> None:
        self.by_path: dict[str, tuple[FakeApi, tuple[str, str, str]]] = {}

    def resolve(self, api: FakeApi, api_version: str, kind: str) -> tuple[str, bool]:
        self._check(api)
        if (api_version, kind) not in api.kinds:
            raise LookupError(f"the API server does not serve {kind} in {api_version}")
        return api.kinds[(api_version, kind)]

    def _check(self, api: FakeApi) -> None:
        if api.fail is not None:
            raise api.fail

    def get(self, api: FakeApi, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        self.resolve(api, api_version, kind)
        obj = api.objects.get((kind, namespace or "", name))
        return copy.deepcopy(obj) if obj else None

    def apply(self, api: FakeApi, obj: dict[str, Any], field_manager: str = "", **_: Any) -> dict[str, Any]:
        self.resolve(api, obj["apiVersion"], obj["kind"])
        assert field_manager == "kubectl-flotilla"
        current = api.objects.get(api.key(obj))
        merged = copy.deepcopy(obj)
        if current is not None:
            merged = {**current, **merged, "metadata": {**current["metadata"], **merged["metadata"]}}
            if merged == current:
                return copy.deepcopy(current)  # nothing changed: same resourceVersion
        if merged["kind"] == "Secret" and merged.get("type") == join.TOKEN_TYPE and api.issue_tokens:
            merged.setdefault("data", {})["token"] = base64.b64encode(
                f"{api.name}-sa-token".encode()
            ).decode()
        return api.store(merged)

    def list_objects(
        self,
        api: FakeApi,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        self.resolve(api, api_version, kind)
        items = [
            copy.deepcopy(o) for (k, ns, _), o in api.objects.items() if k == kind and ns == (namespace or ns)
        ]
        if label_selector:
            key, _, value = label_selector.partition("=")
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(key) == value]
        return items

    def object_path(self, api: FakeApi, obj: dict[str, Any], *, with_name: bool = True) -> str:
        self.resolve(api, obj["apiVersion"], obj["kind"])
        path = f"{api.name}:{obj['kind']}/{obj['metadata'].get('namespace') or ''}/{obj['metadata']['name']}"
        self.by_path[path] = (api, api.key(obj))
        return path

    def request(self, api: FakeApi, method: str, path: str, body: Any = None, *_: Any, **__: Any) -> Any:
        self._check(api)
        if method == "POST" and path == "/api/v1/namespaces":
            if api.key(body) in api.objects:
                raise ApiException(status=409, reason="Conflict")
            return api.store(copy.deepcopy(body))
        if method == "DELETE":
            target, key = self.by_path[path]
            if key not in target.objects:
                raise ApiException(status=404, reason="Not Found")
            del target.objects[key]
            return None
        raise AssertionError((method, path))


CORE = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Secret"): ("secrets", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
}
FLOTILLA = {
    ("flotilla.dev/v1alpha1", "MemberCluster"): ("memberclusters", False),
    ("flotilla.dev/v1alpha1", "InterpreterCustomization"): ("interpretercustomizations", False),
}


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fk = FakeKube()
    for name in ("resolve", "get", "apply", "list_objects", "object_path", "request"):
        monkeypatch.setattr(kube, name, getattr(fk, name))
    return fk


def _clusters() -> tuple[FakeApi, FakeApi]:
    hub = FakeApi("hub", {**CORE, **FLOTILLA})
    member = FakeApi("member", {**CORE, ("ray.io/v1", "RayCluster"): ("rayclusters", True)})
    return hub, member


def _member(api: FakeApi) -> Member:
    return Member(
        api, MemberEndpoint("https://10.0.0.9:6443", ca_data=CA), "member cluster https://10.0.0.9:6443"
    )


def _join(hub: FakeApi, member: FakeApi, **kw: Any) -> list[str]:
    lines: list[str] = []
    run_join(
        hub,
        _member(member),
        MemberNames("joined-c"),
        kw.get("labels", {"gpu": "l4"}),
        {"region": "eu", "zone": None, "provider": None},
        lines.append,
        timeout=kw.get("timeout", 5.0),
    )
    return lines


def test_join_makes_the_member_side_then_the_hub_side(fake: FakeKube) -> None:
    hub, member = _clusters()
    hub.store(
        {
            "apiVersion": "flotilla.dev/v1alpha1",
            "kind": "InterpreterCustomization",
            "metadata": {"name": "raycluster"},
            "spec": {"target": {"apiVersion": "ray.io/v1", "kind": "RayCluster"}},
        }
    )
    hub.store(
        {
            "apiVersion": "flotilla.dev/v1alpha1",
            "kind": "InterpreterCustomization",
            "metadata": {"name": "widget"},
            "spec": {"target": {"apiVersion": "example.com/v1", "kind": "Widget"}},
        }
    )
    lines = _join(hub, member)
    assert lines == [
        "On member cluster https://10.0.0.9:6443:",
        "  namespace/flotilla-system created",
        "  note: Widget (example.com/v1, InterpreterCustomization widget) is not served here: no rule for it;"
        " run join again after installing its CRD",
        "  serviceaccount/flotilla-joined-c created (namespace flotilla-system)",
        "  clusterrole.rbac.authorization.k8s.io/flotilla:member:joined-c created",
        "  clusterrolebinding.rbac.authorization.k8s.io/flotilla:member:joined-c created",
        "  secret/flotilla-joined-c-token created (namespace flotilla-system)",
        "  token issued for serviceaccount/flotilla-joined-c",
        "On the hub:",
        "  namespace/flotilla-system created",
        "  secret/joined-c-kubeconfig created (namespace flotilla-system)",
        "  membercluster.flotilla.dev/joined-c created",
        "Cluster joined-c joined: the operator reaches https://10.0.0.9:6443 as "
        "flotilla-system/flotilla-joined-c (see 'kubectl flotilla get clusters')",
    ]
    role = member.objects[("ClusterRole", "", "flotilla:member:joined-c")]
    assert {
        "apiGroups": ["ray.io"],
        "resources": ["rayclusters", "rayjobs"],
        "verbs": list(WORKLOAD_VERBS),
    } in role["rules"]
    secret = hub.objects[("Secret", "flotilla-system", "joined-c-kubeconfig")]
    kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
    assert kubeconfig["users"][0]["user"] == {"token": "member-sa-token"}
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.0.0.9:6443"
    mc = hub.objects[("MemberCluster", "", "joined-c")]
    assert mc["spec"] == {
        "secretRef": {"namespace": "flotilla-system", "name": "joined-c-kubeconfig"},
        "region": "eu",
    }
    assert mc["metadata"]["labels"] == {"gpu": "l4"}


def test_join_again_updates(fake: FakeKube) -> None:
    hub, member = _clusters()
    _join(hub, member)
    again = _join(hub, member)
    assert "  serviceaccount/flotilla-joined-c unchanged (namespace flotilla-system)" in again
    assert "  namespace/flotilla-system unchanged" in again
    relabelled = _join(hub, member, labels={"gpu": "h100"})
    assert "  membercluster.flotilla.dev/joined-c configured" in relabelled
    assert hub.objects[("MemberCluster", "", "joined-c")]["metadata"]["labels"] == {"gpu": "h100"}


def test_join_checks_the_hub_crds_before_touching_the_member(fake: FakeKube) -> None:
    hub, member = _clusters()
    hub.kinds = dict(CORE)
    with pytest.raises(CliError) as err:
        _join(hub, member)
    assert err.value.code == cli.EXIT_NO_CRDS
    assert "are the Flotilla CRDs installed on the hub?" in str(err.value)
    assert member.objects == {}


def test_join_names_the_member_when_it_refuses(fake: FakeKube) -> None:
    hub, member = _clusters()
    denied = ApiException(status=403, reason="Forbidden")
    denied.body = json.dumps({"message": 'clusterroles.rbac.authorization.k8s.io is forbidden: User "dev"'})
    member.fail = denied
    with pytest.raises(CliError) as err:
        _join(hub, member)
    assert err.value.code == cli.EXIT_FORBIDDEN
    assert str(err.value) == (
        "member cluster https://10.0.0.9:6443 answered HTTP 403 Forbidden: "
        'clusterroles.rbac.authorization.k8s.io is forbidden: User "dev"'
    )
    assert ("MemberCluster", "", "joined-c") not in hub.objects


def test_join_times_out_without_a_token_controller(fake: FakeKube) -> None:
    hub, member = _clusters()
    member.issue_tokens = False
    with pytest.raises(CliError, match=r"did not issue a token .* kube-controller-manager") as err:
        _join(hub, member, timeout=0.0)
    assert err.value.code == cli.EXIT_ERROR
    assert ("MemberCluster", "", "joined-c") not in hub.objects


def test_unjoin_removes_both_sides(fake: FakeKube) -> None:
    hub, member = _clusters()
    _join(hub, member)
    lines: list[str] = []
    warnings: list[str] = []
    run_unjoin(hub, MemberNames("joined-c"), _member(member), lines.append, warnings.append)
    assert lines == [
        "On the hub:",
        "  membercluster.flotilla.dev/joined-c deleted",
        "  secret/joined-c-kubeconfig deleted (namespace flotilla-system)",
        "On member cluster https://10.0.0.9:6443:",
        "  clusterrolebinding.rbac.authorization.k8s.io/flotilla:member:joined-c deleted",
        "  clusterrole.rbac.authorization.k8s.io/flotilla:member:joined-c deleted",
        "  secret/flotilla-joined-c-token deleted (namespace flotilla-system)",
        "  serviceaccount/flotilla-joined-c deleted (namespace flotilla-system)",
        "  namespace/flotilla-system deleted",
        "Cluster joined-c unjoined",
    ]
    assert warnings == []
    assert member.objects == {}
    assert set(hub.objects) == {("Namespace", "", "flotilla-system")}


def test_unjoin_keeps_a_namespace_it_did_not_create_or_that_others_use(fake: FakeKube) -> None:
    hub, member = _clusters()
    _join(hub, member)
    other = MemberNames("other")
    member.store(other.member_objects(member_rules())[0])
    lines: list[str] = []
    run_unjoin(hub, MemberNames("joined-c"), _member(member), lines.append, lines.append)
    assert "  namespace/flotilla-system kept (other joins use it: flotilla-other)" in lines


def test_unjoin_lists_what_it_left_on_an_unreachable_member(fake: FakeKube) -> None:
    hub, member = _clusters()
    _join(hub, member)
    member.fail = OSError("connection refused")
    lines: list[str] = []
    warnings: list[str] = []
    run_unjoin(hub, MemberNames("joined-c"), _member(member), lines.append, warnings.append)
    assert ("MemberCluster", "", "joined-c") not in hub.objects
    assert lines[-6:] == [
        "Left on the member (remove them with the member's admin credentials):",
        "  clusterrolebinding.rbac.authorization.k8s.io/flotilla:member:joined-c",
        "  clusterrole.rbac.authorization.k8s.io/flotilla:member:joined-c",
        "  secret/flotilla-joined-c-token (namespace flotilla-system)",
        "  serviceaccount/flotilla-joined-c (namespace flotilla-system)",
        "Cluster joined-c unjoined",
    ]
    assert len(warnings) == 1
    assert "cannot talk to member cluster https://10.0.0.9:6443: connection refused" in warnings[0]


def test_unjoin_without_member_credentials_says_what_is_left(fake: FakeKube) -> None:
    hub, member = _clusters()
    _join(hub, member)
    warnings: list[str] = []
    run_unjoin(hub, MemberNames("joined-c"), None, lambda _l: None, warnings.append)
    assert "no member kubeconfig given (--cluster-kubeconfig/--cluster-context)" in warnings[0]
    assert ("ServiceAccount", "flotilla-system", "flotilla-joined-c") in member.objects


def test_unjoin_of_an_unknown_cluster_fails(fake: FakeKube) -> None:
    hub, _member_api = _clusters()
    with pytest.raises(CliError, match="membercluster 'nope' not found") as err:
        run_unjoin(hub, MemberNames("nope"), None, lambda _l: None, lambda _l: None)
    assert err.value.code == cli.EXIT_ERROR


def test_unjoin_keeps_a_secret_another_member_uses(fake: FakeKube) -> None:
    hub, member = _clusters()
    _join(hub, member)
    twin = copy.deepcopy(hub.objects[("MemberCluster", "", "joined-c")])
    twin["metadata"] = {"name": "twin"}
    hub.store(twin)
    lines: list[str] = []
    run_unjoin(hub, MemberNames("joined-c"), None, lines.append, lambda _l: None)
    assert "  secret/joined-c-kubeconfig kept (namespace flotilla-system): twin uses it too" in lines
    assert ("Secret", "flotilla-system", "joined-c-kubeconfig") in hub.objects


# -- the command line --------------------------------------------------------------------------------


def test_join_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["join", "Bad_Name", "--cluster-context", "x"]) == cli.EXIT_USAGE
    assert "invalid cluster name 'Bad_Name'" in capsys.readouterr().err
    assert cli.main(["join", "c"]) == cli.EXIT_USAGE
    assert capsys.readouterr().err == (
        "flotilla: error: join needs --cluster-kubeconfig FILE and/or --cluster-context NAME\n"
    )
    assert cli.main(["join", "c", "--cluster-context", "x", "--labels", "novalue"]) == cli.EXIT_USAGE
    assert "--labels 'novalue': expected KEY=VALUE" in capsys.readouterr().err


def test_join_with_an_unreadable_kubeconfig_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.kubeconfig"
    assert cli.main(["join", "c", "--cluster-kubeconfig", str(missing)]) == cli.EXIT_ERROR
    assert capsys.readouterr().err == f"flotilla: error: --cluster-kubeconfig {missing}: no such file\n"
    garbage = tmp_path / "garbage.kubeconfig"
    garbage.write_text("clusters: [ {\n")
    assert cli.main(["join", "c", "--cluster-kubeconfig", str(garbage)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert (
        err.startswith(f"flotilla: error: cannot use member kubeconfig {garbage}: ") and err.count("\n") == 1
    )


def test_join_dry_run_prints_the_objects(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(
            ["join", "gpu-1", "--cluster-context", "x", "--dry-run", "--region", "eu", "--labels", "a=b,c=d"]
        )
        == 0
    )
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
        "MemberCluster",
    ]
    assert docs[2]["rules"] == [r.to_dict() for r in member_rules()]
    assert docs[-1]["spec"]["region"] == "eu" and docs[-1]["metadata"]["labels"] == {"a": "b", "c": "d"}


def test_join_command_wires_hub_and_member(
    fake: FakeKube, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub, member = _clusters()
    (tmp_path / "ca.crt").write_bytes(CA)
    member_path = _write_member_kubeconfig(
        tmp_path, {"server": "https://10.0.0.9:6443", "certificate-authority": "ca.crt"}
    )
    hub_path = tmp_path / "hub.kubeconfig"
    hub_path.write_text(member_path.read_text().replace("10.0.0.9", "10.0.0.1"))
    apis = {"https://10.0.0.1:6443": hub, "https://10.0.0.9:6443": member}
    monkeypatch.setattr(client, "ApiClient", lambda cfg: apis[cfg.host])
    args = ["--kubeconfig", str(hub_path), "--cluster-kubeconfig", str(member_path)]
    assert cli.main(["join", "joined-c", *args, "--zone", "z1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("On member cluster https://10.0.0.9:6443:\n")
    secret = hub.objects[("Secret", "flotilla-system", "joined-c-kubeconfig")]
    kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]))
    assert base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]) == CA
    assert hub.objects[("MemberCluster", "", "joined-c")]["spec"]["zone"] == "z1"
    assert cli.main(["unjoin", "joined-c", *args]) == 0
    assert member.objects == {}
    assert cli.main(["unjoin", "joined-c", "--kubeconfig", str(hub_path)]) == cli.EXIT_ERROR
    assert capsys.readouterr().err.endswith("membercluster 'joined-c' not found (nothing to unjoin)\n")
