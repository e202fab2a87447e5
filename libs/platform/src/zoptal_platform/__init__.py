"""Runs the whole Zoptal platform on one machine."""
