"""Read a key's public half straight from a SoftHSM2 token, in a process of its own.

`python -m tests.token_reader CONF LABEL PIN_FILE KEY_ID_HEX` prints the SPKI PEM of the public
object with that CKA_ID, decoded by python-pkcs11's own encoders (not interca's). A process of its
own because SoftHSM reads `SOFTHSM2_CONF` once per process, and a live server's embedded tokens
live under another configuration than the test process's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(conf: str, label: str, pin_file: str, key_id_hex: str) -> None:
    os.environ["SOFTHSM2_CONF"] = conf
    import pkcs11
    from asn1crypto.keys import PublicKeyInfo, RSAPublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key
    from pkcs11 import KeyType, ObjectClass
    from pkcs11.util.ec import encode_ec_public_key
    from pkcs11.util.rsa import encode_rsa_public_key

    token = pkcs11.lib("/usr/lib/softhsm/libsofthsm2.so").get_token(token_label=label)
    with token.open(user_pin=Path(pin_file).read_text().strip()) as session:
        pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=bytes.fromhex(key_id_hex))
        if pub.key_type == KeyType.RSA:
            der = PublicKeyInfo(
                {"algorithm": {"algorithm": "rsa"}, "public_key": RSAPublicKey.load(encode_rsa_public_key(pub))}
            ).dump()
        else:
            der = encode_ec_public_key(pub)
    pem = load_der_public_key(der).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    sys.stdout.write(pem.decode())


if __name__ == "__main__":
    main(*sys.argv[1:5])
