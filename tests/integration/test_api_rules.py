"""Lifecycle order, create/update rules, subscription limits, built-in guards, paging and
media types, over real HTTP (api.md §2, §4). Every refusal also proves nothing changed."""

from __future__ import annotations

import pytest
from tests.conftest import ZR, Api, R, make_settings
from tests.integration.helpers import CSR_FIELDS, STEPS, new_ca, snapshot, upload
from tests.pki import TestPKI, pem

from interca.app import create_app

# (method, path segment, expected reason per state; None = allowed). api.md §4.3.
FINALIZED = "the certificate is finalized"
ORDER = {
    ("POST", "keyPair"): {"GENERAL_DONE": None, "KEYGEN_DONE": "a key pair already exists and cannot be replaced",
                          "CSRGEN_DONE": "a key pair already exists and cannot be replaced", "CERT_READY": FINALIZED},
    ("POST", "generateCsr"): {"GENERAL_DONE": "keyPair must be done first", "CERT_READY": FINALIZED},
    ("GET", "downloadPublicKey"): {"GENERAL_DONE": "keyPair must be done first"},
    ("GET", "downloadCsr"): {"GENERAL_DONE": "keyPair must be done first", "KEYGEN_DONE": "generateCsr must be done first",
                             "PUBKEY_DONE": "generateCsr must be done first"},
    ("GET", "showCsr"): {"KEYGEN_DONE": "generateCsr must be done first"},
    ("POST", "uploadCert"): {"GENERAL_DONE": "keyPair must be done first", "PUBKEY_DONE": "generateCsr must be done first",
                             "CERT_READY": FINALIZED},
    ("GET", "showCert"): {"CSRGEN_DONE": "uploadCert must be done first"},
    ("GET", "downloadCertChain"): {"KEYGEN_DONE": "generateCsr must be done first"},
    ("POST", "uploadCertChain"): {"CSRGEN_DONE": "uploadCert must be done first", "CERT_READY": FINALIZED},
    ("PUT", "deleteCertChain"): {"INTCERT_UPLOAD_DONE": "uploadCertChain must be done first", "CERT_READY": FINALIZED},
    ("POST", "finalizeCert"): {"GENERAL_DONE": "keyPair must be done first", "CSRGEN_DONE": "uploadCert must be done first",
                               "CERT_READY": FINALIZED},
    ("PUT", "makeDefault"): {"GENERAL_DONE": "keyPair must be done first",
                             "INTCERT_UPLOAD_DONE": "finalizeCert must be done first"},
}  # fmt: skip
CASES = [
    (m, op, state, reason) for (m, op), states in ORDER.items() for state, reason in states.items() if reason
]


@pytest.mark.parametrize(("method", "op", "state", "reason"), CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_out_of_order_calls_are_refused_and_change_nothing(
    api: Api, pki: TestPKI, method: str, op: str, state: str, reason: str
) -> None:
    ca_id = new_ca(api, pki, state)
    before = snapshot(api, ca_id)
    if op in ("uploadCert", "uploadCertChain"):
        resp = upload(api.admin, op, ca_id, pem(pki.root.cert))
    else:
        resp = api.admin.request(
            method, f"{R}/{op}/{ca_id}", json=CSR_FIELDS if op == "generateCsr" else None
        )
    assert resp.status_code == 400, resp.text
    assert resp.json() == {
        "code": "INVALID_INPUT_ARGUMENT",
        "message": f"Operation {op} is not allowed in state {state}: {reason}.",
    }
    assert snapshot(api, ca_id) == before


def test_update_after_finalize_allows_only_status(api: Api, pki: TestPKI) -> None:
    ca_id = new_ca(api, pki, "CERT_READY", description="old")
    refused = api.admin.put(f"{R}/{ca_id}", json={"description": "new"})
    assert refused.json()["message"] == f"Operation update is not allowed in state CERT_READY: {FINALIZED}."
    same = api.admin.put(f"{R}/{ca_id}", json={**api.admin.get(f"{R}/{ca_id}").json()})
    assert same.status_code == 200  # the full object sent back unchanged is no change
    disabled = api.admin.put(f"{R}/{ca_id}", json={"status": "DISABLED"})
    assert disabled.status_code == 200 and disabled.json()["status"] == "DISABLED"
    not_ready = api.admin.get(f"{R}/readyToUse").json()
    assert [c["id"] for c in not_ready] == [1]
    refused = api.admin.put(f"{R}/makeDefault/{ca_id}")
    assert refused.json()["message"] == "Only an enabled certificate can be made default."


CREATE_RULES = [
    ({"name": "x"}, "Certificate type is required."),
    ({"name": "x", "type": "ZSCALER"}, "Certificates of type ZSCALER cannot be created."),
    ({"name": "x", "type": "CUSTOM"}, "Invalid type: allowed values are CUSTOM_SW, CUSTOM_HSM."),
    ({"type": "CUSTOM_SW"}, "Certificate name is required."),
    ({"type": "CUSTOM_SW", "name": "   "}, "Certificate name is required."),
    ({"type": "CUSTOM_SW", "name": "x" * 129}, "Certificate name must be at most 128 characters."),
    ({"type": "CUSTOM_SW", "name": "a\x07b"}, "Certificate name must not contain control characters."),
    ({"type": "CUSTOM_SW", "name": "built-in INTERMEDIATE ca certificate"},
     "A certificate named 'built-in INTERMEDIATE ca certificate' already exists."),
    ({"type": "CUSTOM_SW", "name": "x", "region": "MARS"}, "Invalid region: allowed values are GLOBAL, ASIA, EUROPE, US."),
    ({"type": "CUSTOM_SW", "name": "x", "region": "EUROPE"}, "CUSTOM_SW certificates must use region GLOBAL."),
    ({"type": "CUSTOM_SW", "name": "x", "status": "ON"}, "Invalid status: allowed values are ENABLED, DISABLED."),
    ({"type": "CUSTOM_SW", "name": "x", "keyType": "RSA"},
     "Invalid keyType: allowed values are RSA_2K, RSA_3K, RSA_4K, EC_P256, EC_P384."),
    ({"type": "CUSTOM_SW", "name": "x", "description": "d" * 1025}, "description must be at most 1024 characters."),
    ({"type": "CUSTOM_SW", "name": "x", "defaultCertificate": True},
     "A certificate becomes default only through makeDefault, after finalizeCert."),
    ({"type": "CUSTOM_SW", "name": 5}, "Invalid value for name."),
    ({"type": "CUSTOM_SW", "name": "x", "status": True}, "Invalid value for status."),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), CREATE_RULES)
def test_create_names_the_first_failure(api: Api, body: dict, message: str) -> None:
    resp = api.admin.post(R, json=body)
    assert resp.status_code == 400
    assert resp.json() == {"code": "INVALID_INPUT_ARGUMENT", "message": message}
    assert [c["id"] for c in api.admin.get(R).json()] == [1]


def test_create_refuses_a_duplicate_name_ignoring_case(api: Api) -> None:
    api.create("Branch CA")
    resp = api.admin.post(R, json={"type": "CUSTOM_SW", "name": "  branch ca "})
    assert resp.json()["message"] == "A certificate named 'branch ca' already exists."


def test_update_rules(api: Api, pki: TestPKI) -> None:
    ca_id = api.create("One", description="first")["id"]
    api.create("Two")
    cases = [
        ({"type": "CUSTOM_HSM"}, "type cannot be changed after creation."),
        ({"region": "US"}, "region cannot be changed after creation."),
        ({"keyType": "EC_P384"}, "keyType cannot be changed after creation."),
        (
            {"id": ca_id + 100},
            f"The id {ca_id + 100} in the body does not match certificate {ca_id} in the path.",
        ),
        ({"name": "two"}, "A certificate named 'two' already exists."),
        (
            {"defaultCertificate": True},
            "defaultCertificate cannot be changed by update; use makeDefault after finalizeCert.",
        ),
    ]
    for body, message in cases:
        resp = api.admin.put(f"{R}/{ca_id}", json=body)
        assert (resp.status_code, resp.json()["message"]) == (400, message), body
    renamed = api.admin.put(f"{R}/{ca_id}", json={"name": " ONE renamed ", "description": ""})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "ONE renamed" and "description" not in renamed.json()
    assert api.admin.put(f"{R}/1", json={"status": "DISABLED"}).status_code == 403
    resp = api.admin.put(f"{R}/{ca_id}", json={"type": "CUSTOM_SW", "region": "GLOBAL", "keyType": "RSA_2K"})
    assert resp.status_code == 200  # current values are no change


def test_default_cannot_be_disabled(api: Api, pki: TestPKI) -> None:
    ca_id = new_ca(api, pki, "CERT_READY")
    assert api.admin.put(f"{R}/makeDefault/{ca_id}").status_code == 200
    resp = api.admin.put(f"{R}/{ca_id}", json={"status": "DISABLED"})
    assert resp.json()["message"] == "The default certificate cannot be disabled."


def test_cloud_hsm_subscription_limits(api: Api) -> None:
    for i in range(4):
        api.create(f"enabled {i}")
    resp = api.admin.post(R, json={"type": "CUSTOM_SW", "name": "fifth enabled"})
    assert resp.status_code == 403
    assert resp.json() == {
        "code": "LIMIT_EXCEEDED",
        "message": "Maximum 4 enabled custom intermediate CA certificates allowed.",
    }
    for i in range(4):
        api.create(f"disabled {i}", status="DISABLED")
    resp = api.admin.post(
        R, json={"type": "CUSTOM_HSM", "name": "ninth", "status": "DISABLED", "region": "US"}
    )
    assert resp.json() == {
        "code": "LIMIT_EXCEEDED",
        "message": "Maximum 8 custom intermediate CA certificates allowed.",
    }
    disabled_id = next(c["id"] for c in api.admin.get(R).json() if c["name"] == "disabled 0")
    enable = api.admin.put(f"{R}/{disabled_id}", json={"status": "ENABLED"})
    assert enable.status_code == 403 and enable.json()["code"] == "LIMIT_EXCEEDED"
    assert api.admin.get(f"{R}/{disabled_id}").json()["status"] == "DISABLED"
    assert len(api.admin.get(R).json()) == 9


def test_software_subscription_limits(api: Api, settings, http_server) -> None:  # noqa: ANN001
    _, holder = http_server
    holder.app = create_app(make_settings(settings.data_dir, subscription="software"), None)
    hsm = api.admin.post(R, json={"type": "CUSTOM_HSM", "name": "hsm", "region": "US"})
    assert hsm.status_code == 403
    assert hsm.json() == {
        "code": "NOT_SUBSCRIBED",
        "message": "Cloud HSM protection is not included in this subscription.",
    }
    api.create("one")
    second = api.admin.post(R, json={"type": "CUSTOM_SW", "name": "two"})
    assert second.json()["message"] == "Maximum 1 enabled custom intermediate CA certificates allowed."
    api.create("two", status="DISABLED")
    third = api.admin.post(R, json={"type": "CUSTOM_SW", "name": "three", "status": "DISABLED"})
    assert third.json()["message"] == "Maximum 2 custom intermediate CA certificates allowed."


BUILTIN_REFUSED = [
    ("PUT", ""), ("DELETE", ""), ("POST", "keyPair/"), ("POST", "generateCsr/"), ("GET", "downloadCsr/"),
    ("GET", "showCsr/"), ("GET", "showCert/"), ("POST", "uploadCert/"), ("POST", "uploadCertChain/"),
    ("PUT", "deleteCertChain/"), ("POST", "finalizeCert/"), ("POST", "verifyKeyAttestation/"),
    ("GET", "downloadAttestation/"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "step"), BUILTIN_REFUSED)
def test_builtin_guard(api: Api, pki: TestPKI, method: str, step: str) -> None:
    kwargs = {"files": {"fileUpload": ("c.pem", pem(pki.root.cert))}} if "upload" in step else {}
    before = api.admin.get(f"{R}/1").json()
    resp = api.admin.request(method, f"{ZR}/{step}1", **kwargs)
    assert resp.status_code == 403
    assert resp.json() == {
        "code": "INVALID_INPUT_ARGUMENT",
        "message": "This operation is not applicable for the built-in certificate",
    }
    assert api.admin.get(f"{R}/1").json() == before


def test_builtin_allowed_operations(api: Api) -> None:
    record = api.admin.get(f"{R}/1").json()
    assert list(record) == [
        "id", "name", "type", "region", "status", "defaultCertificate", "keyType", "fallbackCertId",
        "certStartDate", "certExpDate", "description", "currentState", "publicKey",
    ]  # fmt: skip
    assert record["type"] == "ZSCALER" and record["currentState"] == "CERT_READY"
    assert api.admin.get(f"{R}/lite/1").json() == {k: v for k, v in record.items() if k != "publicKey"}
    assert api.admin.get(f"{R}/downloadPublicKey/1").text == record["publicKey"]
    chain = api.admin.get(f"{R}/downloadCertChain/1")
    assert (
        chain.headers["content-disposition"]
        == 'attachment; filename="Built-in Intermediate CA Certificate-Chain.pem"'
    )
    assert chain.text.count("BEGIN CERTIFICATE") == 2
    assert api.admin.put(f"{R}/makeDefault/1").json()["defaultCertificate"] is True


def test_hsm_only_operations_on_software_certificates(api: Api, pki: TestPKI) -> None:
    ca_id = new_ca(api, pki, "KEYGEN_DONE")
    for method, step in (("POST", "verifyKeyAttestation"), ("GET", "downloadAttestation")):
        resp = api.admin.request(method, f"{R}/{step}/{ca_id}")
        assert resp.status_code == 400
        assert resp.json()["message"] == "This operation is applicable only to CUSTOM_HSM certificates."


@pytest.mark.parametrize("module", ["missing", ""], ids=["not-loadable", "none-configured"])
def test_hsm_key_pair_without_a_module_is_503_and_changes_nothing(
    api: Api, http_server, settings, tmp_path, module: str
) -> None:  # noqa: ANN001
    from interca.app import build_services

    module_path = str(tmp_path / "no-such-pkcs11.so") if module else ""
    services = build_services(make_settings(settings.data_dir, hsm_module=module_path))
    http_server[1].app = create_app(services.ctx.settings, services)
    ca_id = api.create("HSM CA", type="CUSTOM_HSM", region="EUROPE")["id"]
    before = snapshot(api, ca_id)
    resp = api.admin.post(f"{R}/keyPair/{ca_id}")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "10"
    assert resp.json()["code"] == "SERVICE_UNAVAILABLE"
    message = resp.json()["message"]
    assert message.startswith("[hsm_module_not_loadable] ") and "INTERCA_HSM_MODULE" in message
    assert str(tmp_path) not in message  # never the module path
    assert snapshot(api, ca_id) == before
    services.ctx.db.dispose()


def test_paging_and_search(api: Api) -> None:
    for i in range(5):
        api.create(f"Paged {i}", status="DISABLED" if i >= 3 else "ENABLED")
    page2 = api.admin.get(R, params={"page": 2, "pageSize": 2}).json()
    assert [c["name"] for c in page2] == ["Paged 1", "Paged 2"]
    assert api.admin.get(R, params={"page": 99}).json() == []
    assert api.admin.get(f"{R}/lite", params={"page": 4, "pageSize": 2}).json() == []
    found = api.admin.get(f"{R}/lite", params={"search": "PAGED 4"}).json()
    assert [c["name"] for c in found] == ["Paged 4"]
    assert len(api.admin.get(R, params={"search": ""}).json()) == 6
    for bad in ("0", "-1", "x", "1.5"):
        resp = api.admin.get(R, params={"page": bad})
        assert resp.json() == {
            "code": "INVALID_INPUT_ARGUMENT",
            "message": "page must be an integer of at least 1.",
        }
    for bad in ("0", "1001", "many"):
        resp = api.admin.get(f"{R}/readyToUse", params={"pageSize": bad})
        assert resp.json()["message"] == "pageSize must be an integer between 1 and 1000."
    assert api.admin.get(R, params={"unknown": "1"}).status_code == 200


def test_routing_errors(api: Api) -> None:
    assert api.admin.get(f"{R}/99999").json() == {
        "code": "RESOURCE_NOT_FOUND",
        "message": "Certificate 99999 not found.",
    }
    for bad in ("0", "2147483648", "abc", "-3", "1e3"):
        resp = api.admin.get(f"{R}/{bad}")
        assert (resp.status_code, resp.json()["message"]) == (400, "Invalid certificate id."), bad
    unknown = api.admin.get("/api/v1/nothingHere")
    assert unknown.status_code == 404 and unknown.json()["code"] == "RESOURCE_NOT_FOUND"
    wrong = api.admin.post(f"{R}/1")
    assert (wrong.status_code, wrong.headers["allow"], wrong.content) == (405, "GET, PUT, DELETE", b"")
    wrong = api.admin.get(f"{R}/keyPair/1")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert api.admin.get(f"{R}/").status_code == 200  # one trailing slash is ignored
    assert api.admin.get(f"{R}/lite/1/").status_code == 200


def test_media_types(api: Api, pki: TestPKI) -> None:
    ca_id = new_ca(api, pki, "CSRGEN_DONE")
    text = api.admin.post(
        R, content=b'{"name":"x","type":"CUSTOM_SW"}', headers={"Content-Type": "text/plain"}
    )
    assert (text.status_code, text.content, "content-type" in text.headers) == (415, b"", False)
    form = api.admin.post(f"{R}/uploadCert/{ca_id}", json={})
    assert (form.status_code, form.content) == (415, b"")
    assert api.admin.post(f"{R}/uploadCertChain/{ca_id}", json={}).status_code == 415
    bad_json = api.admin.post(R, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.json() == {"code": "INVALID_INPUT_ARGUMENT", "message": "Request body is invalid."}
    array = api.admin.post(R, content=b"[]", headers={"Content-Type": "application/json; charset=utf-8"})
    assert array.json()["message"] == "Request body is invalid."
    empty = api.admin.post(R, content=b"", headers={"Content-Type": "application/json"})
    assert empty.json()["message"] == "Certificate type is required."  # an empty body counts as {}
    missing = api.admin.post(
        f"{R}/uploadCert/{ca_id}", files={"other": ("c.pem", b"x")}, data={"note": "no file part"}
    )
    assert missing.json() == {"code": "INVALID_INPUT_ARGUMENT", "message": "No file selected."}
    # Body-less POSTs ignore whatever body and type they are sent (the OneAPI SDK sends {}).
    keyed = api.create("Bodyless")["id"]
    assert (
        api.admin.post(
            f"{R}/keyPair/{keyed}", content=b"junk", headers={"Content-Type": "text/xml"}
        ).status_code
        == 200
    )


def test_upload_refusals_change_nothing(api: Api, pki: TestPKI) -> None:
    ca_id = new_ca(api, pki, "CERTCHAIN_UPLOAD_DONE")
    before = snapshot(api, ca_id)
    other = pki.sign_ca(pki.root.key.public_key(), subject="Other")
    resp = upload(api.admin, "uploadCert", ca_id, pem(other))
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("[public_key_mismatch] ")
    assert upload(api.admin, "uploadCert", ca_id, b"").json()["message"].startswith("[empty_upload] ")
    leaf = pki.sign_ca(pki.root.key.public_key(), basic_constraints=False)
    chain = upload(api.admin, "uploadCertChain", ca_id, pem(leaf, pki.root.cert))
    assert chain.json()["message"].startswith("[non_ca_in_chain] ")
    big = upload(api.admin, "uploadCert", ca_id, b"A" * (3 * 1024 * 1024))
    assert big.json()["message"].startswith(
        "[payload_too_large] File size cannot exceed 64K; this file has more than"
    )
    assert snapshot(api, ca_id) == before


def test_not_a_ca_is_refused(api: Api, pki: TestPKI) -> None:
    from cryptography import x509

    ca_id = new_ca(api, pki, "CSRGEN_DONE")
    csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
    resp = upload(api.admin, "uploadCert", ca_id, pem(pki.sign_ca(csr, basic_constraints=False)))
    assert resp.status_code == 400 and resp.json()["message"].startswith("[not_a_ca] ")


def test_regenerating_the_csr_drops_the_upload(api: Api, pki: TestPKI) -> None:
    ca_id = new_ca(api, pki, "CERTCHAIN_UPLOAD_DONE")
    assert (
        api.admin.post(f"{R}/generateCsr/{ca_id}", json={**CSR_FIELDS, "csrFileName": "again"}).status_code
        == 200
    )
    record = api.admin.get(f"{R}/{ca_id}").json()
    assert record["currentState"] == "CSRGEN_DONE" and record["csrFileName"] == "again"
    for gone in ("certStartDate", "certExpDate", "uploadedCertFileName", "uploadedCertChainFileName"):
        assert gone not in record


def test_delete_destroys_the_key(api: Api, pki: TestPKI) -> None:
    ca_id = new_ca(api, pki, "KEYGEN_DONE")
    keys_dir = api.services.ctx.settings.keys_dir
    before = set(keys_dir.iterdir())
    assert api.admin.delete(f"{R}/{ca_id}").status_code == 204
    assert len(before - set(keys_dir.iterdir())) == 1
    again = api.create("Branch CA")  # the name is free again, the id is not reused
    assert again["id"] > ca_id


def test_states_listed_in_lifecycle_order() -> None:
    assert sorted(STEPS, key=lambda s: ["GENERAL_DONE", "KEYGEN_DONE", "PUBKEY_DONE", "ATTESTATION_DONE",
        "ATTESTATION_VERIFY_DONE", "CSRGEN_DONE", "INTCERT_UPLOAD_DONE", "CERTCHAIN_UPLOAD_DONE", "CERT_READY"].index(s)) == STEPS  # fmt: skip


def test_a_held_edit_lock_answers_409(api: Api, http_server, settings) -> None:  # noqa: ANN001
    import threading

    from interca.app import build_services

    ca_id = api.create("Locked")["id"]
    _, holder = http_server
    quick = build_services(make_settings(settings.data_dir, edit_lock_wait=0.2))
    holder.app = create_app(quick.ctx.settings, quick)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with quick.ctx.locks.hold(f"cert:{ca_id}", wait=1):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    try:
        resp = api.admin.post(f"{R}/keyPair/{ca_id}")
        assert resp.status_code == 409
        assert resp.json() == {
            "code": "EDIT_LOCK_NOT_AVAILABLE",
            "message": "Another change to this certificate is in progress; retry in a few seconds.",
        }
        assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == "GENERAL_DONE"
        assert api.admin.post(R, json={"name": "Other", "type": "CUSTOM_SW"}).status_code == 200
    finally:
        release.set()
        t.join()
    assert api.admin.post(f"{R}/keyPair/{ca_id}").status_code == 200
    quick.ctx.db.dispose()


def test_non_ascii_names_download_with_rfc6266_filenames(api: Api) -> None:
    ca_id = api.create('Zürich "CA"')["id"]
    api.admin.post(f"{R}/keyPair/{ca_id}")
    resp = api.admin.get(f"{R}/downloadPublicKey/{ca_id}")
    assert resp.headers["content-disposition"] == (
        "attachment; filename=\"Z_rich _CA_-PublicKey.pem\"; filename*=UTF-8''Z%C3%BCrich%20%22CA%22-PublicKey.pem"
    )
