"""XM3600 retrieval evaluation: the data reader, metrics, report and command."""
