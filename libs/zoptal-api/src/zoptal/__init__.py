"""Generated Zoptal APIs (zoptal.<svc>.v1) and their typed meshcore clients (zoptal.clients)."""
