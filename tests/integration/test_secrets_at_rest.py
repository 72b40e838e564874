"""The data directory and the database hold no private key, API key, password or client
secret in the clear (issue: "a test scans them"): only the 0600 master key file is clear."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tests.conftest import Api, R
from tests.integration.helpers import new_ca

from interca.auth.apikey import obfuscate
from interca.domain.principal import Role


def _needles(key: object) -> list[bytes]:
    """Byte strings that would betray `key`: its PKCS#8 and traditional encodings and the
    private scalar itself."""
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    out = [
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    ]
    if isinstance(key, rsa.RSAPrivateKey):
        d = key.private_numbers().d
        out.append(d.to_bytes((d.bit_length() + 7) // 8, "big"))
    else:
        v = key.private_numbers().private_value
        out.append(v.to_bytes((key.curve.key_size + 7) // 8, "big"))
    return out


def test_no_clear_secret_in_the_data_directory(api: Api, pki) -> None:  # noqa: ANN001
    for i, key_type in enumerate(("RSA_2K", "EC_P256", "EC_P384")):
        ca_id = api.create(f"Secret {i}", keyType=key_type)["id"]
        assert api.admin.post(f"{R}/keyPair/{ca_id}").status_code == 200
    new_ca(api, pki, "CERT_READY", name="Finalized")
    password = api.services.auth.add_user("scan@example.com", Role.ADMIN, "a very secret password")
    _, client_secret = api.services.auth.add_client("scan", Role.ADMIN)
    api_key = api.services.auth.api_key()
    ts = str(int(time.time() * 1000))
    login = {
        "apiKey": obfuscate(api_key, ts),
        "username": "scan@example.com",
        "password": password,
        "timestamp": ts,
    }
    session_id = api.anon.post("/api/v1/authenticatedSession", json=login).headers["set-cookie"][11:43]

    ctx = api.services.ctx
    with ctx.db.read() as s:
        from sqlalchemy import select

        from interca.storage.tables import CertificateRow, DeploymentRow

        refs = [r for r in s.scalars(select(CertificateRow.key_ref)) if r]
        refs.append(s.scalar(select(DeploymentRow.builtin_root_key_ref)))
    keys = [ctx.keystores.for_ref(ref).signer(ref) for ref in refs]
    assert len(keys) == 6  # 4 custom + the built-in intermediate and root

    needles = [n for key in keys for n in _needles(key)]
    needles += [password.encode(), (client_secret or "").encode(), api_key.encode(), session_id.encode()]
    needles += [b"PRIVATE KEY"]
    # Every secret generated in this run so far: tokens and session ids are kept only as hashes.
    from tests.secret_watch import WATCH

    needles += [secret.encode() for secret in WATCH.secrets]
    ctx.db.dispose()  # flush the WAL into the database file, as a crash-safe copy would
    data_dir: Path = ctx.settings.data_dir
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and any(p.suffix == ".key" for p in files)
    for path in files:
        if path == ctx.settings.master_key_path:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            continue
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"a secret is stored in the clear in {path.name}"
    for key_file in (ctx.settings.keys_dir).iterdir():
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
