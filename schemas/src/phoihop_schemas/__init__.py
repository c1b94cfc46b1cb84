"""phoihop schemas."""
