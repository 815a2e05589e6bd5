"""CLI commands that speak to X (or the sandbox): ``xgate send``, ``xgate sandbox``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape

from xgate.cli.core import map_events_or_exit, read_events_or_exit
from xgate.cli.listen import bind_or_exit, serve_on
from xgate.cli.options import Auth, ConfigOption, load_config_or_exit
from xgate.cli.output import console, fail, note
from xgate.cli.usage import bad_usage
from xgate.runtime import tune_gc
from xgate.x import Credentials, CredentialsError, XClient
from xgate.x.auth import AuthMode, credential_names


def send(
    event_file: Annotated[str, typer.Argument(metavar="EVENT.json", help="one event or a list; - for stdin")],
    config_path: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Map EVENT.json and send it to X now (no queue); prints X's answer per destination."""
    config = load_config_or_exit(config_path)
    mapped = map_events_or_exit(config, read_events_or_exit(event_file))
    answers = []
    failed = False
    for destination in config.destinations:
        conversions = [c for c in mapped if c.destination == destination.name]
        if not conversions:
            continue
        try:
            credentials = Credentials.from_env(
                destination.credentials_env_prefix, destination.auth, config.x.secrets_file
            )
        except CredentialsError as e:
            fail(f"{destination.name}: {e}")
        with XClient(config.x, credentials) as client:
            for result in client.send_batches(destination.pixel_id, [c.body for c in conversions]):
                failed = failed or result.outcome != "delivered"
                answers.append(
                    {
                        "destination": destination.name,
                        "pixel_id": destination.pixel_id,
                        "outcome": result.outcome,
                        "status": result.status_code,
                        "debug_id": result.debug_id,
                        "conversions_processed": result.conversions_processed,
                        "errors": [
                            {"code": e.code, "message": e.message, "parameter": e.parameter}
                            for e in result.errors
                        ],
                        "reason": result.reason,
                    }
                )
    if as_json:
        print(json.dumps(answers, indent=2))
    else:
        for a in answers:
            colour = "green" if a["outcome"] == "delivered" else "red"
            words = [
                f"pixel {a['pixel_id']}: {a['outcome']}",
                f"(HTTP {a['status']})" if a["status"] else "(no answer)",
            ]
            if a["debug_id"]:
                words.append(f"debug_id={a['debug_id']}")
            if a["reason"]:
                words.append(str(a["reason"]))
            console.print(f"[{colour}]{escape(str(a['destination']))}[/{colour}] " + escape(" ".join(words)))
    if failed:
        raise typer.Exit(1)


def sandbox(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8787,
    host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = "127.0.0.1",
    credentials_prefix: Annotated[
        str, typer.Option(help="variables holding the credentials it checks")
    ] = "XGATE_X_",
    auth: Annotated[Auth, typer.Option(help="how requests are signed")] = Auth.oauth1,
    pixel: Annotated[
        list[str] | None, typer.Option(help="known pixel ids (others answer 404); repeatable")
    ] = None,
    declare: Annotated[
        Path | None,
        typer.Option(
            "--declare",
            help="an xgate.toml whose destinations' ad accounts, pixels and event ids the sandbox knows "
            "(others answer 404 / 400), for xgate verify",
        ),
    ] = None,
    error_rate: Annotated[float, typer.Option(help="share of requests answered 500/503")] = 0.0,
    rate_limit_rate: Annotated[float, typer.Option(help="share of requests starting a 429 burst")] = 0.0,
    rate_limit_burst: Annotated[int, typer.Option(help="requests answered 429 per burst")] = 5,
    rate_limit_reset: Annotated[float, typer.Option(help="seconds until a 429 burst's reset time")] = 2.0,
    rate_limit: Annotated[int, typer.Option(help="requests per 15-minute window before 429")] = 100_000,
    timeout_rate: Annotated[
        float, typer.Option(help="share of requests that hang past a client timeout")
    ] = 0.0,
    timeout_seconds: Annotated[float, typer.Option(help="how long a timed-out request hangs")] = 15.0,
    drop_rate: Annotated[float, typer.Option(help="share of connections dropped mid-answer")] = 0.0,
    slow_rate: Annotated[float, typer.Option(help="share of requests answered slowly")] = 0.0,
    slow_ms: Annotated[int, typer.Option(help="delay of a slow answer")] = 500,
    seed: Annotated[int | None, typer.Option(help="seed of the fault generator")] = None,
) -> None:
    """Run the sandbox: a stand-in for X's Conversions API that checks signatures and payloads."""
    import uvicorn

    from xgate.sandbox import FaultSettings, accounts_from_config, create_sandbox

    try:
        faults = FaultSettings(
            seed=seed,
            error_rate=error_rate,
            rate_limit_rate=rate_limit_rate,
            rate_limit_burst=rate_limit_burst,
            rate_limit_reset_seconds=rate_limit_reset,
            timeout_rate=timeout_rate,
            timeout_seconds=timeout_seconds,
            drop_rate=drop_rate,
            slow_rate=slow_rate,
            slow_ms=slow_ms,
        )
    except ValidationError as e:  # a fault option out of its range: a usage error, as click's min/max are
        problems = []
        for problem in e.errors():
            field = str(problem["loc"][0])
            name = "rate-limit-reset" if field == "rate_limit_reset_seconds" else field.replace("_", "-")
            reason = str(problem["msg"])
            problems.append((f"--{name}", reason[:1].lower() + reason[1:]))  # as click words its reasons
        (first, reason), *others = problems
        bad_usage(first, "; ".join([reason, *(f"{name}: {why}" for name, why in others)]))
    mode: AuthMode = "pixel_token" if auth is Auth.pixel_token else "oauth1"
    # the sandbox reads no configuration: say what the variables are for, without a [x] secrets_file hint
    missing = [name for name in credential_names(credentials_prefix, mode) if not os.environ.get(name)]
    if missing:
        fail(
            f"missing X credentials: set {', '.join(missing)} in the environment: the sandbox checks each "
            "request against the credentials the gateway signs with (any values, the same in both; or name "
            "other variables with --credentials-prefix)"
        )
    try:
        credentials = Credentials.from_env(credentials_prefix, mode)
    except CredentialsError as e:
        fail(str(e))
    accounts = accounts_from_config(load_config_or_exit(declare)) if declare else []
    sock = bind_or_exit(host, port, "pass --port")
    app, _ = create_sandbox(
        credentials, pixels=pixel or None, accounts=accounts, faults=faults, rate_limit=rate_limit
    )
    note(
        f"sandbox for X's Conversions API on http://{host}:{port} "
        f"(POST /12/measurement/conversions/PIXEL; inspect /_sandbox/conversions)"
    )
    tune_gc()
    serve_on(sock, uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command()(sandbox)
