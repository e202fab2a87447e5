"""Generated code of zoptal.project.v1.

From protos/zoptal/project/v1/project.proto; do not edit, run `make proto`.
"""
