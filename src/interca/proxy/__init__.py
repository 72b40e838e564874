"""The TLS-inspection edges that serve leaves from the issuing engine (certificates.md §6.3-§6.4, §7).

- `minter`: what the edges need from the engine (`Minter`), which names a connection is minted
  for, per-outcome metrics, and opening the engine from settings. No mitmproxy here.
- `edge`: `interca edge`, a plain TLS listener (pyOpenSSL) answering `OK-MARKER <host>`.
- `addon` and `run`: `interca proxy`, mitmproxy with the interca addon. They import mitmproxy,
  which lives in its own virtualenv (the `proxy` extra, `make proxy`); nothing else imports them.
"""
