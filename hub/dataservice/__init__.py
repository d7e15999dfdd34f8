"""Data services (数据服务): record by key, batch lookup, filtered listing and verification
(核验) over per-node materialised views of the source topics; see ``docs/data-services.md``.

The package's modules import Kafka, RocksDB and aiohttp only where they are used, so
:mod:`hub.config` can import :mod:`hub.dataservice.config` cheaply.
"""
