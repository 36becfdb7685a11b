"""UniNet family (to be filled in)."""
