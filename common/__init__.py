"""Code the router and the edge both run and that is not wire format: the error root
(``errors``), YAML config loading (``config``), the task supervisor (``tasks``) and the MQTT
client adapter (``mqtt``). Imports neither ``router`` nor ``edge``."""
