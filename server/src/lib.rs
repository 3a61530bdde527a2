//! The utraced gRPC server. It arrives with issue 3; today the engine layer is used in-process.
