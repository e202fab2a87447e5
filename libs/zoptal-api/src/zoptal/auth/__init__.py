"""The Zoptal auth API."""
