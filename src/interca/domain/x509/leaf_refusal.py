"""`LeafRefused`: the one error the leaf minting code raises for a leaf it will not mint
(certificates.md §6.3), whether for the host name (`hostnames.py`), the CA path (`leaf.py`) or
the lack of a usable default CA (the issuing engine, `interca.issuance`).

The proxy passes such connections through rather than crash on them, so every refusal is this
class and never another error.
"""

from __future__ import annotations

from typing import Literal

RefusalId = Literal["invalid_host", "outside_name_constraints", "ca_not_valid", "no_default_ca"]


class LeafRefused(Exception):
    """The engine will not mint this leaf; the proxy passes the connection through uninspected.

    `id` is `invalid_host`, `outside_name_constraints`, `ca_not_valid` or `no_default_ca`
    (certificates.md §6.3);
    `message` starts with `[id]` and never echoes raw, unvalidated input.
    """

    def __init__(self, id: RefusalId, text: str) -> None:
        self.id: str = id
        self.message = f"[{id}] {text}"
        super().__init__(self.message)
