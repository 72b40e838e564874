"""The real-TLS-client harness proved on leaves of the interca leaf profile (certificates.md §7).

Every required client (and Java where installed) runs against a `TlsTestServer` that mints, per
handshake, a leaf with the issuing engine's `LeafTemplate` under an intermediate of the test PKI:
the ✓ cases must pass everywhere, each negative control must fail everywhere *for its own reason*
(a control that fails because nothing listened proves nothing), and the probe must fail exactly in
strict Python. Each case also checks that the server presented what the case claims (no AKI, an
expired leaf, an empty subject...), so a case cannot pass by testing something else.

To rerun the matrix on the issuing engine or through `interca proxy`, give `TlsTestServer` another
`mint` callable and `check` a `proxy`; `ProfileMinter` is the only piece specific to this file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.pki import CA, TestPKI, new_key
from tests.tls_clients import check, present_clients
from tests.tls_server import Mint, Served, TlsTestServer, TunnelProxy, serve_for_name, serve_leaf_alone

from interca.domain.x509.leaf import LeafProfile, normalize_hosts, plan_leaf
from interca.issuance.template import LeafTemplate, leaf_key_parts

NOW = dt.datetime.now(dt.UTC)
CA_AGE = dt.timedelta(days=400)  # §7 expired: "CA valid since 400 days ago"
LONG_HOST = "a-host-name-well-over-sixty-four-characters-long-for-the-cn.example.test"
IDN_HOST = "bücher.example.test"
IDN_A_LABEL = "xn--bcher-kva.example.test"

# Each control's reason, in the words of every client (OpenSSL/Python/curl, Node, Chromium, Java).
UNTRUSTED = (
    r"unable to get local issuer certificate|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|unable to verify the first "
    r"certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE|ERR_CERT_AUTHORITY_INVALID|PKIX path (building|validation) failed"
)
NAME_MISMATCH = (
    r"hostname mismatch|Hostname mismatch|no alternative certificate subject name matches|"
    r"ERR_TLS_CERT_ALTNAME_INVALID|ERR_CERT_COMMON_NAME_INVALID|No subject alternative DNS name matching"
)
NOT_YET_VALID = (
    r"certificate is not yet valid|CERT_NOT_YET_VALID|ERR_CERT_DATE_INVALID|CertificateNotYetValidException|"
    r"validity check failed"
)
EXPIRED = r"certificate has expired|CERT_HAS_EXPIRED|ERR_CERT_DATE_INVALID|CertificateExpiredException"
NO_AKI = r"Missing Authority Key Identifier"

assert len(LONG_HOST) > 64

# Organisation -> key type of its root and intermediate: the P-256 and RSA-2048 CAs of the good
# case, and `unrelated`, the root the wrongroot clients trust instead.
ORG_KEY_TYPES = {"ec": "ec", "rsa": "rsa", "unrelated": "ec", "chain3": "ec"}


@dataclass(frozen=True)
class Org:
    """An organisation's PKI: root -> (policy CA ->) intermediate (the CA interca would hold)."""

    root: CA
    ca: CA
    root_pem: Path
    policy: CA | None = None


class ProfileMinter:
    """`mint(names)` for `TlsTestServer`: a leaf minted by the issuing engine's own code path (the
    per-CA `LeafTemplate`, whose output the property tests prove byte-equal to `build_leaf`) under
    `org.ca`, served with its intermediate; one P-256 leaf key made in memory, as the engine's
    pool would. `clock` shifts the minting time (the expired case); `aki=False` makes the probe
    leaf instead: the same profile without authorityKeyIdentifier, built here since the profile
    never leaves it out."""

    def __init__(
        self, org: Org, *, clock: dt.timedelta = dt.timedelta(0), aki: bool = True, leaf_key: str = "ec"
    ) -> None:
        self.org, self.clock, self.aki = org, clock, aki
        self.key = new_key(leaf_key)
        above = [org.policy.cert] if org.policy else []
        self.template = LeafTemplate(
            0,
            org.ca.cert,
            org.ca.key,
            path=[*above, org.root.cert],
            served_chain=above,
            effective_expiry=org.ca.cert.not_valid_after_utc,
            profile=LeafProfile(),
        )
        self.key_parts = leaf_key_parts(self.key.public_key())

    def __call__(self, names: Sequence[str]) -> tuple[tuple[bytes, ...], Any]:
        now = dt.datetime.now(dt.UTC) + self.clock
        ca = self.org.ca
        if self.aki:
            plan = plan_leaf(normalize_hosts(names), self.template.ca_path, now=now, profile=LeafProfile())
            return (self.template.mint(plan, *self.key_parts), *self.template.served), self.key
        leaf = _leaf_without_aki(names[0], self.key, ca, now)
        return (_der(leaf), _der(ca.cert)), self.key


def _leaf_without_aki(host: str, key: Any, ca: CA, now: dt.datetime) -> x509.Certificate:
    """The probe-noaki leaf (§7): CN + SAN, CA:FALSE, digitalSignature, serverAuth, SKI; no AKI."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _sans(leaf: x509.Certificate) -> x509.SubjectAlternativeName:
    return leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _has_san(name: x509.GeneralName) -> Callable[[Served], bool]:
    return lambda served: name in _sans(served.chain[0])


def _no_sni_ip_san(address: str) -> Callable[[Served], bool]:
    san = x509.IPAddress(ipaddress.ip_address(address))
    return lambda served: served.sni is None and san in _sans(served.chain[0])


def _long_name_profile(served: Served) -> bool:
    leaf = served.chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return len(leaf.subject) == 0 and san.critical and x509.DNSName(LONG_HOST) in san.value


def _without_aki(served: Served) -> bool:
    return not any(isinstance(e.value, x509.AuthorityKeyIdentifier) for e in served.chain[0].extensions)


@dataclass(frozen=True)
class Case:
    """One row of the §7 case table as this file runs it.

    `fail_for`: the clients that must fail ("*" = every client); `reason`: a regex each failing
    client's detail must match; `presented`: what the server must have served (asserted on the
    first chain) so the case really is what its name says."""

    id: str
    host: str = "good.example.test"
    org: str = "ec"
    bind: str = "127.0.0.1"
    serve: Callable[[Mint], Mint] = lambda mint: mint
    clock: dt.timedelta = dt.timedelta(0)
    aki: bool = True
    leaf_key: str = "ec"
    trust_unrelated_root: bool = False
    proxied: bool = False
    fail_for: str | frozenset[str] = frozenset()
    reason: str = ""
    presented: Callable[[Served], bool] = field(default=lambda served: len(served.chain) == 2)

    def must_fail(self, client: str) -> bool:
        return self.fail_for == "*" or client in self.fail_for


def _rsa_leaf(served: Served) -> bool:
    return isinstance(served.chain[0].public_key(), rsa.RSAPublicKey)


CASES = [
    Case("good-p256ca", org="ec"),
    Case("good-rsa2048ca", org="rsa"),
    Case("idn", host=IDN_HOST, presented=_has_san(x509.DNSName(IDN_A_LABEL))),
    Case("ip", host="127.0.0.1", presented=_no_sni_ip_san("127.0.0.1")),
    Case("ip6", host="::1", bind="::1", presented=_no_sni_ip_san("::1")),
    Case("longname", host=LONG_HOST, presented=_long_name_profile),
    Case("proxied", proxied=True),
    Case("rsaleaf", leaf_key="rsa", presented=_rsa_leaf),
    Case("chain3", org="chain3", presented=lambda served: len(served.chain) == 3),
    Case(
        "wrongname",
        host="a.example.test",
        serve=lambda mint: serve_for_name(mint, "b.example.test"),
        fail_for="*",
        reason=NAME_MISMATCH,
        presented=_has_san(x509.DNSName("b.example.test")),
    ),
    Case("wrongroot", trust_unrelated_root=True, fail_for="*", reason=UNTRUSTED),
    Case("wrongroot-proxied", trust_unrelated_root=True, proxied=True, fail_for="*", reason=UNTRUSTED),
    Case(
        "noint",
        serve=serve_leaf_alone,
        fail_for="*",
        reason=UNTRUSTED,
        presented=lambda served: len(served.chain) == 1,
    ),
    Case(
        "expired",
        clock=-dt.timedelta(days=100),
        fail_for="*",
        reason=EXPIRED,
        presented=lambda served: served.chain[0].not_valid_after_utc < NOW,
    ),
    Case(
        "notyet",
        clock=dt.timedelta(days=2),
        fail_for="*",
        reason=NOT_YET_VALID,
        presented=lambda served: served.chain[0].not_valid_before_utc > NOW,
    ),
    Case(
        "probe-noaki", aki=False, fail_for=frozenset({"python-strict"}), reason=NO_AKI, presented=_without_aki
    ),
]


def _org(name: str, key_type: str, directory: Path) -> Org:
    # The whole PKI starts CA_AGE ago so the expired case can mint in the past under it.
    pki = TestPKI(key_type, now=NOW - CA_AGE)
    root = pki.new_root(f"interca Test Root {name}", key_type)
    policy = None
    if name == "chain3":  # root -> policy CA -> intermediate
        policy_key = new_key(key_type)
        policy_cert = pki.sign_ca(
            policy_key.public_key(), subject=f"interca Test Policy CA {name}", path_length=1, issuer=root,
            not_before=NOW - CA_AGE, not_after=NOW + dt.timedelta(days=400),
        )  # fmt: skip
        policy = CA(policy_key, policy_cert)
    key = new_key(key_type)
    cert = pki.sign_ca(
        key.public_key(),
        subject=f"interca Test Intermediate {name}",
        path_length=0,
        issuer=policy or root,
        not_before=NOW - CA_AGE,
        not_after=NOW + dt.timedelta(days=365),
    )
    root_pem = directory / f"root-{name}.pem"
    root_pem.write_bytes(root.cert_pem)
    return Org(root, CA(key, cert), root_pem, policy)


@pytest.fixture(scope="module")
def orgs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Org]:
    """Every organisation of `ORG_KEY_TYPES`, made once per module (RSA keys are slow)."""
    directory = tmp_path_factory.mktemp("orgs")
    return {name: _org(name, key_type, directory) for name, key_type in ORG_KEY_TYPES.items()}


@pytest.mark.parametrize("client", present_clients())
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_client_verdict(case: Case, client: str, orgs: dict[str, Org], tmp_path: Path) -> None:
    org = orgs[case.org]
    trusted = orgs["unrelated"] if case.trust_unrelated_root else org
    mint = case.serve(ProfileMinter(org, clock=case.clock, aki=case.aki, leaf_key=case.leaf_key))
    with (
        TlsTestServer(mint, bind=case.bind) as server,
        TunnelProxy() if case.proxied else contextlib.nullcontext() as proxy,
    ):
        result = check(
            client,
            host=case.host,
            port=server.port,
            root=trusted.root_pem,
            workdir=tmp_path / client,
            proxy=("127.0.0.1", proxy.port) if proxy is not None else None,
        )
    assert server.failures == [], server.failures
    assert server.served, f"{client} never completed a ClientHello with the server: {result.detail}"
    assert case.presented(server.served[0]), f"the server did not present a {case.id} chain"
    if proxy is not None:
        expected = f"{case.host}:{server.port}"
        assert expected in proxy.tunnels, f"{client} did not tunnel through the proxy: {proxy.tunnels}"
    if case.must_fail(client):
        assert not result.ok, f"{client} accepted the {case.id} control: {result.detail}"
        assert re.search(case.reason, result.detail), (
            f"{client} failed {case.id} for another reason: {result.detail}"
        )
    else:
        assert result.ok, f"{client} rejected {case.id}: {result.detail}"
