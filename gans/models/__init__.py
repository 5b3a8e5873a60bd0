"""Model definitions. Each module holds the networks of one family."""
