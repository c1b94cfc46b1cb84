"""phoihop ingest."""
