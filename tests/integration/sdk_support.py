"""Helpers for driving the official `zscaler-sdk-python` against a live interca server (api.md §6, §7).

Nothing here stands in for the server or the SDK: the helpers only isolate the SDK's configuration
(environment, working directory, HOME, the two OneAPI overrides of api.md §7), build the requests the
SDK cannot (multipart chain uploads, legacy login), and state the wire rules of api.md §3 and §6 once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.helpers import FULL_ORDER

R = "/zia/api/v1/intermediateCaCertificate"
LEGACY_R = "/api/v1/intermediateCaCertificate"
BUILTIN_NAME = "Built-in Intermediate CA Certificate"

LITE_ORDER = FULL_ORDER[:12]
EPOCH_FIELDS = (
    "certStartDate",
    "certExpDate",
    "keyGenerationTime",
    "hsmAttestationVerifiedTime",
    "csrGenerationTime",
)
CSR_ORDER = [
    "certId", "csrFileName", "commName", "orgName", "deptName", "city", "state", "country", "keySize",
    "signatureAlgorithm", "pathLengthConstraint",
]  # fmt: skip
SHOW_CERT_ORDER = [
    "certName", "commName", "orgName", "deptName", "city", "state", "country", "keySize", "signatureAlgorithm",
    "pathLengthConstraint", "pathLengthConstraintInCsr", "issuedBy", "startDate", "expDate", "validityInDays",
]  # fmt: skip

# Recorded ZIA traffic (shared/data/zia-intermediate-ca-traffic.yaml), transcribed where a test
# compares with it. Key order of the built-in and of a custom record as ZIA's list returned them:
RECORDED_BUILTIN_KEYS = [
    "id", "name", "type", "region", "status", "defaultCertificate", "keyType", "fallbackCertId",
    "certStartDate", "certExpDate", "description", "currentState", "publicKey",
]  # fmt: skip
RECORDED_CUSTOM_KEYS = [
    "id", "name", "type", "region", "status", "defaultCertificate", "keyType", "fallbackCertId",
    "certStartDate", "certExpDate", "description", "currentState", "publicKey", "keyGenerationTime",
    "csrFileName", "csrGenerationTime", "uploadedCertFileName",
]  # fmt: skip
# GET .../showCert/1, showCsr/1, downloadCsr/1, POST verifyKeyAttestation/1, finalizeCert/1 -> 403:
RECORDED_GUARD_BODY = b'{"code":"INVALID_INPUT_ARGUMENT","message":"This operation is not applicable for the Zscaler root certificate"}'
# interca names its built-in differently (api.md §4.5); everything else is byte-identical.
GUARD_BODY = RECORDED_GUARD_BODY.replace(b"Zscaler root certificate", b"built-in certificate")
GUARD_MESSAGE = "This operation is not applicable for the built-in certificate"
# POST ... {"name":"TestCACert_VCR","keyType":"RSA"} -> 400, Content-Length 75:
RECORDED_TYPE_REQUIRED = b'{"code":"INVALID_INPUT_ARGUMENT","message":"Certificate type is required."}'
# GET .../readyToUse -> 200 (the vendor's built-in name replaced by ours):
RECORDED_READY_ITEM_KEYS = ["id", "name", "defaultCertificate"]

MISSING_CSR_FIELDS = (
    "Missing required fields: csrFileName, commName, orgName, deptName, city, state, country."
)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# --- wire assertions --------------------------------------------------------------------------


def compact(body: Any) -> bytes:
    """api.md §3: compact UTF-8 JSON, keys in the order given."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def assert_security_headers(headers: Any) -> None:
    """api.md §6 rule 11, on every API response (plain http: no HSTS)."""
    assert headers.get("Cache-Control") == "no-store, no-cache", dict(headers)
    assert headers.get("X-Content-Type-Options") == "nosniff", dict(headers)
    assert headers.get("X-Frame-Options") == "DENY", dict(headers)
    assert headers.get("Referrer-Policy") == "no-referrer", dict(headers)
    assert headers.get("Content-Security-Policy") == "default-src 'none'; frame-ancestors 'none'", dict(
        headers
    )
    assert _UUID.match(headers.get("X-Transaction-Id", "")), dict(headers)
    assert "Strict-Transport-Security" not in headers


def assert_json_headers(headers: Any) -> None:
    """A JSON response: rule 11 plus `application/json` (rule 4) and the api.json disposition."""
    assert_security_headers(headers)
    assert headers.get("Content-Type") == "application/json", dict(headers)
    assert headers.get("Content-Disposition") == 'attachment; filename="api.json"', dict(headers)


def assert_json_response(resp: Any, status: int, body: Any) -> None:
    """A raw response (requests or httpx): status, headers and the exact compact bytes of `body`."""
    assert resp.status_code == status, (resp.status_code, resp.content)
    assert_json_headers(resp.headers)
    assert resp.content == compact(body), resp.content
    assert resp.headers.get("Content-Length") in (None, str(len(resp.content)))


def assert_error_response(resp: Any, status: int, code: str, message: str) -> None:
    assert_json_response(resp, status, {"code": code, "message": message})


def assert_download(resp: Any, filename: str, content: bytes | None = None) -> None:
    """api.md §4.9 / §6 rule 5 on a raw download response."""
    assert resp.status_code == 200, (resp.status_code, resp.content)
    assert_security_headers(resp.headers)
    assert resp.headers.get("Content-Type") == "application/octet-stream", dict(resp.headers)
    assert resp.headers.get("Content-Disposition") == f'attachment; filename="{filename}"', dict(resp.headers)
    assert resp.headers.get("Content-Length") == str(len(resp.content)), dict(resp.headers)
    assert resp.content.endswith(b"\n") and b"\r" not in resp.content
    if content is not None:
        assert resp.content == content


def assert_empty_415(resp: Any) -> None:
    """api.md §6 rule 6 and §4.6: 415, empty body, no Content-Type (recorded ZIA: Content-Length 0)."""
    assert resp.status_code == 415, (resp.status_code, resp.content)
    assert resp.content == b""
    assert "Content-Type" not in resp.headers, dict(resp.headers)
    assert_security_headers(resp.headers)


def assert_sdk_error(err: Any, status: int, code: str | None, message: str | None) -> None:
    """An SDK error object (`ZscalerAPIError`): the SDK's view of `{"code","message"}` (rule 10)."""
    assert err is not None, "expected an error"
    assert (getattr(err, "status_code", None), getattr(err, "error_code", None), getattr(err, "error_message", None)) == (
        status, code, message,
    ), repr(err)  # fmt: skip


def assert_record(body: dict[str, Any], expected: dict[str, Any]) -> None:
    """The full object (§3.1): key order, no nulls, epoch-second ints, and exactly `expected`."""
    assert list(body) == [k for k in FULL_ORDER if k in body], list(body)
    assert None not in body.values()
    for field in EPOCH_FIELDS:
        if field in body:
            assert type(body[field]) is int and 1_000_000_000 < body[field] < 10_000_000_000, (
                field,
                body[field],
            )
    assert body == expected, _diff(body, expected)


def lite_of(record: dict[str, Any]) -> dict[str, Any]:
    """The lite shape (§3.2) of a full record: its first 12 fields, same order, same omissions."""
    return {k: record[k] for k in LITE_ORDER if k in record}


def assert_lite(body: dict[str, Any], record: dict[str, Any]) -> None:
    assert list(body) == [k for k in LITE_ORDER if k in body], list(body)
    assert body == lite_of(record), _diff(body, lite_of(record))


def _diff(got: dict[str, Any], want: dict[str, Any]) -> str:
    keys = list(dict.fromkeys([*want, *got]))
    return "; ".join(f"{k}: got {got.get(k, '<absent>')!r} want {want.get(k, '<absent>')!r}" for k in keys
                     if got.get(k, "<absent>") != want.get(k, "<absent>"))  # fmt: skip


def recent(value: int, since: float) -> int:
    """An epoch-second timestamp set by the server between `since` and now."""
    assert type(value) is int and int(since) - 1 <= value <= time.time() + 1, (value, since)
    return value


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- multipart (api.md §6: what upload_cert builds, for the chain the SDK cannot send) ---------


def multipart(
    data: bytes, filename: str | None = "certificate.pem", part: str = "fileUpload"
) -> tuple[bytes, str]:
    """A multipart/form-data body built like the SDK's `upload_cert`; returns (body, Content-Type)."""
    boundary = f"----WebKitFormBoundary{uuid.uuid4().hex}"
    disposition = f'form-data; name="{part}"' + (f'; filename="{filename}"' if filename is not None else "")
    body = (
        f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# --- SDK isolation and clients ------------------------------------------------------------------


def isolate_sdk(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """api.md §7: a clean working directory and HOME, no ambient SDK variables or proxies."""
    import zscaler.config.config_setter as config_setter

    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("ZSCALER_", "ZIA_", "ZPA_", "ZCC_", "ZTW_", "ZDX_", "ZWA_", "ZTB_")) or upper in (
            "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        ):  # fmt: skip
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # The SDK writes these itself; registering them restores the environment afterwards.
    monkeypatch.setenv("ZSCALER_SDK_LOG", "false")
    monkeypatch.setenv("ZSCALER_SDK_VERBOSE", "false")
    cwd, home = workdir / "sdk-cwd", workdir / "sdk-home"
    cwd.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    # The SDK resolves both YAML paths once, at import; point them at the clean directories.
    monkeypatch.setattr(config_setter, "_GLOBAL_YAML_PATH", str(home / ".zscaler" / "zscaler.yaml"))
    monkeypatch.setattr(config_setter, "_LOCAL_YAML_PATH", str(cwd / "zscaler.yaml"))


@contextmanager
def oneapi_client(monkeypatch: pytest.MonkeyPatch, base: str, client_id: str, secret: str) -> Iterator[Any]:
    """`ZscalerClient` with the two overrides of api.md §7 (undone by monkeypatch), `cloud` unset."""
    from zscaler import ZscalerClient
    from zscaler.oneapi_oauth_client import OAuth
    from zscaler.request_executor import RequestExecutor

    monkeypatch.setattr(RequestExecutor, "BASE_URL", base)
    monkeypatch.setattr(OAuth, "_get_auth_url", lambda self, vanity_domain, cloud: base + "/oauth2/v1/token")
    monkeypatch.setattr(OAuth, "_instance", None)  # the SDK shares one OAuth object per config
    with ZscalerClient({"clientId": client_id, "clientSecret": secret, "vanityDomain": "acme"}) as client:
        yield client


@contextmanager
def legacy_client(monkeypatch: pytest.MonkeyPatch, server: Any) -> Iterator[Any]:
    """`LegacyZIAClient` over plain http (api.md §7)."""
    from zscaler.oneapi_client import LegacyZIAClient

    monkeypatch.setenv("ZIA_OVERRIDE_URL", server.base)
    config = {
        "username": server.username,
        "password": server.password,
        "api_key": server.api_key,
        "cloud": "example",
    }
    with LegacyZIAClient(config) as client:
        yield client


def execute(ex: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
            raw_body: bool = False, params: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """`create_request` + `execute(..., return_raw_response=True)` through an SDK request executor:
    the raw `requests.Response` as the SDK received it (after its own 401 and retry handling)."""
    request, err = ex.create_request(method, path, {} if body is None else body, headers or {}, params=params,
                                     use_raw_data_for_body=raw_body)  # fmt: skip
    assert err is None, err
    resp, err = ex.execute(request, return_raw_response=True)
    assert err is None, repr(err)
    return resp


def execute_sdk(ex: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw_body: bool = False) -> tuple[Any, Any]:  # fmt: skip
    """`create_request` + `execute` as an application would: (ZscalerAPIResponse | None, error | None)."""
    request, err = ex.create_request(method, path, {} if body is None else body, headers or {},
                                     use_raw_data_for_body=raw_body)  # fmt: skip
    assert err is None, err
    return ex.execute(request)


# --- legacy login done by hand (api.md §5.3) ----------------------------------------------------


def obfuscate_api_key(key: str, timestamp_ms: int) -> str:
    """api.md §5.3 steps 1-3."""
    n = str(timestamp_ms)[-6:]
    r = str(int(n) >> 1).zfill(6)
    return "".join(key[int(d)] for d in n) + "".join(key[int(d) + 2] for d in r)


SET_COOKIE = re.compile(r"^JSESSIONID=([0-9A-F]{32}); Path=/; HttpOnly$")


def legacy_login(base: str, username: str, password: str, api_key: str) -> tuple[httpx.Response, str]:
    """POST /api/v1/authenticatedSession with the obfuscated key; returns (response, session id)."""
    ts = int(time.time() * 1000)
    body = {
        "apiKey": obfuscate_api_key(api_key, ts),
        "username": username,
        "password": password,
        "timestamp": ts,
    }
    resp = httpx.post(base + "/api/v1/authenticatedSession", json=body, timeout=30)
    match = SET_COOKIE.match(resp.headers.get("set-cookie", ""))
    return resp, match.group(1) if match else ""


def cookie_client(base: str, session_id: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Cookie": f"JSESSIONID={session_id}"}, timeout=60)
