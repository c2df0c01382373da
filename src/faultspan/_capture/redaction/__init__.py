"""Secret masking for attribute values, nested AnyValue data, JSON text and free text (docs/redaction.md).

Pure: no OpenTelemetry imports. ``keys`` decides from a key's name, ``tokens`` whether a token is random,
``rules`` finds secrets inside text, ``redactor`` walks structures and holds the caches.
"""

from faultspan._capture.redaction.redactor import RedactionRules, Redactor, TaintScope
from faultspan._capture.redaction.rules import REDACTED

__all__ = ["REDACTED", "RedactionRules", "Redactor", "TaintScope"]
