"""A small JSONPath subset for addressing fields of Kubernetes objects.

Grammar (what ``InterpreterCustomization`` paths may use)::

    path     := ["{"] ["$"] segment+ ["}"]
    segment  := "." key                  .spec.replicas
              | "[" integer "]"          .spec.workerGroupSpecs[0]   (negative counts from the end)
              | "[*]"                    every element of a list     (components only, see expand_path)
              | "['" key "']"            a key with dots: .metadata.annotations['a.b/c']  (or "...")
              | "[?(@.f==" literal ")]"  the first list element whose field f equals the literal
    key      := [A-Za-z0-9_-]+           (use the bracket form for anything else)
    literal  := 'text' | "text"

``get_path`` reads (a missing key, an index past the end or a value of the wrong shape reads as
absent), ``set_path`` writes (creating intermediate mappings), ``expand_path`` turns ``[*]`` into
concrete indices.  A malformed path raises :class:`PathError` (a ``ValueError``) naming the path and
the failing segment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "Filter",
    "Index",
    "Key",
    "Path",
    "PathError",
    "Wildcard",
    "expand_path",
    "get_path",
    "parse_path",
    "set_path",
]


class PathError(ValueError):
    """A path is malformed, or cannot be used the way it was asked to be used."""

    def __init__(self, path: str, segment: str, reason: str) -> None:
        super().__init__(f"invalid path {path!r} at segment {segment!r}: {reason}")
        self.path = path
        self.segment = segment
        self.reason = reason


@dataclass(frozen=True)
class Key:
    """A mapping key."""

    name: str

    def __str__(self) -> str:
        return f".{self.name}" if _PLAIN_KEY.fullmatch(self.name) else f"[{self.name!r}]"


@dataclass(frozen=True)
class Index:
    """A list index (negative counts from the end)."""

    index: int

    def __str__(self) -> str:
        return f"[{self.index}]"


@dataclass(frozen=True)
class Wildcard:
    """``[*]``: every element of a list."""

    def __str__(self) -> str:
        return "[*]"


@dataclass(frozen=True)
class Filter:
    """``[?(@.field=="value")]``: the first list element whose ``field`` equals ``value`` (as text)."""

    field: str
    value: str

    def __str__(self) -> str:
        return f'[?(@.{self.field}=="{self.value}")]'


Segment = Key | Index | Wildcard | Filter

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"\[(-?\d+)\]")
_QUOTED = re.compile(r"""\[(?:'([^']*)'|"([^"]*)")\]""")
_FILTER = re.compile(r"""\[\?\(@\.([A-Za-z0-9_-]+)\s*==\s*(?:'([^']*)'|"([^"]*)")\)\]""")


@dataclass(frozen=True)
class Path:
    """A parsed path: the original text and its segments."""

    text: str
    segments: tuple[Segment, ...]

    def __str__(self) -> str:
        return "".join(str(s) for s in self.segments)

    @property
    def wildcards(self) -> int:
        """How many ``[*]`` segments the path has."""
        return sum(isinstance(s, Wildcard) for s in self.segments)

    @property
    def is_plain(self) -> bool:
        """True when the path has only keys and indices (so it can be written with ``set_path``)."""
        return all(isinstance(s, Key | Index) for s in self.segments)

    def with_indices(self, indices: tuple[int, ...]) -> Path:
        """Replace the ``[*]`` segments, in order, by the given indices."""
        if len(indices) != self.wildcards:
            raise PathError(
                self.text, "[*]", f"has {self.wildcards} wildcard(s), got {len(indices)} index(es)"
            )
        it = iter(indices)
        segments = tuple(Index(next(it)) if isinstance(s, Wildcard) else s for s in self.segments)
        return Path(self.text, segments)

    def startswith(self, *keys: str) -> bool:
        """True when the path begins with the given plain keys (``path.startswith("status")``)."""
        head = self.segments[: len(keys)]
        return len(head) == len(keys) and all(
            isinstance(s, Key) and s.name == k for s, k in zip(head, keys, strict=True)
        )

    def relative_to(self, *keys: str) -> Path:
        """The path with the given leading keys removed (they must be there)."""
        if not self.startswith(*keys):
            prefix = "".join(f".{k}" for k in keys)
            first = str(self.segments[0]) if self.segments else ""
            raise PathError(self.text, first, f"must start with {prefix}")
        return Path(self.text, self.segments[len(keys) :])


@lru_cache(maxsize=1024)
def _parse(text: str) -> Path:
    body = text.strip()
    if body.startswith("{") != body.endswith("}"):
        raise PathError(text, body[:1] if body.startswith("{") else body[-1:], "unbalanced braces")
    if body.startswith("{"):
        body = body[1:-1].strip()
    if body.startswith("$"):
        body = body[1:]
    if not body:
        raise PathError(text, "", "empty path")
    segments: list[Segment] = []
    pos = 0
    while pos < len(body):
        rest = body[pos:]
        if rest.startswith("."):
            match = _PLAIN_KEY.match(body, pos + 1)
            if match is None:
                bad = rest[:2] if len(rest) > 1 else rest
                raise PathError(
                    text, bad, "expected a key ([A-Za-z0-9_-]+) after '.'; quote other keys as ['...']"
                )
            segments.append(Key(match.group()))
            pos = match.end()
        elif rest.startswith("[*]"):
            segments.append(Wildcard())
            pos += 3
        elif (m := _INDEX.match(rest)) is not None:
            segments.append(Index(int(m.group(1))))
            pos += m.end()
        elif (m := _QUOTED.match(rest)) is not None:
            segments.append(Key(m.group(1) if m.group(1) is not None else m.group(2)))
            pos += m.end()
        elif (m := _FILTER.match(rest)) is not None:
            segments.append(Filter(m.group(1), m.group(2) if m.group(2) is not None else m.group(3)))
            pos += m.end()
        else:
            end = rest.find("]") + 1 if rest.startswith("[") else 0
            bad = rest[:end] if end else rest.split(".", 2)[0] or rest[:1]
            if pos == 0 and not rest.startswith("["):
                raise PathError(text, bad, "a path starts with '.', as in .spec.replicas")
            raise PathError(text, bad, "expected .key, [index], [*], ['key'] or [?(@.field==\"value\")]")
    return Path(text, tuple(segments))


def parse_path(path: str | Path) -> Path:
    """Parse (and cache) a path; a :class:`Path` is returned unchanged."""
    if isinstance(path, Path):
        return path
    if not isinstance(path, str):
        raise PathError(repr(path), "", "a path must be a string")
    return _parse(path)


def _step(node: Any, segment: Segment) -> tuple[bool, Any]:
    """Take one step; returns (found, value)."""
    if isinstance(segment, Key):
        if isinstance(node, Mapping) and segment.name in node:
            return True, node[segment.name]
        return False, None
    if isinstance(segment, Index):
        if isinstance(node, list) and -len(node) <= segment.index < len(node):
            return True, node[segment.index]
        return False, None
    if isinstance(segment, Filter):
        if isinstance(node, list):
            for item in node:
                if isinstance(item, Mapping) and _as_text(item.get(segment.field)) == segment.value:
                    return True, item
        return False, None
    return False, None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def get_path(obj: Any, path: str | Path, default: Any = None) -> Any:
    """Read the value at ``path``; ``default`` when any step is absent. ``[*]`` is refused here."""
    parsed = parse_path(path)
    node = obj
    for segment in parsed.segments:
        if isinstance(segment, Wildcard):
            raise PathError(parsed.text, "[*]", "a wildcard cannot be read directly; use expand_path")
        found, node = _step(node, segment)
        if not found:
            return default
    return node


def set_path(obj: MutableMapping[str, Any], path: str | Path, value: Any) -> None:
    """Write ``value`` at ``path`` in place, creating missing intermediate mappings.

    Only keys and indices may be used; an index must address an existing list element, and every
    intermediate value must be a mapping (or list, for an index).
    """
    parsed = parse_path(path)
    node: Any = obj
    last = len(parsed.segments) - 1
    for i, segment in enumerate(parsed.segments):
        if not isinstance(segment, Key | Index):
            raise PathError(parsed.text, str(segment), "only .key and [index] segments can be written")
        if isinstance(segment, Key):
            if not isinstance(node, MutableMapping):
                raise PathError(parsed.text, str(segment), f"cannot set a key on a {type(node).__name__}")
            if i == last:
                node[segment.name] = value
                return
            if node.get(segment.name) is None:
                node[segment.name] = {}
            node = node[segment.name]
        else:
            if not isinstance(node, list):
                raise PathError(parsed.text, str(segment), f"cannot index a {type(node).__name__}")
            if not -len(node) <= segment.index < len(node):
                raise PathError(parsed.text, str(segment), f"index out of range (list has {len(node)} items)")
            if i == last:
                node[segment.index] = value
                return
            node = node[segment.index]


def expand_path(obj: Any, path: str | Path) -> list[tuple[tuple[int, ...], Path]]:
    """Expand every ``[*]`` over the lists found in ``obj``.

    Returns ``(indices, concrete_path)`` pairs in document order. A path without wildcards expands
    to itself (``((), path)``) when it resolves, and to nothing when it does not.
    """
    parsed = parse_path(path)
    results: list[tuple[tuple[int, ...], Path]] = []

    def walk(node: Any, position: int, indices: tuple[int, ...]) -> None:
        if position == len(parsed.segments):
            results.append((indices, parsed.with_indices(indices)))
            return
        segment = parsed.segments[position]
        if isinstance(segment, Wildcard):
            if isinstance(node, list):
                for i, item in enumerate(node):
                    walk(item, position + 1, (*indices, i))
            return
        found, child = _step(node, segment)
        if found:
            walk(child, position + 1, indices)

    walk(obj, 0, ())
    return results
