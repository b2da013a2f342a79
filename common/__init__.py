"""What the router and the edge share besides the wire protocol: errors, tasks, MQTT."""
