"""Generated code of zoptal.auth.v1.

From protos/zoptal/auth/v1/auth.proto; do not edit, run `make proto`.
"""
