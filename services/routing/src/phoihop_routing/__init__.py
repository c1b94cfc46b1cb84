"""phoihop routing."""
