"""The ``baton`` command."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path


def _config(args):
    from common.config import ConfigError
    from router.config import load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"baton: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_router(args) -> int:
    _env_file(args)
    cfg = _config(args)
    # The sentence-embedding model loads (mostly numpy, outside the GIL) while the web stack
    # is imported; it must have loaded before the router serves.
    loading = _load_models_in_background(cfg)
    import uvicorn

    from router import logs
    from router.mqtt.cli import bridge_settings
    from router.secrets import HINT, secret_problems
    from router.service.app import create_app

    settings = bridge_settings(args)
    problems = secret_problems(cfg, mqtt=settings is not None)
    if problems and not args.demo_secrets:
        for p in problems:
            print(f"baton router: refusing to start: {p.line()}", file=sys.stderr)
        print(f"baton router: set each of these ({HINT}); --demo-secrets runs with the "
              "repository's demo values, for a local try-out only", file=sys.stderr)
        return 2
    policy = logs.policy_from_env(json_format=args.log_format == "json" or None,
                                  keep_pii=args.log_pii or None)
    logs.install(policy, getattr(logging, args.log_level.upper(), logging.INFO))
    if problems:
        logging.getLogger("baton.cli").warning(
            "running with demo secrets (--demo-secrets): anyone who has read the repository "
            "can sign in; never expose this router", extra={"unsafe": len(problems)})
    tls = _tls_files(args)
    if os.environ.get("BATON_HA_INSTANCE", "").strip():
        from router.ha.settings import default_advertise_url

        # Partitioned mode: where the other routers forward this one's partitions' requests.
        os.environ.setdefault("BATON_HA_ADVERTISE_URL", default_advertise_url(
            args.host, args.port, tls=tls is not None))
    _models_loaded(loading)
    app = create_app(cfg, args.db, mqtt=settings, tls=tls is not None)
    from router.service.ws import WS_MAX_SIZE

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            log_config=None, ws_max_size=WS_MAX_SIZE, **(tls or {}))
    uvicorn.Server(config).run()
    return 0


def _env_file(args) -> None:
    path = getattr(args, "env_file", None)
    if not path:
        return
    from router.secrets import load_env_file

    try:
        load_env_file(Path(path))
    except (OSError, ValueError) as exc:
        print(f"baton: cannot read --env-file {path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _tls_files(args) -> dict | None:
    import os

    cert = args.tls_cert or os.environ.get("BATON_TLS_CERT")
    key = args.tls_key or os.environ.get("BATON_TLS_KEY")
    if not cert and not key:
        return None
    if not (cert and key):
        print("baton router: give both --tls-cert and --tls-key (or BATON_TLS_CERT and "
              "BATON_TLS_KEY)", file=sys.stderr)
        raise SystemExit(2)
    for f in (cert, key):
        if not Path(f).is_file():
            print(f"baton router: TLS file {f} not found", file=sys.stderr)
            raise SystemExit(2)
    return {"ssl_certfile": cert, "ssl_keyfile": key}


def cmd_secrets(args) -> int:
    from router.mqtt.auth import AuthError, write_auth
    from router.secrets import generate_values, write_env_file

    cfg = _config(args)
    env_file = Path(args.env_file)
    if env_file.exists() and not args.force:
        print(f"baton secrets: {env_file} exists; --force replaces every secret in it (to "
              "rotate without downtime see docs/security.md)", file=sys.stderr)
        return 2
    values = generate_values(cfg)
    try:
        passwd, acl = write_auth(cfg, Path(args.mosquitto_dir), env=values)
    except AuthError as exc:
        print(f"baton secrets: {exc}", file=sys.stderr)
        return 2
    write_env_file(env_file, values)
    print(f"{env_file} (0600): {len(values)} tokens and passwords")
    print(f"{passwd}, {acl}: Mosquitto's password file (hashed) and ACL for them")
    return 0


def _load_models_in_background(cfg):
    """Start loading the sentence-embedding model (None when the configuration uses none)."""
    import threading

    from router.embeddings import ModelError, load_encoder

    tc = cfg.transition
    sem = tc.policy.semantic
    if not (sem.enabled or tc.assistant.scoring.method == "embedding"):
        return None
    box: dict = {}

    def run() -> None:
        try:
            load_encoder(sem.model_dir)
        except ModelError as exc:
            box["error"] = exc

    t = threading.Thread(target=run, name="load-embeddings", daemon=True)
    t.start()
    return t, box


def _models_loaded(loading) -> None:
    """Wait for the model: a missing or damaged file is a start-up error naming the file and
    the command that fixes it (loaded once per process; the app reuses it)."""
    if loading is None:
        return
    t, box = loading
    t.join()
    if "error" in box:
        print(f"baton: cannot start: {box['error']}", file=sys.stderr)
        raise SystemExit(2)


def cmd_eval_escalation(args) -> int:
    from router.eval_cli import run_cli

    return run_cli(args)


def cmd_mqtt_auth(args) -> int:
    from router.mqtt.auth import run_cli

    return run_cli(args)


def cmd_check_config(args) -> int:
    _env_file(args)
    cfg = _config(args)
    if args.production:
        from router.secrets import HINT, secret_problems

        problems = secret_problems(cfg)
        for p in problems:
            print(f"baton check-config: unsafe for production: {p.line()}", file=sys.stderr)
        if problems:
            print(f"baton check-config: {HINT}", file=sys.stderr)
            return 2
    print(f"configuration in {cfg.directory} is valid: {len(cfg.sites.sites)} sites, "
          f"{len(cfg.workers.workers)} workers, {len(cfg.routing.workflows)} workflows")
    return 0


def cmd_schemas(args) -> int:
    from protocol.schemas import write_schemas

    for path in write_schemas(Path(args.out)):
        print(path)
    return 0


def cmd_simulate(args) -> int:
    from router.simulate import run_cli

    return run_cli(args)


def cmd_demo(args) -> int:
    from sandbox.demo import run_demo

    return run_demo(args)


def cmd_calibrate(args) -> int:
    from router.calibrate_cli import run_cli

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
    from sandbox.edge_sim import run_cli

    return run_cli(args)


# The edge's commands take their arguments from edge modules that import aiortc, av and
# faster-whisper (the `baton[edge]` extra). They are imported only when that command is the one
# being run, so `baton router` never loads them and a router-only install (`pip install .`)
# runs every router command; there, an edge command says which extra to install.
EDGE_EXTRA_MODULES = ("faster_whisper", "ctranslate2", "argostranslate", "av", "aiortc")


def _edge_missing() -> str | None:
    """The first of the edge extra's libraries that is not installed (None: all are)."""
    return next((m for m in EDGE_EXTRA_MODULES if importlib.util.find_spec(m) is None), None)


# Commands that need the edge extra (`baton demo` runs a live edge station).
EDGE_COMMANDS = ("edge", "models", "transcribe", "demo")


def _lazy(sub, command: str | None, name: str, help: str, module: str, func) -> None:
    """A sub-command whose arguments come from ``module``, imported only when ``command`` is
    this one (None: every one, where the edge is installed)."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(func=func)
    if command == name or (command is None and
                           (name not in EDGE_COMMANDS or _edge_missing() is None)):
        importlib.import_module(module).add_arguments(p)


def _needs_edge_extra(name: str, missing: str) -> int:
    print(f"baton {name}: the edge is not installed here ({missing} is missing): install it "
          f"with pip install 'baton[edge]' (from a checkout: pip install '.[edge]')",
          file=sys.stderr)
    return 2


def _command_in(argv: list[str]) -> str:
    """The sub-command named in ``argv`` ('' if none), skipping the global options."""
    args = iter(argv)
    for a in args:
        if a == "--config":
            next(args, None)
        elif not a.startswith("-"):
            return a
    return ""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """``command``: only that sub-command's lazily imported arguments are loaded ('' for
    none); None loads them all."""
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
    p.add_argument("--log-format", choices=["text", "json"], default=None,
                   help="default $BATON_LOG_FORMAT or text")
    p.add_argument("--log-pii", action="store_true", help="print the 'pii' field of log "
                   "records (resident ids; transcripts also need BATON_LOG_TRANSCRIPTS=1); "
                   "default: redacted. Also BATON_LOG_PII=1")
    p.add_argument("--env-file", default=None, help="KEY=value file (from `baton secrets "
                   "generate`) read before start; the environment wins over it")
    p.add_argument("--demo-secrets", action="store_true", help="start even with the "
                   "repository's demo tokens and passwords (local try-outs and tests only)")
    p.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate "
                   "(PEM; default $BATON_TLS_CERT)")
    p.add_argument("--tls-key", default=None, help="its private key (default $BATON_TLS_KEY)")
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
    from router.calibrate_cli import add_arguments as calibrate_args

    calibrate_args(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("mqtt-auth", help="write Mosquitto's password file and ACL from "
                       "sites.yaml and tokens.yaml")
    from router.mqtt.auth import add_arguments as mqtt_auth_args

    mqtt_auth_args(p)
    p.set_defaults(func=cmd_mqtt_auth)

    p = sub.add_parser("eval-escalation", help="run corpus files through the transition "
                       "layer: accuracy, missed and false escalations per category and "
                       "language (last line JSON)")
    from router.eval_cli import add_arguments as eval_args

    eval_args(p)
    p.set_defaults(func=cmd_eval_escalation)

    p = sub.add_parser("check-config", help="validate the configuration and exit")
    p.add_argument("--production", action="store_true", help="also fail (exit 2) while any "
                   "token or password is a demo value, short, empty or missing")
    p.add_argument("--env-file", default=None, help="KEY=value file read first")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("secrets", help="generate tokens and passwords for a deployment")
    ssub = p.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    g = ssub.add_parser("generate", help="write random tokens and passwords to an env file "
                        "(0600) and regenerate Mosquitto's password file")
    g.add_argument("--env-file", default=".env", help="where to write them (default .env)")
    g.add_argument("--mosquitto-dir", default="config/mosquitto",
                   help="where to write passwd and acl (default config/mosquitto)")
    g.add_argument("--force", action="store_true", help="replace an existing env file")
    g.set_defaults(func=cmd_secrets)

    _lazy(sub, command, "edge", "run a kiosk/robot edge node (speech, translation, events)",
          "edge.node", cmd_edge)
    _lazy(sub, command, "models", "offline Whisper weights and Argos translation packages",
          "edge.models", cmd_models)
    _lazy(sub, command, "transcribe", "transcribe an audio file through the edge pipeline",
          "edge.transcribe", cmd_transcribe)
    # The sandbox (not product code): reached only when this command runs.
    _lazy(sub, command, "edge-sim", "a simulated kiosk/robot that opens cases",
          "sandbox.edge_sim", cmd_edge_sim)
    return parser


def main(argv: list[str] | None = None) -> int:
    from router import logs

    # `baton router` installs its own policy (flags); every command redacts PII by default.
    argv = sys.argv[1:] if argv is None else argv
    command = _command_in(argv)
    missing = _edge_missing() if command in EDGE_COMMANDS else None
    if missing is not None:
        return _needs_edge_extra(command, missing)
    args = build_parser(command).parse_args(argv)
    logs.install(logs.policy_from_env(demo=args.command == "demo"))
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
