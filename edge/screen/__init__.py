"""The resident's screen: a web page served by ``baton edge`` on loopback and shown full
screen in Chromium's kiosk mode (docs/edge.md, "The resident's screen")."""
