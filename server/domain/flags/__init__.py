"""Feature flags with percentage rollouts, cached per node (PROTOCOL §10.4)."""
