"""Private-key JWT client authentication over real HTTP (api.md §5.4 method 3, RFC 7523): a
client registered with an RSA public key signs an assertion and gets a token; every way an
assertion can be wrong is refused with the RFC 6749 error and status, and audited."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tests.conftest import Api, R

from interca.domain.principal import Role
from interca.errors import InvalidInput
from interca.storage.assertions import UsedAssertionRepository
from interca.storage.audit import AuditQuery

TOKEN = "/oauth2/v1/token"
AUD = "https://api.zscaler.com"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def public_pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def signer(api: Api, client_key: rsa.RSAPrivateKey) -> str:
    """The client_id of an admin client registered with `client_key`'s public key."""
    client_id, secret = api.services.auth.add_client("signer", Role.ADMIN, public_pem(client_key))
    assert secret is None  # a key client has no secret
    return client_id


def claims(client_id: str, **changes: Any) -> dict[str, Any]:
    """Valid claims for `client_id`. A change to None drops the claim; a `Later(seconds)` is a
    time relative to now, resolved when the assertion is made."""
    now = int(time.time())
    base = {
        "iss": client_id,
        "sub": client_id,
        "aud": AUD,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update({k: now + v.seconds if isinstance(v, Later) else v for k, v in changes.items()})
    return {k: v for k, v in base.items() if v is not None}


class Later:
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds


def sign(key: Any, payload: dict[str, Any], algorithm: str = "RS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWS PyJWT would not make: HS256 keyed with the public key PEM (the classic algorithm
    confusion), or alg none with an empty signature."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{b64url(signature)}"


def request_token(api: Api, client_id: str | None, assertion: str | None, **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, **extra}
    if client_id is not None:
        form["client_id"] = client_id
    if assertion is not None:
        form["client_assertion"] = assertion
    return api.anon.post(TOKEN, data=form)


def last_audit(api: Api, action: str) -> Any:
    entries = api.services.audit.query(AuditQuery(action=action), 1, 10_000)
    assert entries, f"no {action} entry"
    return entries[-1]


def assert_refused(api: Api, resp: httpx.Response, status: int, error: str, reason: str | None) -> None:
    assert (resp.status_code, resp.json()["error"]) == (status, error), resp.text
    assert list(resp.json()) == ["error", "error_description"]
    assert resp.headers["cache-control"] == "no-store"
    entry = last_audit(api, "token_failed")
    assert entry.outcome == "FAILURE"
    assert entry.detail == (f"{error} [{reason}]" if reason else error)


# success --------------------------------------------------------------------------------------


def test_signed_assertion_gets_a_token_that_works(api: Api, signer: str, client_key: Any) -> None:
    resp = request_token(api, signer, sign(client_key, claims(signer)), audience=AUD, scope="ignored")
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert list(body) == ["access_token", "token_type", "expires_in"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    entry = last_audit(api, "token_issued")
    assert (entry.actor, entry.actor_type, entry.outcome) == (signer, "CLIENT", "SUCCESS")
    with httpx.Client(base_url=api.base, headers={"Authorization": f"Bearer {body['access_token']}"}) as c:
        assert c.get("/zia/api/v1/authenticatedSession").json() == {"authType": "OAUTH2_CLIENT"}
        assert c.get(R).status_code == 200
        created = c.post(R, json={"name": "Signed in", "type": "CUSTOM_SW"})  # the client's admin role
        assert created.status_code == 200, created.text


@pytest.mark.parametrize(
    "changes",
    [
        {"jti": None},  # jti is optional
        {"iat": None, "nbf": Later(-10)},
        {"nbf": Later(60), "iat": Later(60)},  # a client clock a minute fast is within the 5 min leeway
        {"exp": Later(3600)},  # the longest lifetime allowed
        {"aud": [AUD, "https://other.example"]},  # RFC 7519 §4.1.3: aud may be a list naming us
    ],
    ids=["no-jti", "nbf-past", "clock-ahead-in-leeway", "exp-1h", "aud-list"],
)
def test_accepted_variants(api: Api, signer: str, client_key: Any, changes: dict[str, Any]) -> None:
    resp = request_token(api, signer, sign(client_key, claims(signer, **changes)))
    assert resp.status_code == 200, resp.text


# refusals -------------------------------------------------------------------------------------


def _signed(**changes: Any) -> Any:
    return lambda client_id, key, other: sign(key, claims(client_id, **changes))


REFUSALS: dict[str, tuple[Any, str]] = {
    "wrong-key": (lambda cid, key, other: sign(other, claims(cid)), "assertion_signature"),
    "alg-HS256-with-public-key": (
        lambda cid, key, other: handmade(
            {"alg": "HS256", "typ": "JWT"}, claims(cid), public_pem(key).encode()
        ),
        "assertion_algorithm",
    ),
    "alg-none": (
        lambda cid, key, other: handmade({"alg": "none", "typ": "JWT"}, claims(cid), None),
        "assertion_algorithm",
    ),
    "alg-RS512": (lambda cid, key, other: sign(key, claims(cid), "RS512"), "assertion_algorithm"),
    "wrong-aud": (_signed(aud="https://login.example.com"), "assertion_audience"),
    "no-aud": (_signed(aud=None), "assertion_claims"),
    "wrong-iss": (_signed(iss="interca-0000000000000000"), "assertion_issuer"),
    "wrong-sub": (_signed(sub="someone-else"), "assertion_subject"),
    "no-sub": (_signed(sub=None), "assertion_claims"),
    "no-exp": (_signed(exp=None), "assertion_claims"),
    "expired": (_signed(exp=Later(-5)), "assertion_expired"),
    "exp-2h-ahead": (_signed(exp=Later(7200)), "assertion_lifetime"),
    "nbf-10min-ahead": (_signed(nbf=Later(600)), "assertion_not_yet_valid"),
    "iat-10min-ahead": (_signed(iat=Later(600)), "assertion_not_yet_valid"),
    "exp-not-a-number": (_signed(exp="soon"), "assertion_malformed"),
    "malformed": (lambda cid, key, other: "not-a-jwt", "assertion_malformed"),
    "three-garbage-parts": (lambda cid, key, other: "a.b.c", "assertion_malformed"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_assertions_are_refused(
    api: Api, signer: str, client_key: Any, other_key: Any, case: str
) -> None:
    make, reason = REFUSALS[case]
    resp = request_token(api, signer, make(signer, client_key, other_key))
    assert_refused(api, resp, 401, "invalid_client", reason)
    assert last_audit(api, "token_failed").actor == signer


def test_a_jti_is_single_use(api: Api, signer: str, client_key: Any) -> None:
    assertion = sign(client_key, claims(signer, jti="only-once"))
    assert request_token(api, signer, assertion).status_code == 200
    assert_refused(api, request_token(api, signer, assertion), 401, "invalid_client", "assertion_replayed")
    fresh = sign(client_key, claims(signer, jti="another-one"))
    assert request_token(api, signer, fresh).status_code == 200


def test_used_jti_is_forgotten_after_its_exp(api: Api) -> None:
    now = dt.datetime.now(dt.UTC)
    exp = now + dt.timedelta(minutes=5)
    with api.services.ctx.db.write() as s:
        repo = UsedAssertionRepository(s)
        assert repo.use("client:jti", exp, now)
        assert not repo.use("client:jti", exp, now + dt.timedelta(minutes=4))
        assert repo.use("client:jti", exp + dt.timedelta(minutes=5), exp)  # pruned at its exp


def test_the_method_must_match_the_registration(api: Api, signer: str, client_key: Any) -> None:
    # An assertion for a client registered with a secret, even one signed correctly.
    resp = request_token(api, api.client_id, sign(client_key, claims(api.client_id)))
    assert_refused(api, resp, 401, "invalid_client", "method_mismatch")
    # A secret for a client registered with a key: as the form and as HTTP Basic.
    form = {"grant_type": "client_credentials", "client_id": signer, "client_secret": "anything"}
    assert_refused(api, api.anon.post(TOKEN, data=form), 401, "invalid_client", "method_mismatch")
    basic = base64.b64encode(f"{signer}:anything".encode()).decode()
    resp = api.anon.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert_refused(api, resp, 401, "invalid_client", "method_mismatch")
    # An unknown client looks the same.
    resp = request_token(
        api, "interca-ffffffffffffffff", sign(client_key, claims("interca-ffffffffffffffff"))
    )
    assert_refused(api, resp, 401, "invalid_client", "unknown_client")
    assert resp.json()["error_description"] == "Client authentication failed."


def test_several_methods_or_half_a_method(api: Api, signer: str, client_key: Any) -> None:
    assertion = sign(client_key, claims(signer))
    both = request_token(api, signer, assertion, client_secret="x")
    assert_refused(api, both, 400, "invalid_request", None)
    basic = base64.b64encode(f"{signer}:x".encode()).decode()
    with_basic = api.anon.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert_refused(api, with_basic, 400, "invalid_request", None)
    no_type = api.anon.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": signer, "client_assertion": assertion}
    )
    assert_refused(api, no_type, 400, "invalid_request", None)
    wrong_type = request_token(api, signer, assertion, client_assertion_type="urn:example:saml")
    assert_refused(api, wrong_type, 400, "invalid_request", None)
    no_assertion = request_token(api, signer, None)
    assert_refused(api, no_assertion, 400, "invalid_request", None)
    no_client_id = request_token(api, None, assertion)
    assert_refused(api, no_client_id, 400, "invalid_request", None)
    # None of these used the assertion up.
    assert request_token(api, signer, assertion).status_code == 200


# registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: public_pem(ec.generate_private_key(ec.SECP256R1())), "must be an RSA key"),
        (lambda: public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "1024 bits"),
        (
            lambda: (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                .decode()
            ),
            "private key",
        ),
        (lambda: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
    ],
    ids=["ec", "rsa-1024", "private-key", "garbage"],
)
def test_registration_refuses_weak_or_wrong_keys(api: Api, make: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        api.services.auth.add_client("weak", Role.ADMIN, make())


def test_cli_registers_a_key_client(api: Api, client_key: Any, tmp_path: Path) -> None:
    """`interca clients add --public-key` on the same data directory: no secret, JSON output,
    and refusals with exit 1 and a message."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCA_", "ZIA_", "ZSCALER_"))}
    env["INTERCA_DATA_DIR"] = str(api.services.ctx.settings.data_dir)
    good = tmp_path / "client.pub.pem"
    good.write_text(public_pem(client_key))
    weak = tmp_path / "weak.pub.pem"
    weak.write_text(public_pem(ec.generate_private_key(ec.SECP256R1())))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "interca", "clients", "add", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    made = cli("robot", "--role", "auditor", "--public-key", str(good), "--json")
    assert made.returncode == 0, made.stderr
    client_id = json.loads(made.stdout)["clientId"]
    assert list(json.loads(made.stdout)) == ["clientId"]  # no secret is made or printed
    resp = request_token(api, client_id, sign(client_key, claims(client_id)))
    assert resp.status_code == 200, resp.text
    with httpx.Client(
        base_url=api.base, headers={"Authorization": f"Bearer {resp.json()['access_token']}"}
    ) as c:
        assert c.post(R, json={"name": "x", "type": "CUSTOM_SW"}).status_code == 403  # an auditor

    for args, message in (
        ((str(weak),), "must be an RSA key"),
        ((str(tmp_path / "missing.pem"),), "Cannot read --public-key"),
    ):
        refused = cli("robot2", "--public-key", *args)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert message in " ".join(refused.stderr.split())
        assert "Traceback" not in refused.stderr
