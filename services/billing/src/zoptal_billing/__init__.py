"""The Zoptal Billing service."""
