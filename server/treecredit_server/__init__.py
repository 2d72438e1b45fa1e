"""treecredit's gRPC service: `codec` (wire <-> arrays), `credit` (the math), `service` (RPCs), `app` (the server)."""
