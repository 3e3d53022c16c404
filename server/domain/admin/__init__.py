"""Admin and moderation (PROTOCOL §10.4): the role guard, users and bans, the audit log,
the moderation queue and analytics. Feature flags are ``server.domain.flags``."""
