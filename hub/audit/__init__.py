"""Tamper-evident audit: events in ``_govhub.audit``, a notary's hash chain with signed
checkpoints in ``_govhub.audit-chain``, verification, queries and lineage (``docs/audit.md``)."""
