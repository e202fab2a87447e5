"""The Zoptal billing API."""
