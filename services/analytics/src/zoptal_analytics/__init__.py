"""The Zoptal Analytics service."""
