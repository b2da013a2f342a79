"""The ``baton`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _config(args):
    from router.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"baton: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_router(args) -> int:
    import uvicorn

    from router.service.app import create_app

    from router.mqtt.cli import bridge_settings

    cfg = _config(args)
    app = create_app(cfg, args.db, mqtt=bridge_settings(args))
    from router.service.ws import WS_MAX_SIZE

    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                ws_max_size=WS_MAX_SIZE)
    return 0


def cmd_mqtt_auth(args) -> int:
    from router.mqtt.auth import run_cli

    return run_cli(args)


def cmd_check_config(args) -> int:
    cfg = _config(args)
    print(f"configuration in {cfg.directory} is valid: {len(cfg.sites.sites)} sites, "
          f"{len(cfg.workers.workers)} workers, {len(cfg.routing.workflows)} workflows")
    return 0


def cmd_schemas(args) -> int:
    from router.schemas import write_schemas

    for path in write_schemas(Path(args.out)):
        print(path)
    return 0


def cmd_simulate(args) -> int:
    from router.simulate import run_cli

    return run_cli(args)


def cmd_demo(args) -> int:
    from router.demo import run_demo

    return run_demo(args)


def cmd_calibrate(args) -> int:
    from router.calibration import run_cli

    return run_cli(args)


def cmd_edge(args) -> int:
    from edge.node import run_cli

    return run_cli(args)


def cmd_models(args) -> int:
    from edge.models import run_cli

    return run_cli(args)


def cmd_transcribe(args) -> int:
    from edge.transcribe import run_cli

    return run_cli(args)


def cmd_edge_sim(args) -> int:
    from edge.simulated import run_cli

    return run_cli(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton", description="Baton: routes customer-service "
                                     "cases between AI and people, on desks and robots.")
    parser.add_argument("--config", default=None,
                        help="configuration directory (default: $BATON_CONFIG_DIR or ./config)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("router", help="run the router service (REST, WebSocket, pages)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--db", default=None, help="database URL (default: $BATON_DB_URL or "
                   "sqlite in ./var)")
    p.add_argument("--log-level", default="info")
    from router.mqtt.cli import add_router_arguments

    add_router_arguments(p)
    p.set_defaults(func=cmd_router)

    p = sub.add_parser("demo", help="router + simulated workers and devices, on one machine")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--db", default=None, help="database URL (default: a fresh sqlite file)")
    p.add_argument("--cases-per-minute", type=float, default=6.0)
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--mqtt-port", type=int, default=None,
                   help="port of the embedded MQTT broker (default: a free port)")
    p.add_argument("--live-robot", default="robot-1", metavar="DEVICE",
                   help="run this device as a live edge station (video, captions, robot "
                   "controls; resident turns typed on stdin); '' for none")
    p.add_argument("--leave-for-you", default="aiko,ken", metavar="WORKERS",
                   help="comma-separated workers not simulated, whose desks you can use "
                   "(default: aiko,ken)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="workforce simulation on the real matching engine")
    from router.simulate import add_arguments

    add_arguments(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("schemas", help="write the JSON Schemas of events and packets")
    p.add_argument("--out", default="docs/schemas")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("calibrate", help="refit the confidence calibrator from humans' "
                       "verdicts in the store; report ECE and a reliability diagram")
    from router.calibration import add_arguments as calibrate_args

    calibrate_args(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("mqtt-auth", help="write Mosquitto's password file and ACL from "
                       "sites.yaml and tokens.yaml")
    from router.mqtt.auth import add_arguments as mqtt_auth_args

    mqtt_auth_args(p)
    p.set_defaults(func=cmd_mqtt_auth)

    p = sub.add_parser("check-config", help="validate the configuration and exit")
    p.set_defaults(func=cmd_check_config)

    from edge.models import add_arguments as models_args
    from edge.node import add_arguments as node_args
    from edge.transcribe import add_arguments as transcribe_args

    p = sub.add_parser("edge", help="run a kiosk/robot edge node (speech, translation, events)")
    node_args(p)
    p.set_defaults(func=cmd_edge)

    p = sub.add_parser("models", help="offline Whisper weights and Argos translation packages")
    models_args(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("transcribe", help="transcribe an audio file through the edge pipeline")
    transcribe_args(p)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("edge-sim", help="a simulated kiosk/robot that opens cases")
    from edge.simulated import add_arguments as edge_args

    edge_args(p)
    p.set_defaults(func=cmd_edge_sim)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s "
                        "%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # plugin set-up chatter
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
