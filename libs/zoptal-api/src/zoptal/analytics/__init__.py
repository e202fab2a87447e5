"""The Zoptal analytics API."""
