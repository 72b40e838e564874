"""A small typed client of the interca API (httpx), authenticated with OAuth2 client
credentials. `interca ca ...` uses it; so can scripts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

R = "/api/v1/intermediateCaCertificate"


class ApiError(Exception):
    """The server refused a request; `code` and `message` come from its ZIA error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DownloadedFile:
    filename: str
    content: bytes


class IntercaClient:
    def __init__(self, url: str, client_id: str, client_secret: str, timeout: float = 120) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self._credentials = (client_id, client_secret)
        self._token: str | None = None

    @classmethod
    def from_env(cls, url: str | None = None) -> IntercaClient:
        """Configured by `INTERCA_URL`, `INTERCA_CLIENT_ID` and `INTERCA_CLIENT_SECRET`."""
        client_id, secret = os.environ.get("INTERCA_CLIENT_ID"), os.environ.get("INTERCA_CLIENT_SECRET")
        if not client_id or not secret:
            raise ApiError(
                0,
                "CONFIGURATION",
                "Set INTERCA_CLIENT_ID and INTERCA_CLIENT_SECRET (see 'interca clients add').",
            )
        return cls(url or os.environ.get("INTERCA_URL", "http://127.0.0.1:8080"), client_id, secret)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> IntercaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transport ----------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                0,
                "UNREACHABLE",
                f"Cannot reach the interca server at {self._http.base_url} ({type(exc).__name__}).",
            ) from None

    def _authenticate(self) -> str:
        client_id, secret = self._credentials
        resp = self._send(
            "POST",
            "/oauth2/v1/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
        if resp.status_code != 200:
            body = _json_or_empty(resp)
            raise ApiError(
                resp.status_code, body.get("error", "invalid_client"), body.get("error_description", "")
            )
        token: str = resp.json()["access_token"]
        return token

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(2):
            if self._token is None:
                self._token = self._authenticate()
            resp = self._send(method, path, headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if resp.status_code == 401 and attempt == 0:
                self._token = None  # expired: get a new token once
                continue
            if resp.status_code >= 400:
                body = _json_or_empty(resp)
                raise ApiError(
                    resp.status_code, body.get("code", str(resp.status_code)), body.get("message", "")
                )
            return resp
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _download(self, path: str) -> DownloadedFile:
        resp = self._request("GET", path)
        disposition = resp.headers.get("content-disposition", "")
        name = (
            disposition.split('filename="', 1)[-1].split('"', 1)[0]
            if 'filename="' in disposition
            else "download"
        )
        return DownloadedFile(name, resp.content)

    def _upload(self, path: str, file: Path) -> Any:
        return self._json(
            "POST", path, files={"fileUpload": (file.name, file.read_bytes(), "application/octet-stream")}
        )

    # the API ------------------------------------------------------------------------------

    def list(self, search: str | None = None, page: int = 1, page_size: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"page": page, "pageSize": page_size}
        if search:
            params["search"] = search
        return self._json("GET", R, params=params)

    def get(self, cert_id: int) -> dict[str, Any]:
        return self._json("GET", f"{R}/{cert_id}")

    def create(self, **fields: Any) -> dict[str, Any]:
        return self._json("POST", R, json=fields)

    def update(self, cert_id: int, **fields: Any) -> dict[str, Any]:
        return self._json("PUT", f"{R}/{cert_id}", json=fields)

    def delete(self, cert_id: int) -> None:
        self._request("DELETE", f"{R}/{cert_id}")

    def generate_key_pair(self, cert_id: int) -> dict[str, Any]:
        return self._json("POST", f"{R}/keyPair/{cert_id}")

    def download_public_key(self, cert_id: int) -> DownloadedFile:
        return self._download(f"{R}/downloadPublicKey/{cert_id}")

    def generate_csr(self, cert_id: int, **fields: Any) -> dict[str, Any]:
        return self._json("POST", f"{R}/generateCsr/{cert_id}", json=fields)

    def download_csr(self, cert_id: int) -> DownloadedFile:
        return self._download(f"{R}/downloadCsr/{cert_id}")

    def show_csr(self, cert_id: int) -> dict[str, Any]:
        return self._json("GET", f"{R}/showCsr/{cert_id}")

    def show_cert(self, cert_id: int) -> dict[str, Any]:
        return self._json("GET", f"{R}/showCert/{cert_id}")

    def upload_cert(self, cert_id: int, file: Path) -> dict[str, Any]:
        return self._upload(f"{R}/uploadCert/{cert_id}", file)

    def upload_chain(self, cert_id: int, file: Path) -> dict[str, Any]:
        return self._upload(f"{R}/uploadCertChain/{cert_id}", file)

    def delete_chain(self, cert_id: int) -> dict[str, Any]:
        return self._json("PUT", f"{R}/deleteCertChain/{cert_id}")

    def validate(self, cert_id: int, cert: Path | None = None, chain: Path | None = None) -> dict[str, Any]:
        """The dry-run validator: findings for the given files, or for what is stored."""
        files = {
            part: (path.name, path.read_bytes(), "application/octet-stream")
            for part, path in (("fileUpload", cert), ("chainUpload", chain))
            if path is not None
        }
        return self._json("POST", f"{R}/validateCert/{cert_id}", files=files or None)

    def finalize(self, cert_id: int) -> dict[str, Any]:
        return self._json("POST", f"{R}/finalizeCert/{cert_id}")

    def make_default(self, cert_id: int) -> dict[str, Any]:
        return self._json("PUT", f"{R}/makeDefault/{cert_id}")

    def download_cert_chain(self, cert_id: int) -> DownloadedFile:
        return self._download(f"{R}/downloadCertChain/{cert_id}")


def _json_or_empty(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
