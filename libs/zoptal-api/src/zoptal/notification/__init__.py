"""The Zoptal notification API."""
