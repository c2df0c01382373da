"""The OTLP seam: the wire, the OTLP/JSON codec, and every access to private names of the SDK."""
