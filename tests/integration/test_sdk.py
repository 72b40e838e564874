"""The official `zscaler-sdk-python` (1.11.x) driving a real `interca serve` process through both of
its clients, exactly as api.md §6 and §7 describe: the OneAPI `ZscalerClient` (bearer tokens) and the
`LegacyZIAClient` (JSESSIONID). Raw bodies and headers are compared field by field with api.md §3 and
§6 rule 11 and, where the same calls were recorded, with shared/data/zia-intermediate-ca-traffic.yaml.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from tests.conftest import free_port
from tests.integration.helpers import CSR_FIELDS, FULL_ORDER
from tests.integration.sdk_support import (
    BUILTIN_NAME,
    CSR_ORDER,
    GUARD_BODY,
    GUARD_MESSAGE,
    LEGACY_R,
    MISSING_CSR_FIELDS,
    RECORDED_BUILTIN_KEYS,
    RECORDED_CUSTOM_KEYS,
    RECORDED_READY_ITEM_KEYS,
    RECORDED_TYPE_REQUIRED,
    SHOW_CERT_ORDER,
    R,
    assert_download,
    assert_empty_415,
    assert_error_response,
    assert_json_headers,
    assert_json_response,
    assert_lite,
    assert_record,
    assert_sdk_error,
    assert_security_headers,
    cookie_client,
    epoch,
    execute,
    execute_sdk,
    iso,
    isolate_sdk,
    legacy_client,
    legacy_login,
    multipart,
    obfuscate_api_key,
    oneapi_client,
    recent,
)
from tests.live import LiveServer, live_server_fixture
from tests.pki import TestPKI, openssl_sign_csr, pem

BAD = "INVALID_INPUT_ARGUMENT"


def order(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its keys in §3.1 order (the expected wire bytes)."""
    return {k: record[k] for k in FULL_ORDER if k in record}


def st(op: str, state: str, reason: str) -> str:
    """api.md §4.3 lifecycle-order message."""
    return f"Operation {op} is not allowed in state {state}: {reason}."


def spki_pem(public_key: Any) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class Checker:
    """Reads a certificate back through the SDK and over the SDK's raw executor, and compares it."""

    def __init__(self, ica: Any, ex: Any) -> None:
        self.ica, self.ex, self.prefix = ica, ex, R

    def record(self, rec: dict[str, Any]) -> None:
        model, resp, err = self.ica.get_ca_certificate(rec["id"])
        assert err is None, repr(err)
        assert_record(resp.get_body(), rec)
        assert model.id == rec["id"] and model.current_state == rec["currentState"]
        raw = execute(self.ex, "GET", f"{self.prefix}/{rec['id']}")
        assert_json_response(raw, 200, order(rec))

    def error(self, method: str, path: str, status: int, code: str, message: str, body: Any = None,
              headers: dict[str, str] | None = None, raw_body: bool = False) -> None:  # fmt: skip
        """An error answer, seen raw (bytes and headers) through the OneAPI executor."""
        url = f"{self.prefix}/{path}" if path else self.prefix
        resp = execute(self.ex, method, url, body, headers, raw_body)
        assert_error_response(resp, status, code, message)


# ------------------------------------------------------------------------------------------------
# OneAPI client: the whole CUSTOM_SW lifecycle
# ------------------------------------------------------------------------------------------------


def test_oneapi_client_whole_lifecycle(
    live_server: LiveServer, pki: TestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_sdk(monkeypatch, tmp_path)
    srv = live_server
    with oneapi_client(monkeypatch, srv.base, srv.client_id, srv.client_secret) as z:
        ica = z.zia.intermediate_certificates
        ex = z.get_request_executor()
        check = Checker(ica, ex)

        # --- The built-in default (api.md §4.5), compared with the recorded list ---------------
        chain_resp = execute(ex, "GET", f"{R}/downloadCertChain/1")
        assert_download(chain_resp, f"{BUILTIN_NAME}-Chain.pem")
        builtin_inter, builtin_root = x509.load_pem_x509_certificates(chain_resp.content)
        builtin_inter.verify_directly_issued_by(builtin_root)
        builtin = {
            "id": 1, "name": BUILTIN_NAME, "type": "ZSCALER", "region": "GLOBAL", "status": "ENABLED",
            "defaultCertificate": True, "keyType": "RSA_2K", "fallbackCertId": 0,
            "certStartDate": epoch(builtin_inter.not_valid_before_utc),
            "certExpDate": epoch(builtin_inter.not_valid_after_utc),
            "description": BUILTIN_NAME, "currentState": "CERT_READY",
            "publicKey": spki_pem(builtin_inter.public_key()),
        }  # fmt: skip
        models, resp, err = ica.list_ca_certificates()
        assert err is None, repr(err)
        assert [m.name for m in models] == [BUILTIN_NAME] and models[0].default_certificate is True
        assert len(resp.get_body()) == 1
        assert list(resp.get_body()[0]) == RECORDED_BUILTIN_KEYS  # the recorded ZIA built-in, key by key
        assert_record(resp.get_body()[0], builtin)
        assert_json_headers(resp.get_headers())
        assert_json_response(execute(ex, "GET", R), 200, [builtin])
        check.record(builtin)
        _, resp, err = ica.get_ca_certificate_lite(1)
        assert err is None and list(resp.get_body()) == RECORDED_BUILTIN_KEYS[:12]
        assert_lite(resp.get_body(), builtin)
        # search (interca extension), case-insensitive, applied before paging
        _, resp, err = ica.list_ca_certificates(query_params={"search": "BUILT-IN"})
        assert err is None and [c["id"] for c in resp.get_body()] == [1]
        assert_json_response(execute(ex, "GET", R, params={"search": "no such name"}), 200, [])

        ready_raw = execute(ex, "GET", f"{R}/readyToUse")
        assert_json_response(ready_raw, 200, [{"id": 1, "name": BUILTIN_NAME, "defaultCertificate": True}])
        assert list(ready_raw.json()[0]) == RECORDED_READY_ITEM_KEYS

        # downloadPublicKey is allowed on the built-in (recorded: 200 octet-stream, "<name>-PublicKey.pem")
        text, resp, err = ica.download_public_key(1)
        assert err is None and text == builtin["publicKey"]
        assert_download(execute(ex, "GET", f"{R}/downloadPublicKey/1"), f"{BUILTIN_NAME}-PublicKey.pem",
                        builtin["publicKey"].encode())  # fmt: skip
        # makeDefault on the default: 200, no change
        assert_json_response(execute(ex, "PUT", f"{R}/makeDefault/1", {}), 200, builtin)

        # --- Built-in guards: the recorded 403 bodies, byte for byte (name aside) ---------------
        for method, path in [
            ("GET", "showCert/1"), ("GET", "showCsr/1"), ("GET", "downloadCsr/1"),
            ("POST", "verifyKeyAttestation/1"), ("POST", "finalizeCert/1"), ("POST", "keyPair/1"),
            ("POST", "generateCsr/1"), ("PUT", "deleteCertChain/1"), ("PUT", "1"), ("DELETE", "1"),
            ("GET", "downloadAttestation/1"),
        ]:  # fmt: skip
            resp = execute(ex, method, f"{R}/{path}")
            assert resp.status_code == 403 and resp.content == GUARD_BODY, (method, path, resp.content)
            assert_json_headers(resp.headers)
        for step in ("uploadCert", "uploadCertChain"):
            data, ctype = multipart(pki.root.cert_pem)
            check.error("POST", f"{step}/1", 403, BAD, GUARD_MESSAGE, data, {"Content-Type": ctype}, True)
        for call in (ica.get_show_cert, ica.get_show_csr, ica.download_csr, ica.finalize_cert,
                     ica.generate_key_pair, ica.verify_key_attestation, ica.generate_csr):  # fmt: skip
            _, _, err = call(1)
            assert_sdk_error(err, 403, BAD, GUARD_MESSAGE)
        _, _, err = ica.upload_cert(1, file_input_stream=pki.root.cert_pem.decode())
        assert_sdk_error(err, 403, BAD, GUARD_MESSAGE)
        _, _, err = ica.update_ca_certificate(1, description="changed")
        assert_sdk_error(err, 403, BAD, GUARD_MESSAGE)
        _, _, err = ica.delete_ca_certificate(1)
        assert_sdk_error(err, 403, BAD, GUARD_MESSAGE)
        # recorded: uploadCertChain/1 with the SDK's JSON {} -> 415, empty body (media type precedes the guard)
        _, _, err = ica.upload_cert_chain(1)
        assert_sdk_error(err, 415, None, None)
        assert_empty_415(execute(ex, "POST", f"{R}/uploadCertChain/1"))
        check.record(builtin)

        # --- Create (recorded: a create without type is refused first) -------------------------
        _, _, err = ica.add_ca_certificate(name="TestCACert_VCR", key_type="RSA")
        assert_sdk_error(err, 400, BAD, "Certificate type is required.")
        resp = execute(ex, "POST", R, {"name": "TestCACert_VCR", "keyType": "RSA"})
        assert resp.status_code == 400 and resp.content == RECORDED_TYPE_REQUIRED
        assert resp.headers["Content-Length"] == "75"
        assert_json_headers(resp.headers)

        model, resp, err = ica.add_ca_certificate(name="Branch CA", type="CUSTOM_SW", key_type="RSA_2K",
                                                  description="Branch CA")  # fmt: skip
        assert err is None, repr(err)
        cid = resp.get_body()["id"]
        assert type(cid) is int and cid >= 2 and model.id == cid
        rec: dict[str, Any] = {
            "id": cid, "name": "Branch CA", "type": "CUSTOM_SW", "region": "GLOBAL", "status": "ENABLED",
            "defaultCertificate": False, "keyType": "RSA_2K", "fallbackCertId": 0, "description": "Branch CA",
            "currentState": "GENERAL_DONE",
        }  # fmt: skip
        assert_record(resp.get_body(), rec)
        assert_json_headers(resp.get_headers())
        check.record(rec)
        _, _, err = ica.add_ca_certificate(name="branch ca", type="CUSTOM_SW")
        assert_sdk_error(err, 400, BAD, "A certificate named 'branch ca' already exists.")

        # --- Every out-of-order call in GENERAL_DONE (api.md §4.3), nothing changes ------------
        need_key = "keyPair must be done first"
        _, _, err = ica.generate_csr(cid)
        assert_sdk_error(err, 400, BAD, st("generateCsr", "GENERAL_DONE", need_key))
        check.error("POST", f"generateCsr/{cid}", 400, BAD, st("generateCsr", "GENERAL_DONE", need_key),
                    dict(CSR_FIELDS))  # fmt: skip
        for method, op in [("GET", "downloadPublicKey"), ("GET", "downloadCsr"), ("GET", "showCsr"),
                           ("GET", "showCert"), ("POST", "finalizeCert"), ("PUT", "deleteCertChain"),
                           ("PUT", "makeDefault"), ("GET", "downloadCertChain")]:  # fmt: skip
            check.error(method, f"{op}/{cid}", 400, BAD, st(op, "GENERAL_DONE", need_key))
        for op in ("uploadCert", "uploadCertChain"):
            data, ctype = multipart(pki.root.cert_pem)
            check.error("POST", f"{op}/{cid}", 400, BAD, st(op, "GENERAL_DONE", need_key), data,
                        {"Content-Type": ctype}, True)  # fmt: skip
        _, _, err = ica.upload_cert(cid, file_input_stream=pki.root.cert_pem.decode())
        assert_sdk_error(err, 400, BAD, st("uploadCert", "GENERAL_DONE", need_key))
        _, _, err = ica.finalize_cert(cid)
        assert_sdk_error(err, 400, BAD, st("finalizeCert", "GENERAL_DONE", need_key))
        _, _, err = ica.verify_key_attestation(cid)  # HSM-only precedes lifecycle order
        assert_sdk_error(err, 400, BAD, "This operation is applicable only to CUSTOM_HSM certificates.")
        _, _, err = ica.upload_cert_chain(cid)  # media type precedes lifecycle order
        assert_sdk_error(err, 415, None, None)
        check.record(rec)

        # --- keyPair --------------------------------------------------------------------------
        t0 = time.time()
        result, resp, err = ica.generate_key_pair(cid)
        assert err is None, repr(err)
        key_body = resp.get_body()
        assert list(key_body) == ["certId", "keyGenerationTime", "publicKey"]
        assert key_body["certId"] == cid and result["publicKey"] == key_body["publicKey"]
        assert_json_headers(resp.get_headers())
        public_key = serialization.load_pem_public_key(key_body["publicKey"].encode())
        assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048
        assert key_body["publicKey"] == spki_pem(public_key)  # \n line ends, trailing \n
        rec.update(currentState="KEYGEN_DONE", publicKey=key_body["publicKey"],
                   keyGenerationTime=recent(key_body["keyGenerationTime"], t0))  # fmt: skip
        check.record(rec)
        _, _, err = ica.generate_key_pair(cid)
        assert_sdk_error(
            err, 400, BAD, st("keyPair", "KEYGEN_DONE", "a key pair already exists and cannot be replaced")
        )
        # generate_csr always sends {}: one 400 naming every missing field
        _, _, err = ica.generate_csr(cid)
        assert_sdk_error(err, 400, BAD, MISSING_CSR_FIELDS)
        check.error("POST", f"generateCsr/{cid}", 400, BAD, MISSING_CSR_FIELDS, {})
        check.error(
            "GET", f"showCsr/{cid}", 400, BAD, st("showCsr", "KEYGEN_DONE", "generateCsr must be done first")
        )
        check.record(rec)

        # --- downloadPublicKey: KEYGEN_DONE -> PUBKEY_DONE, file headers -------------------------
        text, resp, err = ica.download_public_key(cid)
        assert err is None and text == rec["publicKey"]
        headers = resp.get_headers()
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Content-Disposition"] == 'attachment; filename="Branch CA-PublicKey.pem"'
        rec["currentState"] = "PUBKEY_DONE"
        check.record(rec)
        assert_download(execute(ex, "GET", f"{R}/downloadPublicKey/{cid}"), "Branch CA-PublicKey.pem",
                        rec["publicKey"].encode())  # fmt: skip
        check.record(rec)  # never backwards, never further

        # --- generateCsr with fields, through the request executor ------------------------------
        check.error("POST", f"generateCsr/{cid}", 400, BAD,
                    "Invalid signatureAlgorithm: allowed values are SHA256, SHA384, SHA512.",
                    {**CSR_FIELDS, "signatureAlgorithm": "MD5"})  # fmt: skip
        check.error("POST", f"generateCsr/{cid}", 400, BAD, "keySize 4096 does not match keyType RSA_2K.",
                    {**CSR_FIELDS, "keySize": 4096})  # fmt: skip
        for op in ("uploadCert",):
            data, ctype = multipart(pki.root.cert_pem)
            check.error("POST", f"{op}/{cid}", 400, BAD, st(op, "PUBKEY_DONE", "generateCsr must be done first"),
                        data, {"Content-Type": ctype}, True)  # fmt: skip
        check.record(rec)
        t0 = time.time()
        resp, err = execute_sdk(ex, "POST", f"{R}/generateCsr/{cid}", dict(CSR_FIELDS))
        assert err is None, repr(err)
        gen = resp.get_body()
        assert list(gen) == ["certId", "csrGenerationTime"] and gen["certId"] == cid
        assert_json_headers(resp.get_headers())
        rec.update(
            currentState="CSRGEN_DONE",
            csrFileName="branch",
            csrGenerationTime=recent(gen["csrGenerationTime"], t0),
        )
        check.record(rec)

        # --- downloadCsr / showCsr ---------------------------------------------------------------
        text, resp, err = ica.download_csr(cid)
        assert err is None
        csr_raw = execute(ex, "GET", f"{R}/downloadCsr/{cid}")
        assert_download(csr_raw, "branch.csr")
        assert text == csr_raw.text
        csr = x509.load_pem_x509_csr(csr_raw.content)
        assert csr.is_signature_valid and spki_pem(csr.public_key()) == rec["publicKey"]
        assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
        assert [a.oid for a in csr.subject] == [
            NameOID.COUNTRY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.LOCALITY_NAME,
            NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME,
        ]  # fmt: skip
        assert (
            csr.subject.rfc4514_string()
            == "CN=Branch Inspection CA,OU=Security,O=Example Org,L=London,ST=England,C=GB"
        )
        bc = csr.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 1
        ku = csr.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
        show, resp, err = ica.get_show_csr(cid)
        assert err is None, repr(err)
        expected_csr = {"certId": cid, **CSR_FIELDS, "keySize": 2048, "signatureAlgorithm": "SHA256",
                        "pathLengthConstraint": 1}  # fmt: skip
        assert list(resp.get_body()) == CSR_ORDER and resp.get_body() == expected_csr
        assert vars(show)["comm_name"] == "Branch Inspection CA" and vars(show)["cert_id"] == cid
        assert_json_response(execute(ex, "GET", f"{R}/showCsr/{cid}"), 200, expected_csr)

        need_cert = "uploadCert must be done first"
        for method, op in [("GET", "showCert"), ("POST", "finalizeCert"), ("PUT", "deleteCertChain"),
                           ("PUT", "makeDefault")]:  # fmt: skip
            check.error(method, f"{op}/{cid}", 400, BAD, st(op, "CSRGEN_DONE", need_cert))
        data, ctype = multipart(pki.root.cert_pem, "root.pem")
        check.error("POST", f"uploadCertChain/{cid}", 400, BAD, st("uploadCertChain", "CSRGEN_DONE", need_cert),
                    data, {"Content-Type": ctype}, True)  # fmt: skip
        check.record(rec)

        # --- Sign with the openssl CLI, upload_cert (OneAPI sends certificate.pem) --------------
        cert_pem = openssl_sign_csr(
            csr_raw.content, pki.root.cert_pem, pki.root.key_pem, tmp_path / "openssl"
        )
        cert = x509.load_pem_x509_certificate(cert_pem)
        result, resp, err = ica.upload_cert(cid, file_input_stream=cert_pem.decode())
        assert err is None, repr(err)
        rec.update(currentState="INTCERT_UPLOAD_DONE", certStartDate=epoch(cert.not_valid_before_utc),
                   certExpDate=epoch(cert.not_valid_after_utc), uploadedCertFileName="certificate.pem")  # fmt: skip
        assert_record(resp.get_body(), rec)
        assert list(resp.get_body()) == RECORDED_CUSTOM_KEYS  # the recorded ZIA record in this state
        assert result["uploadedCertFileName"] == "certificate.pem"
        assert_json_headers(resp.get_headers())
        check.record(rec)
        chain_file = execute(ex, "GET", f"{R}/downloadCertChain/{cid}")
        assert_download(chain_file, "Branch CA-Chain.pem")
        assert x509.load_pem_x509_certificates(chain_file.content) == [cert]
        check.error("PUT", f"deleteCertChain/{cid}", 400, BAD,
                    st("deleteCertChain", "INTCERT_UPLOAD_DONE", "uploadCertChain must be done first"))  # fmt: skip

        # --- upload_cert_chain posts JSON {} -> 415; the real chain goes through the executor ---
        _, _, err = ica.upload_cert_chain(cid)
        assert_sdk_error(err, 415, None, None)
        assert_empty_415(execute(ex, "POST", f"{R}/uploadCertChain/{cid}"))
        check.record(rec)
        data, ctype = multipart(pki.root.cert_pem, "root.pem")
        resp, err = execute_sdk(ex, "POST", f"{R}/uploadCertChain/{cid}", data, {"Content-Type": ctype}, True)
        assert err is None, repr(err)
        rec.update(currentState="CERTCHAIN_UPLOAD_DONE", uploadedCertChainFileName="root.pem")
        assert_record(resp.get_body(), rec)
        assert_json_headers(resp.get_headers())
        check.record(rec)

        # deleteCertChain (no SDK method): PUT through the executor -> INTCERT_UPLOAD_DONE
        resp, err = execute_sdk(ex, "PUT", f"{R}/deleteCertChain/{cid}", {})
        assert err is None, repr(err)
        del rec["uploadedCertChainFileName"]
        rec["currentState"] = "INTCERT_UPLOAD_DONE"
        assert_record(resp.get_body(), rec)
        check.record(rec)
        data, ctype = multipart(pki.root.cert_pem, "chain.pem")
        resp, err = execute_sdk(ex, "POST", f"{R}/uploadCertChain/{cid}", data, {"Content-Type": ctype}, True)
        assert err is None, repr(err)
        rec.update(currentState="CERTCHAIN_UPLOAD_DONE", uploadedCertChainFileName="chain.pem")
        assert_record(resp.get_body(), rec)
        check.record(rec)
        chain_file = execute(ex, "GET", f"{R}/downloadCertChain/{cid}")
        assert x509.load_pem_x509_certificates(chain_file.content) == [cert, pki.root.cert]
        check.error("PUT", f"makeDefault/{cid}", 400, BAD,
                    st("makeDefault", "CERTCHAIN_UPLOAD_DONE", "finalizeCert must be done first"))  # fmt: skip

        # --- showCert ------------------------------------------------------------------------
        _, resp, err = ica.get_show_cert(cid)
        assert err is None, repr(err)
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
        expected_show = {
            "certName": "Branch CA", "commName": "Branch Inspection CA", "orgName": "Example Org",
            "deptName": "Security", "city": "London", "state": "England", "country": "COUNTRY_GB",
            "keySize": 2048, "signatureAlgorithm": "SHA256", "pathLengthConstraint": 1,
            "pathLengthConstraintInCsr": 1, "issuedBy": pki.root.cert.subject.rfc4514_string(),
            "startDate": iso(nb), "expDate": iso(na), "validityInDays": (na - nb).days,
        }  # fmt: skip
        assert list(resp.get_body()) == SHOW_CERT_ORDER and resp.get_body() == expected_show
        assert_json_response(execute(ex, "GET", f"{R}/showCert/{cid}"), 200, expected_show)

        # --- finalizeCert -> CERT_READY; then CERT_READY is final -------------------------------
        result, resp, err = ica.finalize_cert(cid)
        assert err is None, repr(err)
        rec["currentState"] = "CERT_READY"
        assert_record(resp.get_body(), rec)
        assert_json_headers(resp.get_headers())
        check.record(rec)
        final = "the certificate is finalized"
        check.error(
            "POST", f"generateCsr/{cid}", 400, BAD, st("generateCsr", "CERT_READY", final), dict(CSR_FIELDS)
        )
        for method, op in [("POST", "keyPair"), ("POST", "finalizeCert"), ("PUT", "deleteCertChain")]:
            check.error(method, f"{op}/{cid}", 400, BAD, st(op, "CERT_READY", final))
        _, _, err = ica.update_ca_certificate(cid, name="Renamed CA")
        assert_sdk_error(err, 400, BAD, st("update", "CERT_READY", final))
        _, _, err = ica.upload_cert(cid, file_input_stream=cert_pem.decode())
        assert_sdk_error(err, 400, BAD, st("uploadCert", "CERT_READY", final))
        check.record(rec)

        # --- readyToUse -------------------------------------------------------------------------
        _, resp, err = ica.list_ready_to_use()
        assert err is None
        ready = [{"id": 1, "name": BUILTIN_NAME, "defaultCertificate": True},
                 {"id": cid, "name": "Branch CA", "defaultCertificate": False}]  # fmt: skip
        assert resp.get_body() == ready and all(list(i) == RECORDED_READY_ITEM_KEYS for i in resp.get_body())
        assert_json_response(execute(ex, "GET", f"{R}/readyToUse"), 200, ready)

        # --- makeDefault (executor): the old default loses the flag ------------------------------
        resp, err = execute_sdk(ex, "PUT", f"{R}/makeDefault/{cid}", {})
        assert err is None, repr(err)
        rec["defaultCertificate"], builtin["defaultCertificate"] = True, False
        assert_record(resp.get_body(), rec)
        _, resp, err = ica.list_ca_certificates()
        assert err is None
        assert [c["id"] for c in resp.get_body() if c["defaultCertificate"]] == [cid]
        assert_json_response(execute(ex, "GET", R), 200, [builtin, order(rec)])
        assert_json_response(
            execute(ex, "GET", f"{R}/readyToUse"),
            200,
            [{**ready[0], "defaultCertificate": False}, {**ready[1], "defaultCertificate": True}],
        )
        assert_json_response(execute(ex, "PUT", f"{R}/makeDefault/{cid}", {}), 200, order(rec))  # no change
        _, _, err = ica.update_ca_certificate(cid, status="DISABLED")
        assert_sdk_error(err, 400, BAD, "The default certificate cannot be disabled.")
        _, _, err = ica.delete_ca_certificate(cid)
        assert_sdk_error(
            err,
            400,
            BAD,
            "The default certificate cannot be deleted; make another certificate default first.",
        )
        check.record(rec)
        resp, err = execute_sdk(ex, "PUT", f"{R}/makeDefault/1", {})
        assert err is None
        rec["defaultCertificate"], builtin["defaultCertificate"] = False, True
        assert_record(resp.get_body(), builtin)
        check.record(rec)

        # --- Status changes ---------------------------------------------------------------------
        model, resp, err = ica.update_ca_certificate(cid, status="DISABLED")
        assert err is None, repr(err)
        rec["status"] = "DISABLED"
        assert_record(resp.get_body(), rec)
        assert model.status == "DISABLED"
        check.record(rec)
        check.error("PUT", f"makeDefault/{cid}", 400, BAD, "Only an enabled certificate can be made default.")
        assert_json_response(execute(ex, "GET", f"{R}/readyToUse"), 200, [ready[0]])
        _, resp, err = ica.update_ca_certificate(cid, status="ENABLED")
        assert err is None
        rec["status"] = "ENABLED"
        assert_record(resp.get_body(), rec)

        # --- Delete a non-default certificate -----------------------------------------------------
        _, resp, err = ica.add_ca_certificate(name="Second CA", type="CUSTOM_SW", key_type="EC_P384")
        assert err is None
        second = resp.get_body()["id"]
        assert second > cid
        _, _, err = ica.generate_key_pair(second)
        assert err is None
        _, resp, err = ica.delete_ca_certificate(second)
        assert err is None, repr(err)
        assert resp.get_status() == 204
        assert "Content-Type" not in resp.get_headers()
        assert_security_headers(resp.get_headers())
        _, _, err = ica.get_ca_certificate(second)
        assert_sdk_error(err, 404, "RESOURCE_NOT_FOUND", f"Certificate {second} not found.")
        check.error("GET", f"lite/{second}", 404, "RESOURCE_NOT_FOUND", f"Certificate {second} not found.")
        check.error("GET", "notAnId", 400, BAD, "Invalid certificate id.")
        assert_json_response(execute(ex, "GET", R), 200, [builtin, order(rec)])

        # --- The OneAPI SDK's exit call: DELETE authenticatedSession with the bearer token ---------
        assert ex.deauthenticate("zia") is True
        check.record(rec)  # the token stays valid


def test_oneapi_client_validate_cert_is_guarded_on_the_builtin(
    live_server: LiveServer, pki: TestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api.md §2 row 23 and §4.5: validateCert (no SDK method) is refused on the built-in like the other
    steps; with the SDK's JSON body it is a 415 first (precedence §4.6)."""
    isolate_sdk(monkeypatch, tmp_path)
    srv = live_server
    with oneapi_client(monkeypatch, srv.base, srv.client_id, srv.client_secret) as z:
        ex = z.get_request_executor()
        data, ctype = multipart(pki.root.cert_pem)
        resp = execute(ex, "POST", f"{R}/validateCert/1", data, {"Content-Type": ctype}, True)
        assert resp.status_code == 403 and resp.content == GUARD_BODY, (resp.status_code, resp.content)
        assert_json_headers(resp.headers)
        assert_empty_415(execute(ex, "POST", f"{R}/validateCert/1", {}))


# ------------------------------------------------------------------------------------------------
# OneAPI client: lists, paging, lite shapes, limits, roles, tokens across restarts and refresh
# ------------------------------------------------------------------------------------------------


def test_oneapi_client_lists_paging_limits_and_tokens(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_sdk(monkeypatch, tmp_path)
    srv = live_server
    with oneapi_client(monkeypatch, srv.base, srv.client_id, srv.client_secret) as z:
        ica = z.zia.intermediate_certificates
        ex = z.get_request_executor()
        check = Checker(ica, ex)

        ids: list[int] = []
        for i in range(4):
            _, resp, err = ica.add_ca_certificate(name=f"Enabled {i}", type="CUSTOM_SW")
            assert err is None, repr(err)
            ids.append(resp.get_body()["id"])
        _, _, err = ica.add_ca_certificate(name="Enabled 4", type="CUSTOM_SW")
        assert_sdk_error(
            err, 403, "LIMIT_EXCEEDED", "Maximum 4 enabled custom intermediate CA certificates allowed."
        )
        check.error("POST", "", 403, "LIMIT_EXCEEDED", "Maximum 4 enabled custom intermediate CA certificates allowed.",
                    {"name": "Enabled 4", "type": "CUSTOM_SW", "status": "ENABLED"})  # fmt: skip
        for i in range(3):
            _, resp, err = ica.add_ca_certificate(name=f"Disabled {i}", type="CUSTOM_SW", status="DISABLED",
                                                  description=f"spare {i}")  # fmt: skip
            assert err is None, repr(err)
            ids.append(resp.get_body()["id"])
        assert ids == sorted(ids) and len(set(ids)) == 7 and min(ids) >= 2
        _, _, err = ica.generate_key_pair(ids[1])  # a record whose full shape has more than the lite one
        assert err is None

        full = execute(ex, "GET", R).json()
        assert [c["id"] for c in full] == [1, *ids]

        # --- Paging with pageSize=2 to the empty page (resp.next / has_next) ------------------
        _, resp, err = ica.list_ca_certificates(query_params={"pageSize": 2})
        assert err is None, repr(err)
        pages = [resp.get_body()]
        while resp.has_next():
            items, resp, err = resp.next()
            assert err is None, repr(err)
            pages.append(resp.get_body())
            assert (items or []) == resp.get_body()
        assert [[c["id"] for c in page] for page in pages] == [[1, ids[0]], ids[1:3], ids[3:5], ids[5:7], []]
        assert [c for page in pages for c in page] == full
        # without pageSize: one full page, then the empty page
        _, resp, err = ica.list_ca_certificates_lite()
        assert err is None and len(resp.get_body()) == 8 and resp.has_next()
        items, resp, err = resp.next()
        assert err is None and items is None and resp.get_body() == [] and not resp.has_next()
        assert_json_response(execute(ex, "GET", R, params={"page": 5, "pageSize": 2}), 200, [])
        assert_json_response(execute(ex, "GET", f"{R}/lite", params={"page": 2, "pageSize": 3}), 200,
                             [{k: c[k] for k in c if k in FULL_ORDER[:12]} for c in full[3:6]])  # fmt: skip
        _, _, err = ica.list_ca_certificates(query_params={"page": 0})
        assert_sdk_error(err, 400, BAD, "page must be an integer of at least 1.")
        _, _, err = ica.list_ready_to_use(query_params={"pageSize": 1001})
        assert_sdk_error(err, 400, BAD, "pageSize must be an integer between 1 and 1000.")
        _, _, err = ica.list_ca_certificates_lite(query_params={"pageSize": 0})
        assert_sdk_error(err, 400, BAD, "pageSize must be an integer between 1 and 1000.")

        # --- Lite shapes: exactly the 12 lite fields, in order, omitted when absent ----------------
        _, resp, err = ica.list_ca_certificates_lite()
        assert err is None
        assert_json_headers(resp.get_headers())
        lites = resp.get_body()
        assert len(lites) == len(full)
        for lite, record in zip(lites, full, strict=True):
            assert_lite(lite, record)
        assert "description" not in lites[1] and lites[5]["description"] == "spare 0"
        assert "certStartDate" not in lites[1] and "certStartDate" in lites[0]
        assert "publicKey" in full[2] and "publicKey" not in lites[2]
        for record in full:
            _, resp, err = ica.get_ca_certificate_lite(record["id"])
            assert err is None
            assert_lite(resp.get_body(), record)
        _, resp, err = ica.list_ready_to_use(query_params={"pageSize": 2})
        assert err is None and resp.get_body() == [
            {"id": 1, "name": BUILTIN_NAME, "defaultCertificate": True}
        ]

        # --- Subscription limits (cloud_hsm: 8 custom, 4 enabled) --------------------------------
        _, resp, err = ica.add_ca_certificate(name="Disabled 3", type="CUSTOM_SW", status="DISABLED")
        assert err is None
        ids.append(resp.get_body()["id"])
        _, _, err = ica.add_ca_certificate(name="Disabled 4", type="CUSTOM_SW", status="DISABLED")
        assert_sdk_error(err, 403, "LIMIT_EXCEEDED", "Maximum 8 custom intermediate CA certificates allowed.")
        _, _, err = ica.add_ca_certificate(name="Enabled 4", type="CUSTOM_HSM", region="US")
        assert_sdk_error(err, 403, "LIMIT_EXCEEDED", "Maximum 8 custom intermediate CA certificates allowed.")
        _, _, err = ica.update_ca_certificate(ids[4], status="ENABLED")
        assert_sdk_error(
            err, 403, "LIMIT_EXCEEDED", "Maximum 4 enabled custom intermediate CA certificates allowed."
        )
        assert execute(ex, "GET", f"{R}/{ids[4]}").json()["status"] == "DISABLED"
        _, resp, err = ica.update_ca_certificate(ids[0], status="DISABLED")
        assert err is None and resp.get_body()["status"] == "DISABLED"
        _, resp, err = ica.update_ca_certificate(ids[4], status="ENABLED")
        assert err is None and resp.get_body()["status"] == "ENABLED"
        assert resp.get_body() == {**full[5], "status": "ENABLED"}
        _, resp, err = ica.delete_ca_certificate(ids[-1])
        assert err is None and resp.get_status() == 204
        _, resp, err = ica.add_ca_certificate(name="Disabled 4", type="CUSTOM_SW", status="DISABLED")
        assert err is None
        assert resp.get_body()["id"] > ids[-1]  # ids are never reused

        # --- The auditor role: reads, never changes; its downloads do not move the state --------
        with oneapi_client(monkeypatch, srv.base, srv.auditor_id, srv.auditor_secret) as audit:
            aica = audit.zia.intermediate_certificates
            _, resp, err = aica.list_ca_certificates()
            assert err is None and len(resp.get_body()) == 9
            _, _, err = aica.add_ca_certificate(name="Auditor CA", type="CUSTOM_SW", status="DISABLED")
            assert_sdk_error(err, 403, "NOT_AUTHORIZED", "This operation requires the admin role.")
            text, _, err = aica.download_public_key(ids[1])
            assert err is None and text == full[2]["publicKey"]
        assert execute(ex, "GET", f"{R}/{ids[1]}").json()["currentState"] == "KEYGEN_DONE"

        # --- Tokens survive a restart: the same client keeps its token and keeps working ---------
        oauth = ex._oauth
        token = oauth._access_token
        assert token
        srv.stop()
        srv.start()
        _, resp, err = ica.list_ca_certificates()
        assert err is None, repr(err)
        assert len(resp.get_body()) == 9
        assert oauth._access_token == token  # no 401 and no new token were needed

        # --- A rejected token: 401 with WWW-Authenticate, and the SDK fetches a new one -----------
        raw = httpx.get(srv.base + R, headers={"Authorization": "Bearer not-a-valid-token"})
        assert_error_response(raw, 401, "SESSION_NOT_VALID",
                              "The access token is not valid or has expired; request a new token.")  # fmt: skip
        assert raw.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        oauth._access_token = "not-a-valid-token"
        _, resp, err = ica.get_ca_certificate(ids[1])
        assert err is None, repr(err)
        assert resp.get_body()["currentState"] == "KEYGEN_DONE"
        assert oauth._access_token not in (None, token, "not-a-valid-token")
        assert httpx.get(srv.base + R, headers={"Authorization": f"Bearer {token}"}).status_code == 200


# ------------------------------------------------------------------------------------------------
# Legacy client (JSESSIONID): the same lifecycle where the SDK allows; uploads over plain HTTP
# ------------------------------------------------------------------------------------------------


def test_obfuscation_matches_the_worked_example() -> None:
    assert obfuscate_api_key("abcdefghijklmnop", 1795763068920) == "agijcacfggic"


def test_legacy_client_whole_lifecycle(
    live_server: LiveServer, pki: TestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zscaler.zia.intermediate_certificates import IntermediateCertsAPI

    isolate_sdk(monkeypatch, tmp_path)
    srv = live_server

    # --- Our own login, as the legacy SDK does it (api.md §5.3) ----------------------------------
    login, sid = legacy_login(srv.base, srv.username, srv.password, srv.api_key)
    assert_json_response(login, 200, {"authType": "ADMIN_LOGIN", "obfuscateApiKey": True})
    assert sid, login.headers.get("set-cookie")
    bad = httpx.post(
        srv.base + "/api/v1/authenticatedSession",
        timeout=30,
        json={
            "apiKey": "a" * 12,
            "username": srv.username,
            "password": srv.password,
            "timestamp": int(time.time() * 1000),
        },
    )
    assert_error_response(bad, 400, "INVALID_USERNAME_OR_PASSWORD", "Invalid email or password")
    assert "set-cookie" not in bad.headers
    http = cookie_client(srv.base, sid)
    assert_json_response(http.get("/api/v1/authenticatedSession"), 200,
                         {"authType": "ADMIN_LOGIN", "obfuscateApiKey": True})  # fmt: skip

    with legacy_client(monkeypatch, srv) as c:
        assert c.zia.session_id and c.zia.session_id != sid  # every login makes a new session
        ica = IntermediateCertsAPI(c.zia.request_executor)
        ex = c.zia.request_executor
        check = Checker(ica, ex)  # the legacy executor strips /zia: these reach /api/v1

        models, resp, err = ica.list_ca_certificates()
        assert err is None, repr(err)
        assert [m.id for m in models] == [1]
        builtin = resp.get_body()[0]
        assert list(builtin) == RECORDED_BUILTIN_KEYS and builtin["defaultCertificate"] is True
        assert builtin["name"] == BUILTIN_NAME and builtin["currentState"] == "CERT_READY"
        assert_json_headers(resp.get_headers())
        assert resp.get_body() == http.get(f"{LEGACY_R}").json()
        for call in (ica.get_show_cert, ica.get_show_csr, ica.download_csr, ica.finalize_cert,
                     ica.generate_key_pair, ica.verify_key_attestation):  # fmt: skip
            _, _, err = call(1)
            assert_sdk_error(err, 403, BAD, GUARD_MESSAGE)
        guard = http.post(
            f"{LEGACY_R}/uploadCert/1", files={"fileUpload": ("certificate.pem", pki.root.cert_pem)}
        )
        assert guard.status_code == 403 and guard.content == GUARD_BODY
        _, _, err = ica.upload_cert_chain(1)
        assert_sdk_error(err, 415, None, None)

        # --- CUSTOM_HSM: created, but no HSM module is configured -------------------------------
        _, resp, err = ica.add_ca_certificate(
            name="HSM CA", type="CUSTOM_HSM", region="EUROPE", key_type="EC_P384"
        )
        assert err is None, repr(err)
        hsm = resp.get_body()
        assert hsm == {
            "id": hsm["id"], "name": "HSM CA", "type": "CUSTOM_HSM", "region": "EUROPE", "status": "ENABLED",
            "defaultCertificate": False, "keyType": "EC_P384", "fallbackCertId": 0, "currentState": "GENERAL_DONE",
        }  # fmt: skip
        _, _, err = ica.verify_key_attestation(hsm["id"])
        assert_sdk_error(
            err, 400, BAD, st("verifyKeyAttestation", "GENERAL_DONE", "keyPair must be done first")
        )
        _, _, err = ica.generate_key_pair(hsm["id"])
        assert err is not None and err.status_code == 503 and err.error_code == "SERVICE_UNAVAILABLE", repr(
            err
        )
        assert err.error_message.startswith("[hsm_module_not_loadable] "), err.error_message
        assert err.headers.get("Retry-After") == "10"
        check.record(hsm)
        _, resp, err = ica.delete_ca_certificate(hsm["id"])
        assert err is None and resp.get_status() == 204

        # --- CUSTOM_SW, EC_P256 -----------------------------------------------------------------
        _, resp, err = ica.add_ca_certificate(name="Legacy CA", type="CUSTOM_SW", key_type="EC_P256")
        assert err is None, repr(err)
        cid = resp.get_body()["id"]
        assert cid > hsm["id"]
        rec: dict[str, Any] = {
            "id": cid, "name": "Legacy CA", "type": "CUSTOM_SW", "region": "GLOBAL", "status": "ENABLED",
            "defaultCertificate": False, "keyType": "EC_P256", "fallbackCertId": 0, "currentState": "GENERAL_DONE",
        }  # fmt: skip
        assert_record(resp.get_body(), rec)
        check.record(rec)
        _, _, err = ica.generate_csr(cid)
        assert_sdk_error(err, 400, BAD, st("generateCsr", "GENERAL_DONE", "keyPair must be done first"))
        _, _, err = ica.download_public_key(cid)
        assert_sdk_error(err, 400, BAD, st("downloadPublicKey", "GENERAL_DONE", "keyPair must be done first"))
        _, _, err = ica.verify_key_attestation(cid)
        assert_sdk_error(err, 400, BAD, "This operation is applicable only to CUSTOM_HSM certificates.")
        _, err = execute_sdk(ex, "GET", f"{R}/downloadAttestation/{cid}")
        assert_sdk_error(err, 400, BAD, "This operation is applicable only to CUSTOM_HSM certificates.")

        t0 = time.time()
        _, resp, err = ica.generate_key_pair(cid)
        assert err is None, repr(err)
        key_body = resp.get_body()
        assert list(key_body) == ["certId", "keyGenerationTime", "publicKey"] and key_body["certId"] == cid
        public_key = serialization.load_pem_public_key(key_body["publicKey"].encode())
        assert isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1"
        rec.update(currentState="KEYGEN_DONE", publicKey=key_body["publicKey"],
                   keyGenerationTime=recent(key_body["keyGenerationTime"], t0))  # fmt: skip
        check.record(rec)
        _, _, err = ica.generate_key_pair(cid)
        assert_sdk_error(
            err, 400, BAD, st("keyPair", "KEYGEN_DONE", "a key pair already exists and cannot be replaced")
        )

        text, resp, err = ica.download_public_key(cid)
        assert err is None and text == rec["publicKey"]
        assert resp.get_headers()["Content-Type"] == "application/octet-stream"
        assert resp.get_headers()["Content-Disposition"] == 'attachment; filename="Legacy CA-PublicKey.pem"'
        assert_security_headers(resp.get_headers())
        rec["currentState"] = "PUBKEY_DONE"
        check.record(rec)

        _, _, err = ica.generate_csr(cid)
        assert_sdk_error(err, 400, BAD, MISSING_CSR_FIELDS)
        fields = {
            **CSR_FIELDS,
            "csrFileName": "legacy.v2",
            "signatureAlgorithm": "SHA384",
            "pathLengthConstraint": 0,
        }
        _, err = execute_sdk(ex, "POST", f"{R}/generateCsr/{cid}", {**fields, "keySize": 2048})
        assert_sdk_error(err, 400, BAD, "keySize 2048 does not match keyType EC_P256.")
        t0 = time.time()
        resp, err = execute_sdk(ex, "POST", f"{R}/generateCsr/{cid}", fields)
        assert err is None, repr(err)
        assert list(resp.get_body()) == ["certId", "csrGenerationTime"]
        rec.update(currentState="CSRGEN_DONE", csrFileName="legacy.v2",
                   csrGenerationTime=recent(resp.get_body()["csrGenerationTime"], t0))  # fmt: skip
        check.record(rec)

        text, resp, err = ica.download_csr(cid)
        assert err is None
        assert resp.get_headers()["Content-Disposition"] == 'attachment; filename="legacy.v2.csr"'
        csr = x509.load_pem_x509_csr(text.encode())
        assert csr.is_signature_valid and isinstance(csr.signature_hash_algorithm, hashes.SHA384)
        assert spki_pem(csr.public_key()) == rec["publicKey"]
        assert csr.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
        _, resp, err = ica.get_show_csr(cid)
        assert err is None
        assert list(resp.get_body()) == CSR_ORDER
        assert resp.get_body() == {"certId": cid, **fields, "keySize": 256}

        # --- The legacy upload_cert cannot send a file (api.md §6): nothing reaches the server ----
        cert = pki.sign_ca(csr)
        result, resp, err = ica.upload_cert(cid, file_input_stream=pem(cert).decode())
        assert result is None and resp is None and err is not None
        assert "JSON serializable" in str(err)
        check.record(rec)

        # ... so the uploads go over plain HTTP with the same credentials (our own login).
        not_multipart = http.post(f"{LEGACY_R}/uploadCert/{cid}", content=pem(cert),
                                  headers={"Content-Type": "application/x-pem-file"})  # fmt: skip
        assert_empty_415(not_multipart)
        missing = http.post(f"{LEGACY_R}/uploadCert/{cid}", files={"other": ("x.pem", pem(cert))})
        assert_error_response(missing, 400, BAD, "No file selected.")
        up = http.post(f"{LEGACY_R}/uploadCert/{cid}", files={"fileUpload": ("certs/signed.pem", pem(cert))})
        rec.update(currentState="INTCERT_UPLOAD_DONE", certStartDate=epoch(cert.not_valid_before_utc),
                   certExpDate=epoch(cert.not_valid_after_utc), uploadedCertFileName="signed.pem")  # fmt: skip
        assert_json_response(up, 200, order(rec))
        check.record(rec)
        _, _, err = ica.upload_cert_chain(cid)
        assert_sdk_error(err, 415, None, None)
        chain = http.post(
            f"/zia{LEGACY_R}/uploadCertChain/{cid}", files={"fileUpload": ("root.pem", pki.root.cert_pem)}
        )
        rec.update(currentState="CERTCHAIN_UPLOAD_DONE", uploadedCertChainFileName="root.pem")
        assert_json_response(chain, 200, order(rec))  # a cookie works under /zia/api/v1 too
        check.record(rec)

        resp, err = execute_sdk(ex, "PUT", f"{R}/deleteCertChain/{cid}", {})
        assert err is None, repr(err)
        del rec["uploadedCertChainFileName"]
        rec["currentState"] = "INTCERT_UPLOAD_DONE"
        assert_record(resp.get_body(), rec)
        _, err = execute_sdk(ex, "PUT", f"{R}/deleteCertChain/{cid}", {})
        assert_sdk_error(
            err, 400, BAD, st("deleteCertChain", "INTCERT_UPLOAD_DONE", "uploadCertChain must be done first")
        )
        chain = http.post(
            f"{LEGACY_R}/uploadCertChain/{cid}", files={"fileUpload": ("root.pem", pki.root.cert_pem)}
        )
        rec.update(currentState="CERTCHAIN_UPLOAD_DONE", uploadedCertChainFileName="root.pem")
        assert_json_response(chain, 200, order(rec))

        _, resp, err = ica.get_show_cert(cid)
        assert err is None, repr(err)
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
        assert list(resp.get_body()) == SHOW_CERT_ORDER
        assert resp.get_body() == {
            "certName": "Legacy CA", "commName": "Branch Inspection CA", "orgName": "Example Org",
            "deptName": "Security", "city": "London", "state": "England", "country": "COUNTRY_GB",
            "keySize": 256, "signatureAlgorithm": "SHA256", "pathLengthConstraint": 0,
            "pathLengthConstraintInCsr": 0, "issuedBy": pki.root.cert.subject.rfc4514_string(),
            "startDate": iso(nb), "expDate": iso(na), "validityInDays": (na - nb).days,
        }  # fmt: skip

        _, resp, err = ica.finalize_cert(cid)
        assert err is None, repr(err)
        rec["currentState"] = "CERT_READY"
        assert_record(resp.get_body(), rec)
        check.record(rec)
        _, resp, err = ica.list_ready_to_use()
        assert err is None
        assert resp.get_body() == [{"id": 1, "name": BUILTIN_NAME, "defaultCertificate": True},
                                   {"id": cid, "name": "Legacy CA", "defaultCertificate": False}]  # fmt: skip

        resp, err = execute_sdk(ex, "PUT", f"{R}/makeDefault/{cid}", {})
        assert err is None, repr(err)
        rec["defaultCertificate"] = True
        assert_record(resp.get_body(), rec)
        _, resp, err = ica.list_ca_certificates()
        assert err is None
        assert [(c["id"], c["defaultCertificate"]) for c in resp.get_body()] == [(1, False), (cid, True)]
        _, _, err = ica.delete_ca_certificate(cid)
        assert_sdk_error(
            err,
            400,
            BAD,
            "The default certificate cannot be deleted; make another certificate default first.",
        )
        resp, err = execute_sdk(ex, "PUT", f"{R}/makeDefault/1", {})
        assert err is None and resp.get_body()["defaultCertificate"] is True
        _, resp, err = ica.update_ca_certificate(cid, status="DISABLED")
        assert err is None and resp.get_body()["status"] == "DISABLED"
        _, resp, err = ica.delete_ca_certificate(cid)
        assert err is None, repr(err)
        assert resp.get_status() == 204
        _, _, err = ica.get_ca_certificate(cid)
        assert_sdk_error(err, 404, "RESOURCE_NOT_FOUND", f"Certificate {cid} not found.")

    # --- Logout of our own session (the SDK's ended on leaving the with-block) ----------------
    out = http.delete("/api/v1/authenticatedSession")
    assert_json_response(out, 200, {"status": "ACTIVE"})
    assert_error_response(http.get("/api/v1/authenticatedSession"), 401, "SESSION_NOT_VALID",
                          "The session is not valid or has expired; log in again.")  # fmt: skip
    http.close()


# ------------------------------------------------------------------------------------------------
# Legacy client: a session that idles out is re-established by the SDK on its own
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def live_server(template_data_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """The conftest server, with no loadable HSM module: CUSTOM_HSM key pairs answer 503 here."""
    yield from live_server_fixture(
        template_data_dir, tmp_path, free_port(), hsm_module=str(tmp_path / "no-such-pkcs11.so")
    )


@pytest.fixture
def short_idle_server(template_data_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server whose sessions end after 2 idle seconds (INTERCA_SESSION_IDLE_TIMEOUT=2)."""
    yield from live_server_fixture(template_data_dir, tmp_path, free_port(), session_idle_timeout="2")


def test_legacy_client_logs_in_again_after_idle_timeout(
    short_idle_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zscaler.zia.intermediate_certificates import IntermediateCertsAPI

    isolate_sdk(monkeypatch, tmp_path)
    srv = short_idle_server
    with legacy_client(monkeypatch, srv) as c:
        ica = IntermediateCertsAPI(c.zia.request_executor)
        first = c.zia.session_id
        _, resp, err = ica.list_ca_certificates()
        assert err is None and [x["id"] for x in resp.get_body()] == [1]
        assert c.zia.session_id == first

        # Every authenticated request resets the idle timer: 3 x 0.9 s > 2 s, still valid.
        with cookie_client(srv.base, first) as http:
            for _ in range(3):
                time.sleep(0.9)
                assert http.get("/api/v1/authenticatedSession").status_code == 200
            time.sleep(3)
            expired = http.get("/api/v1/authenticatedSession")
            assert_error_response(expired, 401, "SESSION_NOT_VALID",
                                  "The session is not valid or has expired; log in again.")  # fmt: skip
            assert_error_response(http.get(LEGACY_R), 401, "SESSION_NOT_VALID",
                                  "The session is not valid or has expired; log in again.")  # fmt: skip

        # The SDK validates before the call, gets the 401, logs in again and succeeds.
        _, resp, err = ica.add_ca_certificate(name="After Idle", type="CUSTOM_SW", status="DISABLED")
        assert err is None, repr(err)
        assert resp.get_body()["currentState"] == "GENERAL_DONE"
        second = c.zia.session_id
        assert second and second != first
        _, resp, err = ica.list_ca_certificates()
        assert err is None and [x["name"] for x in resp.get_body()] == [BUILTIN_NAME, "After Idle"]
        assert c.zia.session_id == second
        with cookie_client(srv.base, second) as http:
            assert http.get("/api/v1/authenticatedSession").json() == {
                "authType": "ADMIN_LOGIN",
                "obfuscateApiKey": True,
            }
