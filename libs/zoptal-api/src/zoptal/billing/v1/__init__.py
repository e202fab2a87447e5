"""Generated code of zoptal.billing.v1 (from protos/zoptal/billing/v1/billing.proto). Do not edit: run `make proto`."""
