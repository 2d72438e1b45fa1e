"""Protobuf messages <-> the compute layer's arrays, one module per proto file (and `forest.py`, `fields.py` for
what they share). Decoding validates every field before any computation; no math here."""
