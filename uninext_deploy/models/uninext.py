"""UniNeXt family (to be filled in)."""
