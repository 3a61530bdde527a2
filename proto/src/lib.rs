//! The `utrace.v1` wire protocol. The .proto files and generated types arrive with the gRPC server (issue 3).
