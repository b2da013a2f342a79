"""The surfaces people use, each whole in its folder: its page routes, the WebSocket messages it
sends, and its assets (HTML, CSS, ES modules; no build step).

    desk/          /desk: agents and specialists take offers and work cases
    telepresence/  /telepresence: remote workers, video first, on robots and kiosks
    floor/         / and /floor: supervisors watch queues, alerts and KPIs
    shared/        ES modules the pages share (one api(), one socket client, one sign-in)
    docs/          the local Swagger UI's start script (router/service/web_security.py)

Surfaces do not import each other (.importlinter); the router's app mounts each one
(router/service/app.py)."""
