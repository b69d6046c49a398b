"""taskdaemon: pipelines (DAGs of stages wired by triggers), observable the OpenTelemetry way."""

__version__ = "0.1.0"
