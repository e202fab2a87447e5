"""``zoptal-loadgen``: realistic user journeys against a running platform, at a set rate.

``python -m zoptal_loadgen`` runs the same program. It reports the success rate and latency
quantiles per RPC and overall, and exits non-zero below ``--min-success``, so it doubles as the
smoke test after a deploy (docs/operations.md, "Load and smoke tests").
"""
