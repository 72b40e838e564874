"""The names a leaf is minted for (certificates.md §6.3): host-name normalisation and validity
(`normalize_name`), and the RFC 5280 name-constraint check every name must pass against the CA
path (`check_name_constraints`).

Both refuse with `LeafRefused` (`invalid_host`, `outside_name_constraints`), never another error
for text, so the proxy can pass the connection through. `leaf.py` builds the leaf for these names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

import idna
from cryptography import x509

from interca.domain.x509.leaf_refusal import LeafRefused

HostName = str | ipaddress.IPv4Address | ipaddress.IPv6Address
"""A normalised name: lower-case A-label DNS name (maybe `*.` + name), or an IP address."""

# One DNS label after mapping (§6.3): 1-63 of a-z 0-9 - _, not starting or ending with '-'.
# '_' is allowed because real hosts use it (SRV-style and CDN names) and clients send it in SNI.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_IDNA_ERRORS = (idna.IDNAError, UnicodeError, ValueError)


def normalize_name(raw: str, *, wildcard_ok: bool = False) -> HostName:
    """The name a leaf is minted for (certificates.md §6.3).

    IP literals (IPv4 dotted quad, IPv6 without zone) become address objects. Otherwise: UTS-46
    mapping (which also lower-cases and maps ideographic full stops), one trailing dot removed,
    each non-ASCII label encoded as an A-label with the `idna` package (IDNA 2008), ASCII labels
    lower-cased as they are. Then at most 253 characters, labels of 1-63 characters from
    `a-z 0-9 - _`, none starting or ending with `-`, none empty. With `wildcard_ok` the left-most
    label may be exactly `*` when at least two labels follow (`*.example.com`).

    ASCII labels skip IDNA 2008's label rules on purpose: they refuse `_` and `--` in positions 3-4,
    both common in real hosts (`r3---sn-x.googlevideo.com`) a browser sends unchanged.

    Raises: `LeafRefused("invalid_host")` for anything else; never another exception for text.
    """
    text = raw
    if not text.isascii():
        try:
            text = idna.uts46_remap(text, std3_rules=False, transitional=False)
        except _IDNA_ERRORS:
            raise _invalid("it contains characters IDNA does not allow") from None
    if text.endswith("."):
        text = text[:-1]
    address = _ip_literal(text)
    if address is not None:
        return address
    labels = text.split(".")
    wildcard = wildcard_ok and labels[0] == "*"
    if wildcard:
        labels = labels[1:]
        if len(labels) < 2:
            raise _invalid("a wildcard needs at least two labels to its right")
    encoded = [_a_label(label) for label in labels]
    name = ".".join(["*", *encoded] if wildcard else encoded)
    if len(name) > 253:
        raise _invalid("it is longer than 253 characters")
    return name


def check_name_constraints(names: Iterable[HostName], path: Sequence[x509.Certificate]) -> None:
    """Refuse unless every name is inside the nameConstraints of every certificate of `path`.

    `path`: every CA certificate the leaf chains to, the root included (Chrome enforces
    constraints in user-added roots). RFC 5280 §4.2.1.10: dNSName `example.com` covers itself and
    its subdomains, `.example.com` subdomains only; iPAddress subtrees are address/mask of the
    same IP version; a name type without permitted subtrees of its type is unconstrained there.
    A wildcard must lie wholly inside the permitted subtrees and touch no excluded one.

    Raises: `LeafRefused("outside_name_constraints")`.
    """
    names = list(names)
    for cert in path:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            continue
        permitted = list(constraints.permitted_subtrees or ())
        excluded = list(constraints.excluded_subtrees or ())
        for name in names:
            kind = x509.DNSName if isinstance(name, str) else x509.IPAddress
            allowed = [s for s in permitted if isinstance(s, kind)]
            denied = [s for s in excluded if isinstance(s, kind)]
            inside = not allowed or any(_covers(s, name, whole=True) for s in allowed)
            if not inside or any(_covers(s, name, whole=False) for s in denied):
                raise LeafRefused(
                    "outside_name_constraints",
                    f'"{name}" is outside the name constraints of "{cert.subject.rfc4514_string()}".',
                )


def _invalid(reason: str) -> LeafRefused:
    return LeafRefused("invalid_host", f"The host name is not valid: {reason}.")


def _ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text.isascii() or not (":" in text or text.replace(".", "").isdigit()):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None  # a zone index names a local interface, not a host; refused as a DNS name
    return address


def _a_label(label: str) -> str:
    if label.isascii():
        encoded = label.lower()
    else:
        try:
            encoded = idna.encode(label, uts46=True).decode("ascii")
        except _IDNA_ERRORS:
            raise _invalid("a label is not a valid internationalised name") from None
    if not encoded:
        raise _invalid("it has an empty label")
    if len(encoded) > 63:
        raise _invalid("a label is longer than 63 characters")
    if "*" in encoded:
        raise _invalid("wildcards are minted only for explicit requests, never for a client's name")
    if not _LABEL.fullmatch(encoded):
        raise _invalid("a label holds other characters than a-z 0-9 - _, or starts or ends with '-'")
    return encoded


def _covers(subtree: x509.GeneralName, name: HostName, *, whole: bool) -> bool:
    """Whether `subtree` holds every host of `name` (`whole`) or at least one of them."""
    if isinstance(subtree, x509.IPAddress):
        network = subtree.value
        return (
            isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network)
            and not isinstance(name, str)
            and name.version == network.version
            and name in network
        )
    if not isinstance(name, str):
        return False
    constraint = str(subtree.value).lower()
    # Read literally, `*.rest` lies within a subtree exactly when every host it stands for does.
    if _dns_within(name, constraint):
        return True
    if whole or not name.startswith("*."):
        return False
    # One of its hosts is inside when the subtree is itself a single label below `rest`.
    head, _, parent = constraint.partition(".")
    return bool(head) and parent == name[2:]


def _dns_within(host: str, constraint: str) -> bool:
    if constraint.startswith("."):
        return host.endswith(constraint)
    return not constraint or host == constraint or host.endswith("." + constraint)
