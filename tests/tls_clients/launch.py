"""Running one client in its own process (certificates.md §7): a clean environment with no proxy
and no trust-store variables, a timeout, and the whole process group killed afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tests.tls_clients.target import ClientResult, Target

# Variables that would add trust anchors, route through a proxy or change TLS behaviour behind
# the harness's back. Compared case-insensitively (curl reads both http_proxy and HTTPS_PROXY).
_AMBIENT = {
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy", "socks_proxy",
    "ssl_cert_file", "ssl_cert_dir", "curl_ca_bundle", "requests_ca_bundle", "openssl_conf",
    "node_extra_ca_certs", "node_options", "node_tls_reject_unauthorized", "java_tool_options",
    "_java_options", "jdk_java_options", "sslkeylogfile",
}  # fmt: skip


class ClientUnavailable(RuntimeError):
    """A required client program is not installed: a failure of the machine, not of the leaf."""


@dataclass(frozen=True)
class Finished:
    """A client process that ran to its end (or was killed at the timeout)."""

    returncode: int | None  # None = killed at the timeout
    stdout: str
    stderr: str


def require(program: str, package: str) -> str:
    """The path of `program`, or `ClientUnavailable` naming the Debian package and `make test`."""
    path = shutil.which(program)
    if path is None:
        raise ClientUnavailable(
            f"`{program}` is not installed (Debian package `{package}`): run `make test`, which installs "
            "every package in the Makefile's DEB_PACKAGES"
        )
    return path


def client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of this process minus proxy, trust-store and TLS-tuning variables."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _AMBIENT}
    env.update(extra or {})
    return env


def run_client(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> Finished:
    """Run `argv` in a new session with stdin from /dev/null; at the timeout, or once it has
    exited, kill its whole process group (browsers leave helper processes behind)."""
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=dict(env) if env is not None else client_env(),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        returncode: int | None = process.returncode
    except subprocess.TimeoutExpired:
        # The program may have exited while a helper it left behind still holds the pipes.
        returncode = process.poll()
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
    _kill_group(process.pid)
    return Finished(returncode, stdout, stderr)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def probe_verdict(client: str, finished: Finished, target: Target, timeout: float) -> ClientResult:
    """The result of a probe script that prints one JSON line `{"ok", "detail"}` (the Python and
    Node clients): ok only when the probe verified the server **and** its answer carries the
    marker for `target`."""
    if finished.returncode is None:
        return ClientResult(False, f"{client} timed out after {timeout:.0f} s")
    try:
        answer = json.loads(finished.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return ClientResult(False, f"{client} crashed (exit {finished.returncode}): {finished.stderr[-800:]}")
    detail = str(answer["detail"])
    if answer["ok"] and target.marker not in detail:
        return ClientResult(False, f"no {target.marker!r} in the answer: {detail}")
    return ClientResult(bool(answer["ok"]), detail)
