"""Generated code of zoptal.notification.v1.

From protos/zoptal/notification/v1/notification.proto; do not edit, run `make proto`.
"""
