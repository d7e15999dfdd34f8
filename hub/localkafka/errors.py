"""The one error type of the local Kafka manager."""


class LocalKafkaError(Exception):
    """A local Kafka step failed; the message is one line and says what to do about it."""
