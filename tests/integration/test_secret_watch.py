"""The suite-wide secret watch itself can fail (a negative control), and the obvious leaks are
absent from what interca logs while it works."""

from __future__ import annotations

import logging

from tests.conftest import Api, R
from tests.secret_watch import SecretWatch


def test_the_watch_catches_a_leak() -> None:
    watch = SecretWatch()
    watch.remember("s3cr3t-value-123")
    log = logging.getLogger("interca.test-negative-control")
    log.addHandler(watch)
    log.propagate = False  # keep this deliberate leak out of the suite-wide watch
    try:
        log.warning("token is %s", "s3cr3t-value-123")
        log.warning("-----BEGIN PRIVATE KEY-----")
        log.info("nothing to see")
    finally:
        log.removeHandler(watch)
    assert [hits for _, hits in watch.leaked_lines()] == [["s3cr…"], ["PRIVATE KEY"]]


def test_generated_secrets_are_remembered(api: Api) -> None:
    from tests.secret_watch import WATCH

    _, secret = api.services.auth.add_client(
        "watched", __import__("interca.domain.principal").domain.principal.Role.ADMIN
    )
    assert secret in WATCH.secrets
    assert api.services.auth.api_key() in WATCH.secrets  # made at the template's first start
    assert WATCH.leaks(f"x {secret} y")


def test_failed_requests_log_no_secret(api: Api) -> None:
    """Error paths log (the 500 handler logs a traceback): a wrong secret, a refused upload of a
    private key, a bad token — none of it may reach a log line (checked again at session end)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from tests.secret_watch import WATCH

    before = len(WATCH.lines)
    api.anon.post("/oauth2/v1/token", data={"grant_type": "client_credentials", "client_id": api.client_id,
                                            "client_secret": api.client_secret + "x"})  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_id = api.create("Watched")["id"]
    api.admin.post(f"{R}/keyPair/{ca_id}")
    resp = api.admin.post(f"{R}/uploadCert/{ca_id}", files={"fileUpload": ("k.pem", key)})
    assert resp.status_code == 400
    assert len(WATCH.lines) > before  # the requests were logged ...
    assert WATCH.leaked_lines() == []  # ... and nothing secret in any line so far
