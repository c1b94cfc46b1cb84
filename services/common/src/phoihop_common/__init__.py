"""phoihop common."""
