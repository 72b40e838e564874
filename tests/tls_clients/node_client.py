"""The Node client of certificates.md §7: `tests/clients/tls_check.js` under `node`, with
`NODE_EXTRA_CA_CERTS` and `NODE_OPTIONS` removed from its environment (`ca` then is the only
trust anchor)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tls_clients.launch import probe_verdict, require, run_client
from tests.tls_clients.target import ClientResult, Target

SCRIPT = Path(__file__).parents[1] / "clients" / "tls_check.js"
TIMEOUT = 20.0


def check_node(target: Target, workdir: Path) -> ClientResult:
    """Node's `tls` trusting only `target.root`; ok = verified and the marker received."""
    node = require("node", "nodejs")
    args = {
        "host": target.ascii_host,
        "port": target.port,
        "root": str(target.root),
        "address": target.address,
        "proxy": list(target.proxy) if target.proxy is not None else None,
    }
    finished = run_client([node, str(SCRIPT), json.dumps(args)], timeout=TIMEOUT, cwd=str(workdir))
    return probe_verdict("node", finished, target, TIMEOUT)
