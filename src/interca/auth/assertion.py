"""Private-key JWT client authentication (api.md §5.4 method 3; RFC 7523 §2.2 and §3) and the
client public keys it is verified with (api.md §5.1: RSA, at least 2048 bits).

PyJWT checks the JWS: the algorithm (RS256 only, so `none`, HS256 with the public key as an HMAC
secret, and RS512 are all refused before any signature work), the signature, `aud`, `iss` and
that the required claims are there. The times are checked here against interca's clock rather
than PyJWT's wall clock, so a frozen test clock and the server agree; the leeway only ever
forgives a client clock that runs ahead (`nbf`, `iat`, how far ahead `exp` may be), never an
expired assertion. Replay of a `jti` is the caller's to stop (it needs the database).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from interca.errors import InvalidInput, OAuthError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME = dt.timedelta(hours=1)
LEEWAY = dt.timedelta(minutes=5)
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
_MAX_ASSERTION_CHARS = 16_384


class ClientAuthRefused(OAuthError):
    """`invalid_client` with a fixed reason id for the audit log (never the request's content)."""

    def __init__(self, reason: str, description: str = "Client authentication failed.") -> None:
        super().__init__("invalid_client", description)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedAssertion:
    client_id: str
    jti: str | None
    expires_at: dt.datetime

    @property
    def replay_key(self) -> str:
        """What the used-assertion table stores: the client and a hash of its `jti` (any length)."""
        assert self.jti is not None
        return f"{self.client_id}:{hashlib.sha256(self.jti.encode()).hexdigest()}"


def normalise_client_key(pem: str) -> str:
    """Check a public key offered at client registration; returns it as an SPKI PEM.

    Raises `InvalidInput` naming what is wrong: not a PEM public key, a private key, not RSA,
    fewer than 2048 bits (or absurdly many)."""
    if "PRIVATE KEY" in pem:
        raise InvalidInput(
            "That is a private key. Register the client's public key; the private key stays with the client."
        )
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise InvalidInput("The public key is not a PEM public key (-----BEGIN PUBLIC KEY-----).") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidInput(
            f"The public key is {_kind(key)}; client assertions are RS256, so it must be an RSA key "
            f"of at least {MIN_RSA_BITS} bits."
        )
    if key.key_size < MIN_RSA_BITS:
        raise InvalidInput(f"The RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required.")
    if key.key_size > MAX_RSA_BITS:
        raise InvalidInput(f"The RSA key has {key.key_size} bits; at most {MAX_RSA_BITS} are accepted.")
    pem_out = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem_out.decode()


def verify_assertion(
    assertion: str, *, client_id: str, public_key_pem: str, audience: str, now: dt.datetime
) -> VerifiedAssertion:
    """Verify a client assertion for `client_id` with its registered key at time `now`.

    Raises `ClientAuthRefused` (invalid_client) with a reason id and a description the client's
    developer can act on; the caller has established that the client exists and is registered
    with this key, so the description gives nothing away."""
    if len(assertion) > _MAX_ASSERTION_CHARS:
        raise ClientAuthRefused("assertion_malformed", "The client assertion is too long.")
    key = serialization.load_pem_public_key(public_key_pem.encode())
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key,  # type: ignore[arg-type]  # an RSA key, checked at registration
            algorithms=["RS256"],
            audience=audience,
            issuer=client_id,
            options={
                "require": ["exp", "iss", "sub", "aud"],
                "verify_exp": False,  # checked below against the injected clock
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAlgorithmError:
        raise ClientAuthRefused(
            "assertion_algorithm", "The client assertion must be signed with RS256."
        ) from None
    except jwt.InvalidSignatureError:
        raise ClientAuthRefused(
            "assertion_signature", "The client assertion's signature does not verify with the registered key."
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise ClientAuthRefused(
            "assertion_claims", f"The client assertion has no {exc.claim} claim."
        ) from None
    except jwt.InvalidAudienceError:
        raise ClientAuthRefused(
            "assertion_audience", f"The client assertion's aud must be {audience}."
        ) from None
    except jwt.InvalidIssuerError:
        raise ClientAuthRefused(
            "assertion_issuer", "The client assertion's iss must be the client_id."
        ) from None
    except jwt.PyJWTError:
        raise ClientAuthRefused("assertion_malformed", "The client assertion is not a valid JWS.") from None

    if claims.get("sub") != client_id:
        raise ClientAuthRefused("assertion_subject", "The client assertion's sub must be the client_id.")
    expires_at = _numeric_date(claims, "exp")
    assert expires_at is not None  # required above
    if expires_at <= now:
        raise ClientAuthRefused("assertion_expired", "The client assertion has expired.")
    if expires_at > now + MAX_LIFETIME + LEEWAY:
        raise ClientAuthRefused(
            "assertion_lifetime", "The client assertion's exp must be at most 1 hour ahead."
        )
    for name in ("nbf", "iat"):
        at = _numeric_date(claims, name)
        if at is not None and at > now + LEEWAY:
            raise ClientAuthRefused(
                "assertion_not_yet_valid", f"The client assertion's {name} is in the future."
            )
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not jti):
        raise ClientAuthRefused(
            "assertion_malformed", "The client assertion's jti must be a non-empty string."
        )
    return VerifiedAssertion(client_id, jti, expires_at)


def _numeric_date(claims: dict[str, Any], name: str) -> dt.datetime | None:
    """A NumericDate claim (RFC 7519 §2: seconds since the epoch, fractions allowed) or None."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ClientAuthRefused("assertion_malformed", f"The client assertion's {name} must be a number.")
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise ClientAuthRefused(
            "assertion_malformed", f"The client assertion's {name} is out of range."
        ) from None


def _kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC {key.curve.name} key"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "an EdDSA key"
    return "not an RSA key"
