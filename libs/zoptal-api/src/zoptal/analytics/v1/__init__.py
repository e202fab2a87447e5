"""Generated code of zoptal.analytics.v1.

From protos/zoptal/analytics/v1/analytics.proto; do not edit, run `make proto`.
"""
