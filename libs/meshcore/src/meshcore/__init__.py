"""meshcore: the shared gRPC runtime of Zoptal mesh."""
