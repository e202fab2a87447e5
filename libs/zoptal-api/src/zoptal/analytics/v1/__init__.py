"""Generated code of zoptal.analytics.v1 (from protos/zoptal/analytics/v1/analytics.proto). Do not edit: run `make proto`."""
