"""Demo and test harness, outside the product packages: ``baton demo`` (``demo``), the
simulated desk workers (``desk_sim``) and devices (``edge_sim``, ``baton edge-sim``), the
embedded broker the demo runs alone with, and the child-process harness the tests and
benchmarks use (``procs``: a router, Chromium flags; ``mosquitto``: a real broker).
Product code (router, edge, endpoints, protocol, common) never imports it; the CLI reaches
it lazily for ``baton demo`` and ``baton edge-sim``."""
