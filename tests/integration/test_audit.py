"""The audit log (api.md §3.6, issue: "a record of everything"): exactly one entry per mutation
with the right actor and outcome, logins and credential changes too, filters, and a hash chain
that `interca audit verify` checks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.conftest import Api, R
from tests.integration.helpers import CSR_FIELDS, upload
from tests.pki import TestPKI, new_key, pem

from interca.auth.apikey import obfuscate
from interca.domain.principal import Role

ENTRY_KEYS = ["id", "time", "actor", "actorType", "sourceAddress", "action", "certId", "outcome", "detail"]


def entries(api: Api, **params: object) -> list[dict]:
    resp = api.admin.get("/api/v1/auditLog", params={"pageSize": 1000, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_every_mutation_gets_exactly_one_entry(api: Api, pki: TestPKI) -> None:
    start = len(entries(api))
    ca_id = api.create("Audited CA", keyType="EC_P256")["id"]
    steps: list[tuple[str, str]] = [("create", "SUCCESS")]

    def call(action: str, outcome: str, resp) -> None:  # noqa: ANN001
        assert (resp.status_code < 400) == (outcome == "SUCCESS"), resp.text
        steps.append((action, outcome))

    call(
        "generate_csr", "FAILURE", api.admin.post(f"{R}/generateCsr/{ca_id}", json=CSR_FIELDS)
    )  # out of order
    call("generate_key_pair", "SUCCESS", api.admin.post(f"{R}/keyPair/{ca_id}"))
    call("download_public_key", "SUCCESS", api.admin.get(f"{R}/downloadPublicKey/{ca_id}"))  # moves the state
    assert api.admin.get(f"{R}/downloadPublicKey/{ca_id}").status_code == 200  # no longer moves it: no entry
    call("generate_csr", "SUCCESS", api.admin.post(f"{R}/generateCsr/{ca_id}", json=CSR_FIELDS))
    csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
    wrong = pki.sign_ca(new_key().public_key(), subject=csr.subject)
    call("upload_cert", "FAILURE", upload(api.admin, "uploadCert", ca_id, pem(wrong)))
    good = pki.sign_ca(csr)
    call(
        "validate",
        "SUCCESS",
        api.admin.post(f"{R}/validateCert/{ca_id}", files={"fileUpload": ("c.pem", pem(good))}),
    )
    call("upload_cert", "SUCCESS", upload(api.admin, "uploadCert", ca_id, pem(good)))
    call("upload_chain", "SUCCESS", upload(api.admin, "uploadCertChain", ca_id, pem(pki.root.cert)))
    call("delete_chain", "SUCCESS", api.admin.put(f"{R}/deleteCertChain/{ca_id}"))
    call("upload_chain", "SUCCESS", upload(api.admin, "uploadCertChain", ca_id, pem(pki.root.cert)))
    call("finalize", "SUCCESS", api.admin.post(f"{R}/finalizeCert/{ca_id}"))
    call("update", "FAILURE", api.admin.put(f"{R}/{ca_id}", json={"name": "renamed"}))
    call("make_default", "SUCCESS", api.admin.put(f"{R}/makeDefault/{ca_id}"))
    call("delete", "FAILURE", api.admin.delete(f"{R}/{ca_id}"))  # it is the default
    call("make_default", "SUCCESS", api.admin.put(f"{R}/makeDefault/1"))
    call("update", "SUCCESS", api.admin.put(f"{R}/{ca_id}", json={"status": "DISABLED"}))
    call("delete", "SUCCESS", api.admin.delete(f"{R}/{ca_id}"))
    call("delete", "FAILURE", api.admin.delete(f"{R}/{ca_id}"))  # now unknown: 404, still recorded
    call("make_default", "FAILURE", api.auditor.put(f"{R}/makeDefault/1"))  # role refused
    # Reads are not recorded.
    for path in (R, f"{R}/lite", f"{R}/1", f"{R}/readyToUse", "/api/v1/auditLog"):
        assert api.admin.get(path).status_code == 200

    log = entries(api)[start:]
    assert [(e["action"], e["outcome"]) for e in log] == steps
    for e in log:
        assert list(e) == [k for k in ENTRY_KEYS if k in e]
        assert e["sourceAddress"] == "127.0.0.1" and e["actorType"] == "CLIENT"
    assert [e["certId"] for e in log] == [ca_id] * 15 + [1, ca_id, ca_id, ca_id, 1]
    assert {e["actor"] for e in log[:-1]} == {api.client_id}  # the last one is the auditor's
    by_action = {(e["action"], e["outcome"]): e["detail"] for e in log}
    assert by_action[("upload_cert", "FAILURE")] == "[public_key_mismatch]"
    assert by_action[("generate_csr", "FAILURE")] == "INVALID_INPUT_ARGUMENT"
    assert by_action[("make_default", "FAILURE")] == "NOT_AUTHORIZED"
    fp = "sha256:" + __import__("hashlib").sha256(good.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert by_action[("upload_cert", "SUCCESS")].startswith(fp)
    assert by_action[("make_default", "SUCCESS")] == f"default {ca_id} -> 1"


def test_a_private_key_upload_is_audited_without_the_key(api: Api, pki: TestPKI) -> None:
    ca_id = api.create("Key CA", keyType="EC_P256")["id"]
    api.admin.post(f"{R}/keyPair/{ca_id}")
    api.admin.post(f"{R}/generateCsr/{ca_id}", json=CSR_FIELDS)
    key = new_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert upload(api.admin, "uploadCert", ca_id, key).status_code == 400
    (entry,) = entries(api, action="upload_cert", certId=ca_id)
    assert (entry["outcome"], entry["detail"]) == ("FAILURE", "[private_key_in_upload]")


def test_logins_tokens_and_credential_changes_are_audited(api: Api) -> None:
    password = api.services.auth.add_user("audit@example.com", Role.ADMIN, "a long enough password")
    key = api.services.auth.api_key()
    ts = str(int(time.time() * 1000))
    body = {
        "apiKey": obfuscate(key, ts),
        "username": "audit@example.com",
        "password": "wrong one",
        "timestamp": ts,
    }
    assert api.anon.post("/api/v1/authenticatedSession", json=body).status_code == 400
    body["password"] = password
    login = api.anon.post("/api/v1/authenticatedSession", json=body)
    cookie = login.headers["set-cookie"].split(";")[0].split("=")[1]
    with httpx.Client(base_url=api.base, cookies={"JSESSIONID": cookie}) as legacy:
        assert legacy.delete("/api/v1/authenticatedSession").status_code == 200
    assert api.anon.post("/oauth2/v1/token", data={"grant_type": "client_credentials", "client_id": "nobody",
                                                   "client_secret": "x"}).status_code == 401  # fmt: skip
    log = entries(api, actor="audit@example.com")
    assert [(e["action"], e["outcome"], e["actorType"]) for e in log] == [
        ("login_failed", "FAILURE", "USER"), ("login", "SUCCESS", "USER"), ("logout", "SUCCESS", "USER"),
    ]  # fmt: skip
    assert log[0]["detail"] == "wrong password"
    (failed,) = entries(api, action="token_failed", actor="nobody")
    assert failed["detail"].startswith("invalid_client") and failed["actorType"] == "CLIENT"
    (added,) = entries(api, action="user_add")[-1:]
    assert added["actorType"] == "SYSTEM" and added["detail"] == "audit@example.com admin"
    api.services.auth.rotate_api_key()
    assert entries(api, action="apikey_rotate")[-1]["actorType"] == "SYSTEM"
    # The first start is on record too.
    assert entries(api, action="create", certId=1)[0]["detail"].startswith("first start")


def test_filters_and_paging(api: Api) -> None:
    a = api.create("Filter A")["id"]
    api.create("Filter B")
    all_entries = entries(api)
    assert [e["id"] for e in all_entries] == sorted(e["id"] for e in all_entries)
    assert [e["certId"] for e in entries(api, certId=a)] == [a]
    assert {e["action"] for e in entries(api, action="create")} == {"create"}
    first = all_entries[0]["time"]
    assert entries(api, startTime=first + 10**6) == []
    assert len(entries(api, endTime=first + 10**6)) == len(all_entries)
    page2 = api.admin.get("/api/v1/auditLog", params={"page": 2, "pageSize": 1}).json()
    assert page2 == [all_entries[1]]
    assert api.admin.get("/api/v1/auditLog", params={"page": 99}).json() == []
    bad = api.admin.get("/api/v1/auditLog", params={"startTime": "yesterday"})
    assert bad.status_code == 400 and "startTime" in bad.json()["message"]
    assert api.auditor.get("/zia/api/v1/auditLog").status_code == 200  # any role reads it


def verify_cli(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"INTERCA_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", "HOME": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "interca", "audit", "verify"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_audit_verify_detects_edits_and_removals(api: Api) -> None:
    for name in ("One", "Two", "Three"):
        api.create(name)
    data_dir = api.services.ctx.settings.data_dir
    api.services.ctx.db.dispose()
    intact = verify_cli(data_dir)
    assert intact.returncode == 0 and "intact" in intact.stdout, intact.stdout + intact.stderr
    db = sqlite3.connect(data_dir / "interca.db")
    with db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = 2")
    edited = verify_cli(data_dir)
    assert edited.returncode == 1 and "entry 2 was changed" in edited.stderr, edited.stderr
    db.close()


def test_removing_entries_is_detected(api: Api) -> None:
    for name in ("One", "Two", "Three"):
        api.create(name)
    count, problem = api.services.audit.verify()
    assert problem is None and count >= 4
    db_path = api.services.ctx.settings.data_dir / "interca.db"
    api.services.ctx.db.dispose()
    with sqlite3.connect(db_path) as db:
        last = db.execute("SELECT max(id) FROM audit_log").fetchone()[0]
        db.execute("DELETE FROM audit_log WHERE id = ?", (last,))
    assert "removed" in (api.services.audit.verify()[1] or "")
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM audit_log WHERE id = 2")
    assert "entry 3 does not follow" in (api.services.audit.verify()[1] or "")
