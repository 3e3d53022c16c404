"""Safety (PROTOCOL §10.3): blocks between users and reports for the moderation queue."""
