"""The Zoptal Auth service."""
