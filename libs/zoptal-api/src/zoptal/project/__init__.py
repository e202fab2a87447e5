"""The Zoptal project API."""
