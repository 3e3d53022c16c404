"""Community (PROTOCOL §10.2): posts, the feed, likes and comments."""
