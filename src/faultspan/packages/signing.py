"""HMAC signatures of package manifests (``OTEL_PYTHON_FAULTSPAN_SIGNING_KEY``).

The manifest holds the SHA-256 of every other member, so a MAC of the manifest covers the whole package.
It is computed over a canonical JSON form so that readers need not keep the manifest's original bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

SIGNATURE = "signature.json"
ALGORITHM = "hmac-sha256"


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(manifest: Mapping[str, Any], key: str) -> dict[str, str]:
    """The ``signature.json`` document for this manifest."""
    mac = hmac.new(key.encode(), _canonical(manifest), hashlib.sha256).hexdigest()
    return {"algorithm": ALGORITHM, "manifest": mac}


def is_signed_by(manifest: Mapping[str, Any], signature: object, key: str) -> bool:
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        return False
    expected = sign(manifest, key)["manifest"]
    return hmac.compare_digest(str(signature.get("manifest", "")), expected)
