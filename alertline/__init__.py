"""Alertline shared plumbing: Avro codec, Kafka runtime, settings, logging, metrics, topic admin."""

__version__ = "0.1.0"
