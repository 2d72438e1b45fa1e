"""Protobuf messages <-> the compute layer's arrays, one module per proto file. Decoding validates; no math here."""
