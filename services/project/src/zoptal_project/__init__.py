"""The Zoptal Project service."""
