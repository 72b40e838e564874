"""What the X.509 checks need to know besides the certificates: the time, the thresholds, and
which request the certificate answers. Built by the service from settings and the clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckPolicy:
    """`now` is the check time; thresholds are certificates.md §1 settings."""

    now: dt.datetime
    min_remaining_days: int = 30
    clock_skew_seconds: int = 300
