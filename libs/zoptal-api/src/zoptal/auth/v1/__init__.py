"""Generated code of zoptal.auth.v1 (from protos/zoptal/auth/v1/auth.proto). Do not edit: run `make proto`."""
