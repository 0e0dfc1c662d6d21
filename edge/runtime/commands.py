"""The kiosk's commands: ``run``, ``recognize``, ``build`` (a TensorRT engine on the device),
``status``, ``sync``, ``screen`` (the kiosk's browser), ``homeassistant remove``, ``check-config``,
``doctor`` (each configured part tried for real), ``config-reference`` and ``health-reference``;
and the workstation's side of model releases, ``keygen`` and ``publish`` (same runtime
dependencies as the kiosk that verifies)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edge.core.command_line import (
    CONFIG_HELP,
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    fraction,
    positive_float,
    positive_int,
    print_error,
)
from edge.core.config import Config
from edge.core.errors import AslEdgeError

# Where scripts/install.sh keeps the service's credentials (and Dockerfile.jetson its image's).
INSTALLED_CREDENTIALS = "/etc/asl-edge/credentials"


def _open_recognizer(args: argparse.Namespace):
    from edge.core.bundle import load_bundle, resolve_bundle_path
    from edge.core.config import load_config
    from edge.runtime.backends.select import open_backend
    from edge.runtime.model import model_cache_dir
    from edge.runtime.recognize import VideoRecognizer

    loaded = load_config(args.config)
    config = loaded.model
    bundle = load_bundle(resolve_bundle_path(args.bundle, config.bundle))
    backend, _ = open_backend(
        bundle,
        config.backend,
        args.threads or config.threads,
        config.precision,
        config.build_if_missing,
        model_cache_dir(loaded.storage.state_dir),
    )
    top_k = args.top_k or config.top_k
    combine = args.combine or config.combine
    return VideoRecognizer(backend, combine, top_k, config.min_confidence, args.sampling)  # type: ignore[arg-type]


def cmd_recognize(args: argparse.Namespace) -> int:
    recognizer = _open_recognizer(args)
    failed = 0
    try:
        for source in args.sources:
            try:
                recognition = recognizer.recognize_source(source)
            except AslEdgeError as exc:
                failed += 1
                message = str(exc)
                print_error(message if source in message else f"{source}: {message}")
                continue
            if args.json:
                print(json.dumps(recognition.to_json(), ensure_ascii=False), flush=True)
            else:
                decision = recognition.result
                print(f"{source}\t{decision.word}\t{decision.confidence:.3f}", flush=True)
    finally:
        recognizer.backend.close()
    return EXIT_BAD_INPUT if failed else EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from edge.runtime.backends.tensorrt.build import build_engine

    engine = build_engine(Path(args.bundle), args.precision, args.workspace_mb, args.dla_core)
    print(f"wrote {engine} and {engine.name}.json")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from edge.core.config import find_config_path
    from edge.runtime.daemon import run_daemon
    from edge.runtime.preflight import load_checked

    path = find_config_path(args.config)
    checked = load_checked(path)
    logging.getLogger().setLevel(checked.config.logging.level.upper())
    return run_daemon(checked.config, path, checked.bundle)


def cmd_screen(args: argparse.Namespace) -> int:
    import os

    from edge.core.config import load_config
    from edge.runtime.screen.kiosk import kiosk_command, wait_for_page

    config = load_config(args.config)
    command = kiosk_command(config.screen, args.browser, args.cage, tuple(args.browser_args))
    address = command[-1].split("#", 1)[0]
    print(f"waiting for the screen at {address} ...", flush=True)
    if not wait_for_page(address, args.wait_s):
        print_error(f"the screen at {address} did not answer in {args.wait_s:g} s (is asl-edge run up?)")
        return EXIT_FAILURE
    os.execv(command[0], command)  # the browser takes this process's place (and its systemd unit)
    return EXIT_FAILURE


def cmd_status(args: argparse.Namespace) -> int:
    from edge.core.config import load_config
    from edge.runtime.health import check_health_file
    from edge.runtime.status import collect_status, format_status

    config = load_config(args.config)
    if args.check:
        alive, why = check_health_file(Path(config.storage.state_dir).expanduser())
        if not alive:
            print_error(why)
            return EXIT_FAILURE
        print(why)
        return EXIT_OK
    timeout_s = args.timeout_s if args.timeout_s is not None else config.health.interval_s + 2.0
    report = collect_status(config, timeout_s)
    print(json.dumps(report.to_json(), ensure_ascii=False) if args.json else format_status(report))
    problem = report.problem()
    if problem:
        print_error(problem)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    from edge.core.config import load_config
    from edge.runtime.sync import FeedbackSync, SyncBusy, SyncInterrupted, UploadFailed

    config = load_config(args.config)
    sync = FeedbackSync(config)
    try:
        result = sync.run_pass(lock_wait_s=args.wait_s)
    except (SyncBusy, UploadFailed, SyncInterrupted) as exc:
        print_error(str(exc))
        return EXIT_FAILURE
    print(
        f"uploaded {result.rows} feedback rows in {result.batches} batches and {result.clips} clips to "
        f"s3://{config.sync.bucket}/{config.sync.prefix.strip('/')}; {result.backlog} rows wait",
        flush=True,
    )
    return EXIT_OK


def cmd_homeassistant_remove(args: argparse.Namespace) -> int:
    from edge.core.config import load_config

    config = load_config(args.config)
    if args.if_enabled and not config.homeassistant.enabled:
        print("Home Assistant discovery is off in the config ([homeassistant] enabled); nothing to remove")
        return EXIT_OK
    from edge.runtime.homeassistant import HomeAssistantError, remove_device

    try:
        topic = remove_device(config, args.timeout_s)
    except HomeAssistantError as exc:
        print_error(str(exc))
        return EXIT_FAILURE
    print(f"removed the kiosk {config.device.id} from Home Assistant (empty retained config on {topic})")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from edge.runtime.release_keys import generate_keys

    private, public, key_id = generate_keys(Path(args.out))
    print(f"wrote {private} (private, mode 0600: keep it on the workstation) and {public}")
    print(f"key id {key_id}: copy {public.name} to each kiosk and name it in [update] public_key")
    return EXIT_OK


def _rollout_problem(args: argparse.Namespace) -> str | None:
    """Why the staged-rollout flags of ``publish`` do not fit together, if they do not."""
    if args.candidate and (args.promote is not None or args.no_promote):
        return "publish --candidate rolls out a new release; it takes neither --promote nor --no-promote"
    if args.candidate and args.fraction is None:
        return (
            "publish --candidate needs --fraction F (the share of kiosks that take it, above 0 and at most 1)"
        )
    if not args.candidate and (args.fraction is not None or args.shadow):
        return "--fraction and --shadow go with --candidate"
    if args.fraction is not None and args.fraction <= 0:
        return "--fraction must be above 0"
    return None


def cmd_publish(args: argparse.Namespace) -> int:
    from edge.runtime.publish import RolloutStart, promote_release, publish_release
    from edge.runtime.releases import ChannelError
    from edge.runtime.s3 import S3Settings

    settings = S3Settings(endpoint_url=args.endpoint_url or "")
    promoting = args.promote is not None
    problem = _rollout_problem(args)
    if problem:
        print_error(problem)
        return EXIT_BAD_INPUT
    if promoting and (len(args.targets) != 1 or args.version or args.no_promote):
        print_error("publish --promote VERSION takes the channel (s3://BUCKET/PREFIX) alone")
        return EXIT_BAD_INPUT
    if not promoting and (len(args.targets) != 2 or not args.version):
        print_error("publish needs a bundle folder, a channel (s3://BUCKET/PREFIX) and --version")
        return EXIT_BAD_INPUT
    rollout = RolloutStart(args.fraction, args.shadow) if args.candidate else None
    try:
        if promoting:
            done = promote_release(args.targets[0], args.promote, Path(args.key), settings)
        else:
            bundle, channel = Path(args.targets[0]), args.targets[1]
            done = publish_release(
                bundle,
                channel,
                args.version,
                Path(args.key),
                settings,
                not args.no_promote,
                args.force,
                rollout,
            )
            print(
                f"release {done.version}: {done.files} files, {done.size} bytes, model {done.model_id}, "
                f"signed with key {done.key_id}, uploaded to {done.channel}/releases/{done.version}/"
            )
            if done.forced:
                print(f"forced past the gate, as its signed release.json records: {done.forced}")
    except ChannelError as exc:
        print_error(str(exc))
        return EXIT_FAILURE
    if done.sequence is None:
        print(f"{done.channel} still points where it did; publish --promote {done.version} makes it current")
    elif done.candidate is not None:
        how = "run in shadow beside it" if done.candidate.shadow else "served"
        print(
            f"{done.channel} rolls out {done.version} to {done.candidate.fraction * 100:g}% of its kiosks "
            f"({how}); the others stay on {done.stable} (sequence {done.sequence})"
        )
    else:
        print(f"{done.channel} now points to {done.version} (sequence {done.sequence})")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge.runtime.preflight import check_file

    _, problems = check_file(args.file)
    for problem in problems:
        print(problem)
    if problems:
        return EXIT_BAD_INPUT
    print(f"{args.file}: ok")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    import os

    from edge.core.config import find_config_path, read_config
    from edge.runtime.doctor import FAIL, OK, examine

    # The service reads its secrets from $CREDENTIALS_DIRECTORY; run by hand, doctor reads the same files.
    if args.credentials:
        os.environ["CREDENTIALS_DIRECTORY"] = args.credentials
    elif "CREDENTIALS_DIRECTORY" not in os.environ and Path(INSTALLED_CREDENTIALS).is_dir():
        os.environ["CREDENTIALS_DIRECTORY"] = INSTALLED_CREDENTIALS
    path = find_config_path(args.config)
    config, problems = (Config(), []) if path is None else read_config(path)
    if problems:
        for problem in problems:
            print(f"config  FAIL: {problem}")
        print_error(f"{path}: the config is refused (asl-edge check-config {path}); nothing else was tried")
        return EXIT_BAD_INPUT
    failed, tried = [], 0
    for finding in examine(config, path, args.timeout_s):
        print(finding.line(), flush=True)
        tried += finding.status != "skipped"
        if finding.status == FAIL:
            failed.append(finding.part)
    if failed:
        print(f"doctor: {len(failed)} of {tried} parts failed: {', '.join(failed)}")
        return EXIT_FAILURE
    print(f"doctor: every configured part works ({tried} {OK})")
    return EXIT_OK


def cmd_config_reference(args: argparse.Namespace) -> int:
    from edge.core.config_doc import render_reference, write_reference

    if args.write:
        changed = write_reference(Path(args.write))
        print(f"{args.write}: configuration reference {'updated' if changed else 'already current'}")
    else:
        print(render_reference(), end="")
    return EXIT_OK


def cmd_health_reference(args: argparse.Namespace) -> int:
    from edge.core.config_doc import write_reference
    from edge.runtime.health_schema import END, START, render_health_reference

    if args.write:
        changed = write_reference(Path(args.write), render_health_reference, START, END)
        print(f"{args.write}: health reference {'updated' if changed else 'already current'}")
    else:
        print(render_health_reference(), end="")
    return EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    recognize = commands.add_parser("recognize", help="recognize the sign in video files or URLs")
    recognize.add_argument("sources", nargs="+", metavar="SOURCE", help="video file or http(s) URL")
    recognize.add_argument("--bundle", help="model bundle (default: config, else the demo bundle)")
    recognize.add_argument("--config", help=CONFIG_HELP)
    recognize.add_argument("--top-k", type=positive_int, help="ranked words to report")
    recognize.add_argument("--combine", choices=("mean", "max"), help="score combination over time")
    recognize.add_argument(
        "--sampling", choices=("windows", "resample"), help="override the bundle's temporal sampling"
    )
    recognize.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    recognize.add_argument("--json", action="store_true", help="one JSON object per source")
    recognize.set_defaults(handler=cmd_recognize)

    build = commands.add_parser("build", help="TensorRT engine for this device (on the Jetson)")
    build.add_argument("bundle", help="model bundle directory")
    build.add_argument("--precision", choices=("fp16", "int8", "fp32"), default="fp16")
    build.add_argument("--workspace-mb", type=positive_int, default=1024, help="builder workspace (MiB)")
    build.add_argument("--dla-core", type=int, help="build for this DLA core (GPU fallback allowed)")
    build.set_defaults(handler=cmd_build)

    run = commands.add_parser("run", help="the kiosk daemon: camera to MQTT words, feedback kept")
    run.add_argument("--config", help=CONFIG_HELP)
    run.set_defaults(handler=cmd_run)

    sync = commands.add_parser("sync", help="upload unsynced feedback to S3 now (one pass, as the daemon's)")
    sync.add_argument("--config", help=CONFIG_HELP)
    sync.add_argument(
        "--wait-s", type=float, default=60.0, help="seconds to wait for a pass in progress (default 60)"
    )
    sync.set_defaults(handler=cmd_sync)

    status = commands.add_parser(
        "status", help="the kiosk's state, health and backlog (broker and local state directory)"
    )
    status.add_argument("--config", help=CONFIG_HELP)
    status.add_argument(
        "--timeout-s",
        type=positive_float,
        help="seconds to wait for a health message (default: [health] interval_s + 2)",
    )
    status.add_argument(
        "--check",
        action="store_true",
        help="liveness probe without the broker: exit 0 when health.json is younger than 3 intervals",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(handler=cmd_status)

    screen = commands.add_parser(
        "screen", help="the kiosk's browser: Chromium in kiosk mode on the daemon's page, once it answers"
    )
    screen.add_argument("--config", help=CONFIG_HELP)
    screen.add_argument("--cage", action="store_true", help="run the browser inside cage (no desktop)")
    screen.add_argument("--browser", help="browser command or path (default: the first Chromium found)")
    screen.add_argument(
        "--wait-s", type=positive_float, default=1800.0, help="seconds to wait for the page (default 1800)"
    )
    screen.add_argument("browser_args", nargs="*", help="extra browser arguments, after --")
    screen.set_defaults(handler=cmd_screen)

    homeassistant = commands.add_parser(
        "homeassistant", help="Home Assistant MQTT discovery ([homeassistant] in the config)"
    )
    actions = homeassistant.add_subparsers(dest="action", required=True, metavar="ACTION")
    remove = actions.add_parser(
        "remove",
        help="delete the kiosk's device from Home Assistant (stop the service first, or it comes back)",
    )
    remove.add_argument("--config", help=CONFIG_HELP)
    remove.add_argument(
        "--if-enabled", action="store_true", help="do nothing when [homeassistant] enabled is false"
    )
    remove.add_argument(
        "--timeout-s", type=positive_float, default=10.0, help="seconds to wait for the broker (default 10)"
    )
    remove.set_defaults(handler=cmd_homeassistant_remove)

    keygen = commands.add_parser("keygen", help="an Ed25519 key pair to sign model releases")
    keygen.add_argument("--out", required=True, help="folder for asl-edge.key (private) and asl-edge.pub")
    keygen.set_defaults(handler=cmd_keygen)

    publish = commands.add_parser(
        "publish", help="sign a bundle and publish it to a release channel in S3 (or --promote a release)"
    )
    publish.add_argument(
        "targets",
        nargs="+",
        metavar="BUNDLE CHANNEL",
        help="the bundle folder and the channel s3://BUCKET/PREFIX (with --promote: the channel alone)",
    )
    publish.add_argument("--version", help="the new release's version (letters, digits, '.', '_', '-')")
    publish.add_argument("--key", required=True, help="the private key (asl-edge keygen)")
    publish.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS S3)")
    publish.add_argument(
        "--promote", metavar="VERSION", help="make a release already in the channel current (rollback)"
    )
    publish.add_argument(
        "--no-promote", action="store_true", help="upload the release without making it current"
    )
    publish.add_argument(
        "--force",
        action="store_true",
        help="publish a fine-tuned bundle that has not passed asl-edge evaluate (the release records it)",
    )
    publish.add_argument(
        "--candidate",
        action="store_true",
        help="start a staged rollout: the release goes to --fraction of the kiosks, the stable one stays "
        "for the rest (asl-edge rollout step decides what follows)",
    )
    publish.add_argument(
        "--fraction",
        type=fraction,
        metavar="F",
        help="with --candidate: the share of kiosks that take it (above 0, at most 1)",
    )
    publish.add_argument(
        "--shadow",
        action="store_true",
        help="with --candidate: those kiosks keep serving the stable release and run the candidate beside "
        "it, never showing its words",
    )
    publish.set_defaults(handler=cmd_publish)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(handler=cmd_check_config)

    doctor = commands.add_parser(
        "doctor",
        help="try each configured part for real (camera, model, broker, S3, channel, disk, clock): "
        "one line each, exit 1 when one fails",
    )
    doctor.add_argument("--config", help=CONFIG_HELP)
    doctor.add_argument(
        "--timeout-s", type=positive_float, default=20.0, help="seconds each part may take (default 20)"
    )
    doctor.add_argument(
        "--credentials",
        help="the service's credentials folder "
        f"(default: $CREDENTIALS_DIRECTORY, else {INSTALLED_CREDENTIALS})",
    )
    doctor.set_defaults(handler=cmd_doctor)

    reference = commands.add_parser(
        "config-reference", help="every config key as Markdown tables, from the config schema"
    )
    reference.add_argument("--write", metavar="FILE", help="replace the generated block in FILE (README.md)")
    reference.set_defaults(handler=cmd_config_reference)

    health = commands.add_parser(
        "health-reference", help="every field of the health message as a Markdown table, from its schema"
    )
    health.add_argument("--write", metavar="FILE", help="replace the generated block in FILE (README.md)")
    health.set_defaults(handler=cmd_health_reference)
