"""The Python client of certificates.md §7, run as its own process by `python_client.py`:

    python python_probe.py HOST PORT ROOT ADDRESS [--strict] [--proxy PHOST:PPORT]

`ssl.create_default_context(cafile=ROOT)` (default variant: VERIFY_X509_STRICT and
VERIFY_X509_PARTIAL_CHAIN cleared, as Python 3.13+ sets them; strict variant: both set), a TCP
connection to ADDRESS:PORT (or a CONNECT tunnel through the proxy), `server_hostname=HOST`, then
`GET /`. Prints one JSON line `{"ok": bool, "detail": str}`. Standard library only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import ssl
import sys

TIMEOUT = 10.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("root")
    parser.add_argument("address")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--proxy")
    args = parser.parse_args()
    try:
        ok, detail = fetch(args)
    except ssl.SSLCertVerificationError as exc:
        ok, detail = False, f"SSLCertVerificationError: {exc.verify_message} (verify code {exc.verify_code})"
    except (OSError, ValueError) as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    print(json.dumps({"ok": ok, "detail": detail}))
    return 0 if ok else 1


def fetch(args: argparse.Namespace) -> tuple[bool, str]:
    context = ssl.create_default_context(cafile=args.root)
    flags = ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    if args.strict:
        context.verify_flags |= flags
    else:
        context.verify_flags &= ~flags
    if args.proxy:
        proxy_host, _, proxy_port = args.proxy.rpartition(":")
        raw = tunnel(proxy_host.strip("[]"), int(proxy_port), args.host, args.port)
    else:
        raw = socket.create_connection((args.address, args.port), timeout=TIMEOUT)
    # server_hostname is an IP literal for the ip case: Python then sends no SNI and checks the
    # iPAddress SAN.
    with raw, context.wrap_socket(raw, server_hostname=args.host) as tls:
        host = f"[{args.host}]" if is_ipv6(args.host) else args.host
        tls.sendall(
            f"GET / HTTP/1.1\r\nHost: {host}:{args.port}\r\nUser-Agent: interca-tls-test python"
            f"{' strict' if args.strict else ''}/{sys.version.split()[0]}\r\nConnection: close\r\n\r\n".encode()
        )
        response = read_all(tls)
        version = tls.version()
    body = response.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
    return True, f"verified ({version}); body: {body[:200]}"


def tunnel(proxy_host: str, proxy_port: int, host: str, port: int) -> socket.socket:
    """A TCP connection through an HTTP CONNECT proxy (RFC 9110 §9.3.6) to host:port."""
    sock = socket.create_connection((proxy_host, proxy_port), timeout=TIMEOUT)
    authority = f"[{host}]:{port}" if is_ipv6(host) else f"{host}:{port}"
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing after the proxy's answer may be consumed
        if not chunk:
            sock.close()
            raise ConnectionError(f"proxy closed the tunnel: {head!r}")
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if status.split(" ")[1:2] != ["200"]:
        sock.close()
        raise ConnectionError(f"proxy refused CONNECT: {status}")
    return sock


def read_all(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        try:
            chunk = tls.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        data += chunk
    return data


def is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
