"""phoihop benchmark: ceiling, ingest, end to end and memory, in one run (`python -m bench`)."""
