"""Generated code of zoptal.notification.v1 (from protos/zoptal/notification/v1/notification.proto). Do not edit: run `make proto`."""
