"""Service-account JWTs: the signing key, TokenRequest minting and signature/claim checks.

Tokens look like the real server's bound service-account tokens: RS256, ``kid`` = the
base64url SHA-256 of the public key (DER), claims ``iss``, ``sub``
(``system:serviceaccount:<ns>:<name>``), ``aud`` (list), ``exp``, ``iat``, ``nbf``, ``jti``
and the ``kubernetes.io`` claim with namespace, serviceaccount {name, uid} and, when
bound, pod / secret / node {name, uid} — a pod-bound token also names the pod's node when
the pod is scheduled to an existing Node, as the real server does. Verification here
covers what can be checked from the token alone (signature, issuer, time window); whether
the service account and bound object still exist is checked by the caller against the
store (see ``auth``). The JWKS is served at ``/openid/v1/jwks`` so a Vault/OpenBao ``jwt``
auth method can validate these tokens too.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Claims = dict[str, Any]


class TokenInvalid(Exception):
    """Why a token cannot be trusted (message safe to return: it never includes the token)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class BoundObject:
    kind: str  # "Pod", "Secret" or "Node"
    name: str
    uid: str


class TokenIssuer:
    def __init__(self, issuer: str, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = self._key.public_key()
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _b64url(hashlib.sha256(der).digest())
        self._public = public

    def public_key_pem(self) -> str:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def jwks(self) -> dict[str, Any]:
        numbers = self._public.public_numbers()

        def enc(n: int) -> str:
            return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "n": enc(numbers.n),
                    "e": enc(numbers.e),
                }
            ]
        }

    def issue(
        self,
        *,
        namespace: str,
        service_account: str,
        service_account_uid: str,
        audiences: list[str],
        expiration_seconds: int,
        bound: BoundObject | None = None,
        node: BoundObject | None = None,
        issued_at: float | None = None,
    ) -> tuple[str, int]:
        """Mint a token; returns (jwt, exp as unix seconds)."""
        iat = int(self.clock() if issued_at is None else issued_at)
        exp = iat + int(expiration_seconds)
        k8s: Claims = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": service_account_uid},
        }
        for ref in (bound, node):
            if ref is not None:
                k8s[ref.kind.lower()] = {"name": ref.name, "uid": ref.uid}
        claims: Claims = {
            "aud": list(audiences),
            "exp": exp,
            "iat": iat,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": k8s,
            "nbf": iat,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
        }
        # The real server's header is {"alg", "kid"} only: no "typ" (PyJWT adds one unless told not to).
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "typ": None})
        return token, exp

    def verify(self, token: str) -> Claims:
        """Check signature, issuer and time window; returns the claims."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenInvalid("token is not a JWT") from None
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise TokenInvalid("token was not signed by this server")
        try:
            claims: Claims = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise TokenInvalid("token signature is invalid") from None
        if claims.get("iss") != self.issuer:
            raise TokenInvalid("token issuer is not this server")
        now = self.clock()
        if "exp" not in claims or now >= float(claims["exp"]):
            raise TokenInvalid("service account token has expired")
        if float(claims.get("nbf", 0)) > now:
            raise TokenInvalid("service account token is not valid yet")
        k8s = claims.get("kubernetes.io")
        if not isinstance(k8s, dict) or not isinstance(k8s.get("serviceaccount"), dict):
            raise TokenInvalid("token has no kubernetes.io service account claim")
        return claims
