"""Starting mitmproxy with the interca addons: what `interca proxy` runs. Needs mitmproxy (the
`proxy` extra, own virtualenv, `make proxy`).

An HTTP proxy (CONNECT) in mitmproxy's regular mode, with `Inspect` ahead of mitmproxy's default
addons (see `addon.py` for why the order matters), no onboarding app (it would hand out
mitmproxy's own CA), and the log on stdout. mitmproxy still makes its own CA at start-up; its
configuration directory is a fresh temporary directory under the data directory, removed at
exit, so that CA is never reused and nothing lands in `~/.mitmproxy`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
from pathlib import Path

from mitmproxy import addons, options
from mitmproxy.addons import errorcheck
from mitmproxy.master import Master

from interca.proxy.addon import HostMap, Inspect
from interca.proxy.minter import Minter, Outcomes


def run_proxy(
    minter: Minter,
    *,
    host: str,
    port: int,
    data_dir: Path,
    outcomes: Outcomes | None = None,
    upstream_ca: Path | None = None,
    host_map: dict[str, str] | None = None,
) -> None:
    """Run the proxy on `host:port` until SIGINT or SIGTERM.

    - `upstream_ca`: PEM CA certificates that upstream servers are verified against, instead of
      mitmproxy's default bundle (certifi). Upstream certificates are always verified.
    - `host_map`: host name (or `*.` pattern) -> address to connect to instead of resolving it.

    Raises `SystemExit(1)` when mitmproxy logs an error while starting (address in use, say).
    """
    asyncio.run(_run(minter, host, port, data_dir, outcomes, upstream_ca, host_map or {}))


async def _run(
    minter: Minter,
    host: str,
    port: int,
    data_dir: Path,
    outcomes: Outcomes | None,
    upstream_ca: Path | None,
    host_map: dict[str, str],
) -> None:
    # mitmproxy filters by handler level; the root logger must let records through to them.
    logging.getLogger().setLevel(logging.DEBUG)
    for noisy in ("asyncio", "hpack", "quic", "tornado"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="mitmproxy-", dir=data_dir) as confdir:
        opts = options.Options(
            mode=["regular"],
            listen_host=host,
            listen_port=port,
            confdir=confdir,
            ssl_verify_upstream_trusted_ca=str(upstream_ca) if upstream_ca is not None else None,
        )
        master = Master(opts, with_termlog=True)
        master.addons.add(Inspect(minter, outcomes))
        if host_map:
            master.addons.add(HostMap(host_map))
        master.addons.add(*addons.default_addons())
        master.addons.add(errorcheck.ErrorCheck(repeat_errors_on_stderr=True))
        opts.update(onboarding=False)  # an option of the default addons: set once they are loaded
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, master.shutdown)
        await master.run()
