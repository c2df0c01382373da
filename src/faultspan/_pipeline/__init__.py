"""In-process SDK glue: recording, processors, wiring and lifecycle."""
