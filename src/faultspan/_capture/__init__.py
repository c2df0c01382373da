"""Pure capture: exceptions, reprs, fingerprints, redaction, settings. Imports no OpenTelemetry."""
