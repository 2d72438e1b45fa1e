"""The compute layer: whole-array numpy (and the kernels) on validated inputs. Knows nothing of gRPC or protobuf."""
