"""phoihop audit."""
