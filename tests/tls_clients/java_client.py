"""The Java client of certificates.md §7 (optional: run where `java` and `javac` are installed):
`tests/clients/TlsCheck.java`, compiled once per source version into a cache directory, then one
JVM per check."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

from tests.tls_clients.launch import probe_verdict, require, run_client
from tests.tls_clients.target import ClientResult, Target

SOURCE = Path(__file__).parents[1] / "clients" / "TlsCheck.java"
TIMEOUT = 30.0
_compile_lock = threading.Lock()


def check_java(target: Target, workdir: Path) -> ClientResult:
    """Java's JSSE trusting only `target.root`; ok = verified and the marker received."""
    java = require("java", "openjdk-17-jre-headless")
    argv = [java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", str(_compiled()), "TlsCheck"]
    argv += [target.ascii_host, str(target.port), str(target.root), target.address]
    if target.proxy is not None:
        argv += [target.proxy[0], str(target.proxy[1])]
    finished = run_client(argv, timeout=TIMEOUT, cwd=str(workdir))
    return probe_verdict("java", finished, target, TIMEOUT)


def _compiled() -> Path:
    """The directory holding TlsCheck.class for the current source (compiled on first use; the
    name carries the source's hash, so an edited source is compiled again)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    classes = Path(tempfile.gettempdir()) / f"interca-tls-java-{digest}"
    with _compile_lock:
        if (classes / "TlsCheck.class").is_file():
            return classes
        javac = require("javac", "openjdk-17-jdk-headless")
        staging = Path(tempfile.mkdtemp(prefix="interca-tls-java-"))
        finished = run_client([javac, "-d", str(staging), str(SOURCE)], timeout=120)
        if finished.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"javac failed: {finished.stderr.strip()[-800:]}")
        try:
            os.replace(staging, classes)  # atomic: a parallel run sees all of it or nothing
        except OSError:  # another process compiled it first
            shutil.rmtree(staging, ignore_errors=True)
    return classes
