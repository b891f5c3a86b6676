"""docker-compose.yml and the Dockerfile checked against the project, since Docker does not run here.

Every command must be one the project really has (a console script and its
arguments, or a `celery -A worker` subcommand with options Celery accepts and
queues the app declares); every AVTOR_* variable must be a setting; health
checks and start order must be there; beat must stay single.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery.bin.base import CLIContext
from celery.bin.celery import celery

from cli.main import parser as avtorlm_parser
from config import Settings, load_settings
from licenseserver.cli import _parser as license_server_parser
from worker.app import ADMIN_QUEUE, ENROLMENT_QUEUE, app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
CELERY_SERVICES = ["worker-enrolment", "worker-admin", "beat"]
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def run_command(argv: list[str]) -> dict[str, Any]:
    """Parse `argv` with the real command line of the program it names; return what it understood."""
    program, arguments = argv[0], argv[1:]
    if program == "celery":
        assert arguments[:2] == ["-A", "worker"], f"{argv}: the app is `celery -A worker`"
        sub, rest = arguments[2], arguments[3:]
        if sub == "flower":
            return {"flower": rest}
        assert sub in celery.commands, f"{argv}: celery has no {sub!r} command"
        context = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
        return {"celery": sub, **celery.commands[sub].make_context(sub, list(rest), obj=context).params}
    scripts = PYPROJECT["project"]["scripts"]
    assert program in scripts, f"{argv}: {program} is not a console script of the project"
    if program == "avtorlm":
        return vars(avtorlm_parser().parse_args(arguments))
    assert program == "avtor-license-server"
    return vars(license_server_parser().parse_args(arguments))


def health_argv(service: str) -> list[str]:
    test = SERVICES[service]["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1].replace("$$HOSTNAME", "host"))
    assert test[0] == "CMD"
    return list(test[1:])


def with_defaults(value: str) -> str:
    """A compose value with each ${NAME:-default} replaced by its default."""
    return INTERPOLATION.sub(lambda match: match.group(2) or "", value)


def test_the_services_are_the_whole_system() -> None:
    assert set(SERVICES) == {
        "redis",
        "postgres",
        "migrate",
        "worker-enrolment",
        "worker-admin",
        "beat",
        "license-server",
        "flower",
    }


@pytest.mark.parametrize(
    "service", ["migrate", "worker-enrolment", "worker-admin", "beat", "license-server", "flower"]
)
def test_each_command_is_a_real_entry_point_of_the_project(service: str) -> None:
    assert SERVICES[service]["build"] == "."
    understood = run_command(SERVICES[service]["command"])
    if service == "migrate":
        assert understood["command"] == "migrate"
    if service == "license-server":
        assert (understood["host"], understood["port"]) == ("0.0.0.0", 8470)


def test_each_queue_has_its_own_worker_and_exists_in_the_app() -> None:
    enrolment = run_command(SERVICES["worker-enrolment"]["command"])
    admin = run_command(SERVICES["worker-admin"]["command"])
    assert (enrolment["queues"], admin["queues"]) == ([ENROLMENT_QUEUE], [ADMIN_QUEUE])
    assert {queue.name for queue in app.conf.task_queues} == {ENROLMENT_QUEUE, ADMIN_QUEUE}


def test_flower_comes_from_the_monitoring_extra_that_the_image_installs() -> None:
    assert any(
        requirement.startswith("flower")
        for requirement in PYPROJECT["project"]["optional-dependencies"]["monitoring"]
    )
    assert 'pip install --no-index --no-build-isolation ".[monitoring]"' in DOCKERFILE


def test_the_image_installs_the_locked_versions() -> None:
    assert "pip install --require-hashes --no-deps -r requirements/image.txt" in DOCKERFILE
    locked = (ROOT / "requirements" / "image.txt").read_text(encoding="utf-8")
    assert re.search(r"^flower==", locked, re.MULTILINE), "requirements/image.txt lacks the monitoring extra"


def test_the_image_holds_every_package_of_the_project() -> None:
    packages = [
        pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert f"COPY {package} ./{package}" in DOCKERFILE, f"the Dockerfile does not copy {package}/"


def test_every_avtor_variable_is_a_setting_and_the_defaults_are_valid() -> None:
    named = set(re.findall(r"\bAVTOR_[A-Z0-9_]+", COMPOSE_TEXT))
    settings = {f"AVTOR_{name.upper()}" for name in Settings.model_fields}
    assert named and named <= settings, f"not settings: {sorted(named - settings)}"
    environment = COMPOSE["x-avtor-environment"]
    values = {
        name.removeprefix("AVTOR_").lower(): with_defaults(value) for name, value in environment.items()
    }
    loaded = load_settings(**values)
    assert loaded.store_url.startswith("postgresql+psycopg://avtor:")
    for service in ("migrate", *CELERY_SERVICES, "flower"):
        assert SERVICES[service]["environment"] == environment


def test_redis_keeps_queued_work_append_only_and_never_evicts_it() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert health_argv("redis") == ["redis-cli", "ping"]
    assert health_argv("postgres")[0] == "pg_isready"


def test_health_checks_use_real_commands() -> None:
    for service in ("worker-enrolment", "worker-admin"):
        argv = health_argv(service)
        assert run_command(argv)["celery"] == "inspect"
    for service in ("license-server", "flower"):
        assert health_argv(service)[:2] == ["python", "-c"]


def test_start_order_waits_for_healthy_servers_and_the_finished_migration() -> None:
    def conditions(service: str) -> dict[str, str]:
        return {name: rule["condition"] for name, rule in SERVICES[service]["depends_on"].items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    for service in CELERY_SERVICES:
        assert conditions(service)["migrate"] == "service_completed_successfully"
        assert conditions(service)["redis"] == "service_healthy"
    assert conditions("worker-admin")["license-server"] == "service_healthy"
    assert conditions("flower") == {"redis": "service_healthy"}
    assert SERVICES["migrate"]["restart"] == "no"
    for service, definition in SERVICES.items():
        for dependency in definition.get("depends_on", {}):
            if conditions(service)[dependency] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], (
                    f"{service} waits for {dependency}'s health check"
                )


def test_there_is_exactly_one_beat_and_it_is_not_scaled() -> None:
    beats = [name for name, service in SERVICES.items() if run_command_name(service) == "beat"]
    assert beats == ["beat"]
    beat = SERVICES["beat"]
    assert beat.get("scale", 1) == 1
    assert beat.get("deploy", {}).get("replicas", 1) == 1


def run_command_name(service: dict[str, Any]) -> str | None:
    command = service.get("command") or []
    return command[3] if command[:3] == ["celery", "-A", "worker"] else None
