"""phoihop notify."""
