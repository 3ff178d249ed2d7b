"""The `vsm` command line: demo, collect, map, query."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb

from collector import config as config_module
from collector.config import SOURCE_SECTIONS, Config, ConfigError
from collector.pipeline import collect, run_map
from collector.present.value_stream import value_stream
from collector.render.terminal import dora_table, render_rows, stage_report, status_table
from collector.store import Store, StoreError, open_for_reading
from connectors import scrub

log = logging.getLogger("vsm")

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_CONFIG, EXIT_STALE = 0, 1, 2, 3

QUERY_HINTS = """\
Dig in (views: changes, stage_times, change_timeline, value_stream, flow_weekly, deployments, builds,
incidents, dora_weekly; see the README):
  vsm query --config {config} "SELECT week, repo, lead_time_median_s/86400 AS lead_days, bottleneck_stage FROM flow_weekly ORDER BY week DESC LIMIT 6"
  vsm explain --config {config} {slowest}
  vsm explain --config {config} --stage review --week {week}
  vsm serve --config {config}            the map, stages, changes, trends and health in a browser
  vsm export --config {config} --out {export}   Parquet for Trino, Spark or DuckDB on object storage
or open {db} with any DuckDB client (duckdb CLI, Python, DBeaver). `vsm demo --serve` does all this and
then serves the web app."""


def out(text: str = "") -> None:
    """Write command output (results, not log lines) to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def setup_logging(verbosity: int) -> None:
    """One line per event on stderr: time, level, logger, message (journald and cron friendly)."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    # the handler, not only the root logger, filters: client libraries log every request at DEBUG
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    # every line is scrubbed of URL credentials, header values and the secrets the config names
    handler.addFilter(scrub.SecretFilter())
    root = logging.getLogger()
    # replace only the handler an earlier call installed (embedding code and test tools keep theirs)
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_vsm", False)] + [handler]
    handler._vsm = True  # type: ignore[attr-defined]
    root.setLevel(level)


def _load(args: argparse.Namespace, secrets: bool = True) -> Config:
    """The validated config named by --config (secrets required only for commands that use them)."""
    config = config_module.load(args.config, require_secrets=secrets)
    _remember_secrets(config)
    return config


def _remember_secrets(config: Config) -> None:
    """Register the values of the config's token and password variables (with their Basic-auth forms)
    so the log filter replaces them wherever they would show; user names are not secret, only paired."""
    named = config_module.secret_names(config)
    users = {key.rpartition(".")[0]: os.environ.get(name) for key, name in named if key.endswith("user_env")}
    for key, name in named:
        if not key.endswith("user_env"):
            scrub.remember(os.environ.get(name), user=users.get(key.rpartition(".")[0]))


def cmd_collect(args: argparse.Namespace) -> int:
    """Collect every configured source into the database."""
    config = _load(args)
    with Store(config.db_path) as store:
        results = collect(config, store, only=args.source)
    if not results:
        log.warning("no source is configured (add a [github] section)")
    for result in results:
        state = "ok" if result.ok else "FAILED: " + "; ".join(result.errors)
        out(f"{result.source}: {result.items} rows, {result.requests} requests, {result.seconds:.1f}s - {state}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_SOURCE_FAILED


def print_value_stream(store: Store) -> None:
    """The per-stage table, the terminal value stream map and the DORA four keys."""
    stream = value_stream(store.con)
    out(stage_report(stream))
    out()
    out(dora_table(stream.dora))


def cmd_map(args: argparse.Namespace) -> int:
    """Rebuild the views and print the value stream per stage."""
    config = _load(args, secrets=False)
    with Store(config.db_path) as store:
        result = run_map(config, store, incremental=args.incremental)
        if result.incremental:
            out(f"incremental map: {result.recomputed} changes recomputed")
        print_value_stream(store)
    return EXIT_OK


def cmd_query(args: argparse.Namespace) -> int:
    """Run one SQL statement against the database and print the result."""
    config = _load(args, secrets=False)
    store, is_snapshot = open_for_reading(config.db_path, wait_s=args.wait)
    if is_snapshot:
        log.warning("vsm is writing %s; answering from the snapshot it last published", config.db_path)
    with store:
        try:
            headers, rows = store.query(args.sql)
        except duckdb.Error as exc:  # DuckDB's errors name the problem well; keep them to one line
            raise QueryError(str(exc).splitlines()[0]) from None
    out(render_rows(headers, rows, args.format))
    return EXIT_OK


class QueryError(RuntimeError):
    """The SQL given to `vsm query` failed."""


def cmd_export(args: argparse.Namespace) -> int:
    """Export the public views and typed tables as hive-partitioned Parquet or CSV for a lakehouse."""
    from collector.export import ExportError, ExportUsageError, export

    config = _load(args, secrets=False)
    try:
        result = export(config.db_path, Path(args.out), args.format, wait_s=args.wait)
    except ExportUsageError as exc:
        raise UsageError(str(exc)) from None
    except ExportError as exc:
        log.error("%s", exc)
        return EXIT_SOURCE_FAILED
    out(f"exported {len(result.exported)} views and tables ({result.rows} rows) as {result.format} to "
        f"{result.folder} in {result.seconds:.1f}s; layout in {result.folder / 'schema.json'}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the read-only web app (its pages and their JSON) until interrupted."""
    from collector.config import ConfigError, parse_duration, secret
    from collector.serve import serve
    from collector.store import StoreError

    config = _load(args, secrets=False)
    try:
        token = secret(config.serve.token_env)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        serve(config.db_path, args.host, args.port, token,
              parse_duration(config.schedule.stale_after, "schedule.stale_after"))
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Show how a change's figures (or a stage's figure for a week) were derived."""
    from collector.present.explain import UnknownChange, change, stage_week
    from collector.present.weeks import parse_week
    from collector.render.terminal import render_change, render_stage_week

    config = _load(args, secrets=False)
    if bool(args.change) == bool(args.stage):
        raise UsageError("give either a change (owner/repo#123) or --stage NAME --week W")
    store, _ = open_for_reading(config.db_path, wait_s=args.wait)
    with store:
        if args.change:
            try:
                out(render_change(change(store.con, args.change), config.calendar.timezone))
            except UnknownChange:
                raise UsageError(f"{args.change} is not a merged pull request in the database "
                                 "(ids look like owner/repo#123; run `vsm map` after collecting)") from None
            return EXIT_OK
        if not args.week:
            raise UsageError("--stage needs --week (e.g. 2026-W47)")
        try:
            week = parse_week(args.week)
        except ValueError as exc:
            raise UsageError(f"--week: {exc}") from None
        out(render_stage_week(stage_week(store.con, args.stage, week)))
    return EXIT_OK


class UsageError(RuntimeError):
    """The command line asks for something that cannot be done; str() is one line."""


def cmd_report(args: argparse.Namespace) -> int:
    """Build the weekly flow report, always write it to disk, and mail it with --send."""
    import datetime as dt

    from collector.present.views import NotMapped
    from collector.present.weeks import last_complete_week, parse_week
    from collector.render.email.mail import MailError
    from collector.weekly_report import build_report, write_report

    config = _load(args, secrets=args.send)
    if args.send and config.report is None:
        raise UsageError("--send needs a [report] section with recipients (see config.example.toml)")
    try:
        week = parse_week(args.week) if args.week else last_complete_week(dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise UsageError(f"--week: {exc}") from None
    store, _ = open_for_reading(config.db_path, wait_s=args.wait)
    with store:
        try:
            report = build_report(store.con, week, config.report)
        except NotMapped as exc:
            raise QueryError(str(exc)) from None
    path = write_report(report, Path(args.out) if args.out else config.report_folder)
    out(f"report for {report.label} written to {path}")
    if args.send and config.report is not None:
        try:
            from collector.weekly_report import send_report

            send_report(report, config.report)
        except MailError as exc:
            log.error("%s (the report is still on disk: %s)", exc, path)
            return EXIT_SOURCE_FAILED
        out(f"report for {report.label} sent to {', '.join(config.report.to + config.report.cc)}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """One unattended pass for cron: collect every source, map, publish the snapshot."""
    from collector.scheduler import run_once

    return run_once(_load(args))


def cmd_daemon(args: argparse.Namespace) -> int:
    """Run on the configured schedules until SIGTERM/SIGINT."""
    from collector.scheduler import Daemon

    return Daemon(_load(args)).run()


def cmd_status(args: argparse.Namespace) -> int:
    """Per source: last success, last error, last run's counts, freshness; non-zero when stale."""
    import json

    from collector.present.health import source_status

    config = _load(args, secrets=False)
    store, _ = open_for_reading(config.db_path, wait_s=args.wait)
    with store:
        statuses = source_status(config, store)
    if args.json:
        out(json.dumps([s.as_json() for s in statuses], indent=2))
    else:
        out(status_table(statuses))
    return EXIT_STALE if any(s.stale for s in statuses) else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole pipeline against the simulated Pet Clinic world."""
    from collector import demo
    from collector.present.explain import slowest_change
    from collector.present.weeks import week_label

    if args.serve:
        return demo.serve(Path(args.dir), seed=args.seed, host=args.host, port=args.port, on_result=out)
    db = Path(args.db) if args.db else Path(args.dir) / "vsm.duckdb"
    config_path = demo.run(db, seed=args.seed, on_result=out)
    with Store(db, read_only=True) as store:
        out()
        print_value_stream(store)
        slowest = slowest_change(store.con)
    if slowest is not None:
        out()
        out(QUERY_HINTS.format(config=config_path, db=db, slowest=slowest[0], week=week_label(slowest[1]),
                               export=db.parent / "export"))
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per verb."""
    parser = argparse.ArgumentParser(
        prog="vsm",
        description="Value-stream telemetry: measure where delivery time goes, from GitHub data into DuckDB.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log detail (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str,
                needs_config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        if needs_config:
            p.add_argument("--config", "-c", required=True, metavar="FILE", help="TOML config (see config.example.toml)")
        p.set_defaults(handler=handler)
        return p

    demo = command("demo", cmd_demo, "Run collect + map against a bundled simulated Pet Clinic team (no credentials).",
                   needs_config=False)
    demo.add_argument("--dir", default="vsm-demo", help="folder for the demo database and config (default: vsm-demo)")
    demo.add_argument("--db", help="database file to (re)create (default: DIR/vsm.duckdb)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulated history (default: 7)")
    demo.add_argument("--serve", action="store_true",
                      help="after the demo, serve the web app over DIR/vsm.duckdb and print its URL; the simulated "
                           "servers stay up for `vsm collect --config DIR/vsm.toml`")
    demo.add_argument("--host", default="127.0.0.1", help="with --serve: address of the web app (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8765, help="with --serve: port of the web app (default 8765; 0: any)")

    collect_p = command("collect", cmd_collect, "Fetch new and changed data from every configured source.")
    collect_p.add_argument("--source", action="append", choices=list(SOURCE_SECTIONS),
                           help="collect only this source (repeatable)")
    map_p = command("map", cmd_map, "Rebuild the value-stream views and print the per-stage summary, the value "
                    "stream map and the DORA four keys.")
    map_p.add_argument("--incremental", action="store_true",
                       help="recompute only the changes still in flight (falls back to a full map when settings "
                            "changed); the default rebuilds everything")
    explain = command("explain", cmd_explain, "Show a change's timeline and how each stage figure was derived, "
                      "or list the changes behind a stage's figure for a week.")
    explain.add_argument("change", nargs="?", help="the change, as owner/repo#123")
    explain.add_argument("--stage", help="a stage name (code, review, merge, build, staging, release, ...)")
    explain.add_argument("--week", help="with --stage: an ISO week like 2026-W47 (or a date in it)")
    explain.add_argument("--wait", type=float, default=10.0, metavar="SECONDS", help=argparse.SUPPRESS)
    report = command("report", cmd_report, "Build the weekly flow report (HTML with the value stream map), write it "
                     "to disk and, with --send, mail it.")
    report.add_argument("--week", help="ISO week like 2026-W47 (default: the last complete week, UTC)")
    report.add_argument("--out", help="file (.html) or folder to write to (default: [report] folder, reports/)")
    report.add_argument("--send", action="store_true", help="also mail it to [report] to/cc")
    report.add_argument("--wait", type=float, default=10.0, metavar="SECONDS", help=argparse.SUPPRESS)
    command("run", cmd_run, "One unattended pass for cron: collect all sources, map, publish the snapshot, and "
            "mail the weekly report when due and not yet sent. Exit 0 ok, 1 a source or the mail failed, 2 config "
            "error.")
    command("daemon", cmd_daemon, "Collect, map and send the weekly report on the [schedule] crons until SIGTERM (then exit 0).")
    status = command("status", cmd_status, "Health per source; exit 3 when a source is staler than "
                     "[schedule] stale_after.")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for a busy database when no snapshot exists (default 10)")
    query = command("query", cmd_query, "Run SQL against the database (views: changes, stage_times, deployments).")
    query.add_argument("sql", help="one SQL statement")
    query.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    query.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                       help="how long to wait for a busy database when no snapshot exists (default 10)")
    serve_p = command("serve", cmd_serve, "Serve the value stream map read-only in a browser (and as JSON).")
    serve_p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve_p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    export_p = command("export", cmd_export, "Export the public views and typed tables for a lakehouse: "
                       "hive-partitioned by repo and ISO week, with DIR/schema.json.")
    export_p.add_argument("--format", choices=["parquet", "csv"], default="parquet",
                          help="file format (default: parquet)")
    export_p.add_argument("--out", required=True, metavar="DIR",
                          help="folder to write; an earlier export there is replaced")
    export_p.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                          help="how long to wait for a busy database when no snapshot exists (default 10)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vsm` console script; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    started = time.monotonic()
    try:
        code = args.handler(args)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return EXIT_CONFIG
    except (StoreError, QueryError) as exc:
        log.error("%s", exc)
        return EXIT_SOURCE_FAILED
    except UsageError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        log.warning("interrupted")
        return 130
    log.debug("%s finished in %.1fs", args.command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
