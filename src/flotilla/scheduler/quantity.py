"""Kubernetes resource quantities, parsed exactly, and integer resource lists.

``parse_quantity`` understands the full Kubernetes quantity grammar
(``<sign><digits>[.<digits>][<suffix>]``, where the suffix is a binary SI suffix
``Ki Mi Gi Ti Pi Ei``, a decimal SI suffix ``n u m k M G T P E`` or a decimal
exponent ``e<int>``/``E<int>``) and returns an exact :class:`fractions.Fraction`.

``to_canonical`` turns a quantity into the integer unit the scheduler counts in:

* ``cpu`` -> millicores,
* ``memory``, ``ephemeral-storage``, ``storage`` and ``hugepages-*`` -> bytes,
* anything else (``pods``, ``nvidia.com/gpu``, ``flotilla.dev/gpu-milli`` ...) -> a count.

Values are rounded *up* (as Kubernetes does for requests), so ``0.5`` GPUs becomes
``1`` and ``1.5m`` CPU becomes ``2`` millicores.

A :data:`ResourceList` is a plain ``dict[str, int]`` in those canonical units; a
missing key means zero. :func:`add`, :func:`sub` and :func:`fits` do the arithmetic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction

__all__ = [
    "ResourceList",
    "add",
    "fits",
    "insufficient",
    "parse_json_resource_list",
    "parse_quantity",
    "parse_resource_list",
    "scale",
    "sub",
    "to_canonical",
]

ResourceList = dict[str, int]
"""Resource name -> amount in canonical integer units (see :func:`to_canonical`)."""

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)


def _power_of_ten(exponent: int) -> Fraction:
    return Fraction(10**exponent) if exponent >= 0 else Fraction(1, 10**-exponent)


def parse_quantity(value: str | int | float | Fraction) -> Fraction:
    """Parse a Kubernetes quantity (``"500m"``, ``"1.5Gi"``, ``"1e3"``, ``8``) into an exact Fraction.

    Raises ``ValueError`` for anything that is not a valid quantity (including NaN/inf floats).
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, Fraction | int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"invalid quantity {value!r}")
        # Go through repr so 0.1 means one tenth, not the nearest binary double.
        return Fraction(repr(value))
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise ValueError(f"invalid quantity {value!r}")
    number = Fraction(match.group("num"))
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * Fraction(1024 ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number * _power_of_ten(_DECIMAL[suffix])
    return number * _power_of_ten(int(suffix[1:]))


def to_canonical(resource_name: str, value: str | int | float | Fraction) -> int:
    """Convert a quantity to the canonical integer unit of ``resource_name`` (rounded up).

    Only ``cpu`` is rescaled (to millicores); byte resources are already in bytes and every
    other resource is a plain count.
    """
    amount = parse_quantity(value)
    if resource_name == "cpu":
        amount *= 1000
    return math.ceil(amount)


def parse_resource_list(raw: Mapping[str, str | int | float] | None) -> ResourceList:
    """Convert a Kubernetes ``{name: quantity}`` mapping into a canonical :data:`ResourceList`."""
    if not raw:
        return {}
    return {name: to_canonical(name, quantity) for name, quantity in raw.items()}


def parse_json_resource_list(raw: Mapping[str, str | int | float] | None) -> ResourceList:
    """Like :func:`parse_resource_list`, but integers are taken as canonical units already.

    This is the convention of Flotilla's snapshot/workload JSON files: ``{"cpu": 500}`` is 500
    millicores (what ``to_dict`` writes), while ``{"cpu": "500m"}`` is a Kubernetes quantity.
    """
    if not raw:
        return {}
    return {
        name: q if isinstance(q, int) and not isinstance(q, bool) else to_canonical(name, q)
        for name, q in raw.items()
    }


def add(a: Mapping[str, int], b: Mapping[str, int]) -> ResourceList:
    """Return ``a + b`` per resource."""
    out = dict(a)
    for name, amount in b.items():
        out[name] = out.get(name, 0) + amount
    return out


def sub(a: Mapping[str, int], b: Mapping[str, int]) -> ResourceList:
    """Return ``a - b`` per resource (may go negative; callers decide whether to clamp)."""
    out = dict(a)
    for name, amount in b.items():
        out[name] = out.get(name, 0) - amount
    return out


def scale(a: Mapping[str, int], factor: int) -> ResourceList:
    """Return ``a * factor`` per resource."""
    return {name: amount * factor for name, amount in a.items()}


def fits(request: Mapping[str, int], free: Mapping[str, int]) -> bool:
    """True when every positive amount in ``request`` is available in ``free``."""
    return all(amount <= 0 or free.get(name, 0) >= amount for name, amount in request.items())


def insufficient(request: Mapping[str, int], free: Mapping[str, int]) -> list[str]:
    """Names of the resources in ``request`` that ``free`` cannot cover, sorted."""
    return sorted(name for name, amount in request.items() if amount > 0 and free.get(name, 0) < amount)
