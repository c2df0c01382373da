"""faultspan's auto-instrumentors, registered in the ``opentelemetry_instrumentor`` entry-point group."""
