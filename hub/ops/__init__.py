"""Operations: the metrics reference, health endpoints of every role, ``govhub doctor``."""
