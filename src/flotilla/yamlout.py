"""YAML that every reader parses the same way: each string is written double-quoted.

``yaml.safe_dump`` quotes only the strings *PyYAML* would misread. Kubernetes components read
YAML with Go's ``sigs.k8s.io/yaml`` (a fork of ``gopkg.in/yaml.v2``), which follows YAML 1.1 more
widely: a plain ``y``, ``n``, ``1e3`` or ``0o17`` - all valid DNS labels, so valid cluster names -
is a boolean or a number there, while ``safe_dump`` writes them unquoted. A double-quoted scalar
is a string in every YAML (and JSON) reader, so kubeconfigs and component configs written with
:func:`dump` keep their names.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["dump"]


class _QuotingDumper(yaml.SafeDumper):
    """``SafeDumper`` that writes every ``str`` (keys included) double-quoted."""


def _quoted_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')


_QuotingDumper.add_representer(str, _quoted_str)


def dump(data: Any) -> str:
    """``data`` (dicts, lists, str, int, float, bool, None) as block YAML, strings double-quoted.

    Keys keep their insertion order; long strings (certificate data, tokens) are never folded.
    """
    text: str = yaml.dump(
        data,
        Dumper=_QuotingDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=float("inf"),
    )
    return text
