"""Generated code of zoptal.billing.v1.

From protos/zoptal/billing/v1/billing.proto; do not edit, run `make proto`.
"""
