"""Request bodies and response forms (api.md §4.1, §4.9, §6).

JSON endpoints need `application/json` when the body is non-empty (else 415, empty body);
uploads need multipart (else 415). The multipart body is read up to 2 MiB, then refused
with `[payload_too_large]`, before any parsing.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from interca.domain.x509.findings import Finding, FindingsError
from interca.domain.x509.pem import Upload
from interca.errors import InvalidInput

MULTIPART_MAX_BYTES = 2 * 1024 * 1024


class UnsupportedMediaType(Exception):
    """415 with an empty body and no Content-Type (api.md §4.6)."""


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def json_object(request: Request) -> dict[str, Any]:
    """The JSON object of a request body; an empty body counts as `{}`."""
    raw = await request.body()
    if not raw.strip():
        return {}
    if _media_type(request) != "application/json":
        raise UnsupportedMediaType()
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Request body is invalid.") from None
    if not isinstance(value, dict):
        raise InvalidInput("Request body is invalid.")
    return value


async def multipart_parts(
    request: Request, names: tuple[str, ...], size_label: str = "64K"
) -> dict[str, Upload]:
    """The named file parts of a multipart body (other parts are ignored). `size_label` is the
    per-file limit the refusal names (`64K` for a certificate, `1M` for a chain)."""
    if _media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MULTIPART_MAX_BYTES:
            raise FindingsError(
                [
                    Finding.error(
                        "payload_too_large",
                        f"File size cannot exceed {size_label}; "
                        f"this file has more than {MULTIPART_MAX_BYTES} bytes.",
                        names[0],
                    )
                ]
            )
        chunks.append(chunk)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield b"".join(chunks)

    parser = MultiPartParser(
        Headers(raw=request.headers.raw),
        replay(),
        max_files=16,
        max_fields=64,
        max_part_size=MULTIPART_MAX_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException:
        raise InvalidInput("Request body is invalid.") from None
    parts: dict[str, Upload] = {}
    for name in names:
        item = form.get(name)
        if isinstance(item, UploadFile):
            parts[name] = Upload(await item.read(), item.filename)
        elif isinstance(item, str):
            parts[name] = Upload(item.encode(), None)
    await form.close()
    return parts


def json_response(content: Any, status: int = 200) -> Response:
    return JSONResponse(content, status_code=status)


def no_content() -> Response:
    return Response(status_code=204)


_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f-\U0010ffff]')


def download(filename: str, body: str) -> Response:
    """A file download (api.md §4.9): octet-stream, attachment, RFC 6266 filename."""
    data = body.encode()
    disposition = f'attachment; filename="{_UNSAFE.sub("_", filename)}"'
    if not filename.isascii():
        disposition += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition, "Content-Length": str(len(data))},
    )
