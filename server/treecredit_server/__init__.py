"""treecredit's gRPC service: `service` (the RPCs) over `codec` (messages <-> arrays) over `compute` (the math);
`app` runs the server."""
