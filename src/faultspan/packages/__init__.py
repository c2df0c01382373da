"""Replay packages: the ``.fspkg`` format and the ``faultspan`` traces exporter."""
