"""The pipeline subsystem: model, engine, monitoring. The blessed names are re-exported here."""
