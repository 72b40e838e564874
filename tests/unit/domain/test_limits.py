from __future__ import annotations

import pytest

from interca.domain.limits import SUBSCRIPTIONS, check_create, check_enable, check_type
from interca.domain.models import CaType
from interca.errors import LimitExceeded, NotSubscribed


def test_cloud_hsm_limits() -> None:
    sub = SUBSCRIPTIONS["cloud_hsm"]
    check_create(sub, 7, 3, enabled=True)
    check_create(sub, 7, 4, enabled=False)
    with pytest.raises(LimitExceeded, match="Maximum 8 custom"):
        check_create(sub, 8, 0, enabled=False)
    with pytest.raises(LimitExceeded, match="Maximum 4 enabled"):
        check_enable(sub, 4)
    check_type(sub, CaType.CUSTOM_HSM)


def test_software_limits() -> None:
    sub = SUBSCRIPTIONS["software"]
    with pytest.raises(NotSubscribed):
        check_type(sub, CaType.CUSTOM_HSM)
    with pytest.raises(LimitExceeded, match="Maximum 1 enabled"):
        check_create(sub, 1, 1, enabled=True)
    with pytest.raises(LimitExceeded, match="Maximum 2 custom"):
        check_create(sub, 2, 0, enabled=False)
