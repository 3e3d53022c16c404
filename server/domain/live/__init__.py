"""Live streaming (issue #15): rooms, live chat and reactions, signalling, LiveKit."""
