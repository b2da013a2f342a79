"""High availability on PostgreSQL: several routers, one leader per partition.

- ``partitions``: which sites and workers make up each partition (config/partitions.yaml);
- ``leases``: leadership by lease rows with an epoch, and the fence every append checks;
- ``fenced``: the store view a partition's leader writes through (fenced, partition-scoped);
- ``leader``: the loop that takes, keeps and loses partitions and runs one RouterCore each.

The single-router default (SQLite, ``baton demo``) uses none of this.
"""
