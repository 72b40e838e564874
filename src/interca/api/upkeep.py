"""The API process's background work, run for the app's lifespan: CRLs re-issued before they are
due (`PkiService.refresh_crls`, hourly; fetches also re-issue on demand) and the HSM health check
(`HsmHealth.check`, at start and every 60 s, hsm.md §6.5). Both block (locks, token calls), so
they run in worker threads, never on the event loop; a failed round is logged and retried next
round. Safe with several processes: CRL re-issues hold the CA's edit lock and re-check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from interca.service import hsm_health

log = logging.getLogger(__name__)

CRL_REFRESH_SECONDS = 3600.0  # CRLs are re-issued at 24 h and valid for 7 days


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    crls = _every(CRL_REFRESH_SECONDS, services.pki.refresh_crls, "CRL refresh", first=False)
    health = _every(hsm_health.INTERVAL_SECONDS, services.hsm_health.check, "HSM health check")
    tasks = [asyncio.create_task(crls), asyncio.create_task(health)]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _every(seconds: float, work: Callable[[], object], name: str, *, first: bool = True) -> None:
    """`work` now (when `first`) and then every `seconds`, in a worker thread."""
    if not first:
        await asyncio.sleep(seconds)
    while True:
        try:
            await asyncio.to_thread(work)
        except Exception:
            log.exception("the periodic %s failed", name)  # the next round tries again
        await asyncio.sleep(seconds)
