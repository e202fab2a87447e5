"""The Zoptal Notification service."""
