"""The JSONPath subset: parse, get, set, expand, and clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.interpreter.paths import PathError, expand_path, get_path, parse_path, set_path

OBJ: dict[str, Any] = {
    "metadata": {"annotations": {"example.com/a.b": "x"}},
    "spec": {
        "replicas": 3,
        "workerGroupSpecs": [{"replicas": 2, "template": {"n": 0}}, {"replicas": 5, "template": {"n": 1}}],
    },
    "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Done", "status": "False"}]},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.replicas", 3),
        ("{.spec.replicas}", 3),
        ("$.spec.replicas", 3),
        (" { .spec.replicas } ", 3),
        (".spec.workerGroupSpecs[0].template", {"n": 0}),
        (".spec.workerGroupSpecs[-1].replicas", 5),
        (".metadata.annotations['example.com/a.b']", "x"),
        ('.metadata.annotations["example.com/a.b"]', "x"),
        ('.status.conditions[?(@.type=="Ready")].status', "True"),
        (".status.conditions[?(@.type=='Done')].status", "False"),
        # absent
        (".spec.missing", None),
        (".spec.workerGroupSpecs[7].template", None),
        (".spec.replicas.deeper", None),
        ('.status.conditions[?(@.type=="Nope")].status', None),
    ],
)
def test_get(path: str, expected: Any) -> None:
    assert get_path(OBJ, path) == expected


def test_get_default() -> None:
    assert get_path(OBJ, ".spec.missing", 1) == 1


@pytest.mark.parametrize(
    ("path", "segment"),
    [
        ("spec.replicas", "spec"),
        (".spec..replicas", ".."),
        (".spec.replicas[", "["),
        (".spec[abc]", "[abc]"),
        (".spec.workers[0", "[0"),
        ("{.spec.replicas", "{"),
        ("", ""),
        (".spec.a b", " b"),
    ],
)
def test_bad_paths_name_the_segment(path: str, segment: str) -> None:
    with pytest.raises(PathError) as info:
        parse_path(path)
    assert info.value.path == path
    assert repr(path) in str(info.value)
    assert info.value.segment == segment


def test_missing_leading_dot_is_explained() -> None:
    with pytest.raises(PathError, match=r"starts with '\.'"):
        parse_path("spec.replicas")


def test_path_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"invalid path '\.spec\[x\]' at segment '\[x\]'"):
        get_path(OBJ, ".spec[x]")


def test_set_creates_intermediate_mappings() -> None:
    obj: dict[str, Any] = {"spec": {"workerGroupSpecs": [{"replicas": 1}]}}
    set_path(obj, ".spec.runPolicy.suspend", True)
    set_path(obj, ".spec.workerGroupSpecs[0].replicas", 4)
    set_path(obj, "{.metadata.annotations['a.b/c']}", "v")
    assert obj == {
        "spec": {"runPolicy": {"suspend": True}, "workerGroupSpecs": [{"replicas": 4}]},
        "metadata": {"annotations": {"a.b/c": "v"}},
    }


@pytest.mark.parametrize(
    ("path", "segment", "reason"),
    [
        (".spec.replicas.x", ".x", "cannot set a key on a int"),
        (".spec.workerGroupSpecs[3].replicas", "[3]", "index out of range"),
        (".spec.workerGroupSpecs[*].replicas", "[*]", "only .key and [index]"),
        (".spec[0]", "[0]", "cannot index a dict"),
    ],
)
def test_set_errors(path: str, segment: str, reason: str) -> None:
    obj: dict[str, Any] = {"spec": {"replicas": 1, "workerGroupSpecs": [{}]}}
    with pytest.raises(PathError) as info:
        set_path(obj, path, 1)
    assert info.value.segment == segment
    assert reason in info.value.reason


def test_wildcard_cannot_be_read_directly() -> None:
    with pytest.raises(PathError, match="expand_path"):
        get_path(OBJ, ".spec.workerGroupSpecs[*].replicas")


def test_expand() -> None:
    got = expand_path(OBJ, ".spec.workerGroupSpecs[*].template")
    assert [(i, str(p)) for i, p in got] == [
        ((0,), ".spec.workerGroupSpecs[0].template"),
        ((1,), ".spec.workerGroupSpecs[1].template"),
    ]
    assert [get_path(OBJ, p) for _, p in got] == [{"n": 0}, {"n": 1}]
    assert [str(p) for _, p in expand_path(OBJ, ".spec.replicas")] == [".spec.replicas"]
    assert expand_path(OBJ, ".spec.nothing[*].x") == []
    assert expand_path(OBJ, ".spec.nothing") == []


def test_nested_wildcards_and_lockstep() -> None:
    obj = {"a": [{"b": [1, 2]}, {"b": [3]}]}
    got = expand_path(obj, ".a[*].b[*]")
    assert [i for i, _ in got] == [(0, 0), (0, 1), (1, 0)]
    sibling = parse_path(".a[*].c[*]").with_indices((1, 0))
    assert str(sibling) == ".a[1].c[0]"
    with pytest.raises(PathError, match="2 wildcard"):
        parse_path(".a[*].c[*]").with_indices((1,))
