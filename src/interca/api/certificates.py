"""`{prefix}/intermediateCaCertificate` routes (api.md §2 rows 1-22). Each route is a thin call
into a service; shapes come from `wire`, bodies and files from `bodies`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from interca.api import wire
from interca.api.bodies import download, json_object, json_response, multipart_parts, no_content
from interca.api.deps import Paging, admin, cert_id, paging, principal, rate_limited, services
from interca.auth.ratelimit import RateClass
from interca.domain.principal import Principal
from interca.domain.x509.findings import FindingsError
from interca.service.registry import Services

R = "/intermediateCaCertificate"
router = APIRouter()
# Each route declares its rate class (api.md §4.8) in its decorator.
READ, CHANGE, HEAVY = (rate_limited(c) for c in (RateClass.READ, RateClass.CHANGE, RateClass.HEAVY))


async def _json(request: Request, caller: Principal = Depends(admin)) -> dict[str, Any]:
    return await json_object(request)


async def _cert_file(request: Request, caller: Principal = Depends(admin)) -> Any:
    return (await multipart_parts(request, ("fileUpload",))).get("fileUpload")


async def _validation_files(request: Request, caller: Principal = Depends(admin)) -> dict[str, Any]:
    """validateCert's optional parts; an empty body means "re-validate what is stored"."""
    if not await request.body():
        return {}
    try:
        return await multipart_parts(request, ("fileUpload", "chainUpload"))
    except FindingsError as oversized:  # the validator reports it as a finding, with a 200
        return {"refused": oversized.findings}


async def _chain_file(request: Request, caller: Principal = Depends(admin)) -> Any:
    return (await multipart_parts(request, ("fileUpload",), size_label="1M")).get("fileUpload")


# Lists. The literal segments `lite` and `readyToUse` are declared before `{certId}` so they win.


@router.get(R, dependencies=[READ])
def list_certificates(
    caller: Principal = Depends(principal), p: Paging = Depends(paging), s: Services = Depends(services)
):
    return json_response([wire.full(ca) for ca in s.certificates.list_all(p.search, p.page, p.page_size)])


@router.get(R + "/lite", dependencies=[READ])
def list_lite(
    caller: Principal = Depends(principal), p: Paging = Depends(paging), s: Services = Depends(services)
):
    return json_response([wire.lite(ca) for ca in s.certificates.list_all(p.search, p.page, p.page_size)])


@router.get(R + "/readyToUse", dependencies=[READ])
def list_ready(
    caller: Principal = Depends(principal), p: Paging = Depends(paging), s: Services = Depends(services)
):
    return json_response(
        [wire.ready_item(ca) for ca in s.certificates.list_ready(p.search, p.page, p.page_size)]
    )


@router.get(R + "/lite/{certId}", dependencies=[READ])
def get_lite(certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)):
    return json_response(wire.lite(s.certificates.get(cert_id(certId))))


@router.post(R, dependencies=[CHANGE])
def create(body: dict = Depends(_json), caller: Principal = Depends(admin), s: Services = Depends(services)):
    return json_response(wire.full(s.certificates.create(caller, body)))


# Lifecycle steps.


@router.post(R + "/keyPair/{certId}", dependencies=[HEAVY])
def generate_key_pair(certId: str, caller: Principal = Depends(admin), s: Services = Depends(services)):
    return json_response(wire.hsm_key(s.lifecycle.generate_key_pair(caller, cert_id(certId))))


@router.get(R + "/downloadPublicKey/{certId}", dependencies=[READ])
def download_public_key(
    certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)
) -> Response:
    file = s.lifecycle.download_public_key(caller, cert_id(certId))
    return download(file.filename, file.body)


@router.post(R + "/verifyKeyAttestation/{certId}", dependencies=[HEAVY])
def verify_key_attestation(certId: str, caller: Principal = Depends(admin), s: Services = Depends(services)):
    return json_response(wire.key_attestation(s.lifecycle.verify_key_attestation(caller, cert_id(certId))))


@router.get(R + "/downloadAttestation/{certId}", dependencies=[READ])
def download_attestation(
    certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)
) -> Response:
    file = s.lifecycle.download_attestation(caller, cert_id(certId))
    return download(file.filename, file.body)


@router.post(R + "/generateCsr/{certId}", dependencies=[HEAVY])
def generate_csr(
    certId: str,
    body: dict = Depends(_json),
    caller: Principal = Depends(admin),
    s: Services = Depends(services),
):
    return json_response(wire.cert_csr(s.lifecycle.generate_csr(caller, cert_id(certId), body)))


@router.get(R + "/downloadCsr/{certId}", dependencies=[READ])
def download_csr(
    certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)
) -> Response:
    file = s.lifecycle.download_csr(caller, cert_id(certId))
    return download(file.filename, file.body)


@router.get(R + "/showCsr/{certId}", dependencies=[READ])
def show_csr(certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)):
    return json_response(wire.csr_request(s.lifecycle.show_csr(caller, cert_id(certId))))


@router.get(R + "/showCert/{certId}", dependencies=[READ])
def show_cert(certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)):
    return json_response(wire.show_cert(*s.lifecycle.show_cert(caller, cert_id(certId))))


@router.post(R + "/uploadCert/{certId}", dependencies=[HEAVY])
def upload_cert(
    certId: str,
    upload: Any = Depends(_cert_file),
    caller: Principal = Depends(admin),
    s: Services = Depends(services),
):
    return json_response(wire.full(s.lifecycle.upload_cert(caller, cert_id(certId), upload)))


@router.post(R + "/uploadCertChain/{certId}", dependencies=[HEAVY])
def upload_chain(
    certId: str,
    upload: Any = Depends(_chain_file),
    caller: Principal = Depends(admin),
    s: Services = Depends(services),
):
    return json_response(wire.full(s.lifecycle.upload_chain(caller, cert_id(certId), upload)))


@router.put(R + "/deleteCertChain/{certId}", dependencies=[CHANGE])
def delete_chain(certId: str, caller: Principal = Depends(admin), s: Services = Depends(services)):
    return json_response(wire.full(s.lifecycle.delete_chain(caller, cert_id(certId))))


@router.post(R + "/finalizeCert/{certId}", dependencies=[HEAVY])
def finalize(certId: str, caller: Principal = Depends(admin), s: Services = Depends(services)):
    return json_response(wire.full(s.lifecycle.finalize(caller, cert_id(certId))))


@router.post(R + "/validateCert/{certId}", dependencies=[CHANGE])
def validate(
    certId: str,
    parts: dict = Depends(_validation_files),
    caller: Principal = Depends(admin),
    s: Services = Depends(services),
):
    report = s.lifecycle.validate_cert(
        caller, cert_id(certId), parts.get("fileUpload"), parts.get("chainUpload"), parts.get("refused")
    )
    return json_response(wire.validation_report(report.valid, report.findings))


@router.put(R + "/makeDefault/{certId}", dependencies=[CHANGE])
def make_default(certId: str, caller: Principal = Depends(admin), s: Services = Depends(services)):
    return json_response(wire.full(s.certificates.make_default(caller, cert_id(certId))))


@router.get(R + "/downloadCertChain/{certId}", dependencies=[READ])
def download_cert_chain(
    certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)
) -> Response:
    file = s.lifecycle.download_cert_chain(caller, cert_id(certId))
    return download(file.filename, file.body)


# The record itself.


@router.get(R + "/{certId}", dependencies=[READ])
def get_certificate(certId: str, caller: Principal = Depends(principal), s: Services = Depends(services)):
    return json_response(wire.full(s.certificates.get(cert_id(certId))))


@router.put(R + "/{certId}", dependencies=[CHANGE])
def update(
    certId: str,
    body: dict = Depends(_json),
    caller: Principal = Depends(admin),
    s: Services = Depends(services),
):
    return json_response(wire.full(s.certificates.update(caller, cert_id(certId), body)))


@router.delete(R + "/{certId}", dependencies=[HEAVY])
def delete(certId: str, caller: Principal = Depends(admin), s: Services = Depends(services)) -> Response:
    s.certificates.delete(caller, cert_id(certId))
    return no_content()
