"""Subscription limits (api.md §4.4)."""

from __future__ import annotations

from dataclasses import dataclass

from interca.domain.models import CaType
from interca.errors import LimitExceeded, NotSubscribed


@dataclass(frozen=True)
class Subscription:
    name: str
    max_custom: int
    max_enabled: int
    types: frozenset[CaType]


SUBSCRIPTIONS = {
    "cloud_hsm": Subscription("cloud_hsm", 8, 4, frozenset({CaType.CUSTOM_SW, CaType.CUSTOM_HSM})),
    "software": Subscription("software", 2, 1, frozenset({CaType.CUSTOM_SW})),
}


def check_type(sub: Subscription, ca_type: CaType) -> None:
    if ca_type not in sub.types:
        raise NotSubscribed("Cloud HSM protection is not included in this subscription.")


def check_create(sub: Subscription, custom_count: int, enabled_count: int, enabled: bool) -> None:
    """Counts are of existing custom certificates (the built-in one does not count)."""
    if custom_count + 1 > sub.max_custom:
        raise LimitExceeded(f"Maximum {sub.max_custom} custom intermediate CA certificates allowed.")
    if enabled:
        check_enable(sub, enabled_count)


def check_enable(sub: Subscription, enabled_count: int) -> None:
    if enabled_count + 1 > sub.max_enabled:
        raise LimitExceeded(f"Maximum {sub.max_enabled} enabled custom intermediate CA certificates allowed.")
