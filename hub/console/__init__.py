"""The web console (政务数据共享控制台), served by the ``api`` role under ``/console``.

Server-rendered pages in Chinese first, English second (``messages.json``), on the same
domain functions as the REST API; see ``docs/console.md``.
"""
