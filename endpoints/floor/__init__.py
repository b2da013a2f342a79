"""The floor monitor (/ and /floor): supervisors watch queues, alerts and KPIs."""
