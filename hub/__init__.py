"""GovHub: government data sharing and exchange hub on Apache Kafka."""

__version__ = "0.1.0"
