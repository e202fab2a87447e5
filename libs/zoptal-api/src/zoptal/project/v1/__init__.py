"""Generated code of zoptal.project.v1 (from protos/zoptal/project/v1/project.proto). Do not edit: run `make proto`."""
