"""Adoption (PROTOCOL §10.1): listings of pets for adoption and applications for them."""
