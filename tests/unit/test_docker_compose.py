"""docker-compose.yml and the Dockerfile checked against the project, since Docker does not run here.

Every command must be one the project really has (a console script and its
arguments, or a `celery -A worker` subcommand with options Celery accepts and
queues the app declares); every AVTOR_* variable must be a setting; each process
must connect to Redis as the user of its role, and Redis must know only those
users (config/redis_users.py); health checks and start order must be there; beat
must stay single. tests/integration/test_redis_users.py runs Redis's entrypoint
script and health check against a real redis-server.
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
from config.redis_users import USER_NAMES, Role, acl_file_template, hash_placeholder
from licenseserver.cli import _parser as license_server_parser
from worker.app import ADMIN_QUEUE, app
from worker.enrolment_consumer import _parser as enrolment_consumer_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
# The services that connect to Redis, and the user each connects as.
REDIS_USER_OF = {
    "enrolment": Role.WORKER,
    "worker-admin": Role.WORKER,
    "beat": Role.WORKER,
    "avtorlm": Role.ADMIN,
}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# What a required ${NAME:?message} stands for in these tests.
REQUIRED = "a-password-given-in-dot-env"


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
    if program == "avtor-enrolment-consumer":
        return vars(enrolment_consumer_parser().parse_args(arguments))
    assert program == "avtor-license-server"
    return vars(license_server_parser().parse_args(arguments))


def service_argv(service: str) -> list[str]:
    """What a service runs: its entrypoint (if it sets one) and its command."""
    return [*SERVICES[service].get("entrypoint", []), *SERVICES[service]["command"]]


def health_argv(service: str) -> list[str]:
    test = SERVICES[service]["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1].replace("$$HOSTNAME", "host"))
    assert test[0] == "CMD"
    return list(test[1:])


def with_defaults(value: str) -> str:
    """A compose value with each ${NAME:-default} replaced by its default (and ${NAME:?...} by REQUIRED)."""
    return INTERPOLATION.sub(lambda match: REQUIRED if match.group(2) == "?" else match.group(3) or "", value)


def required_variable(value: str) -> str:
    """The name of the one ${NAME:?...} variable that `value` requires."""
    [(name, kind, _)] = INTERPOLATION.findall(value)
    assert kind == "?", f"{value} should require a value, not default to one"
    return str(name)


def test_the_services_are_the_whole_system() -> None:
    assert set(SERVICES) == {
        "redis",
        "postgres",
        "migrate",
        "enrolment",
        "worker-admin",
        "beat",
        "license-server",
        "avtorlm",
    }


@pytest.mark.parametrize(
    "service", ["migrate", "enrolment", "worker-admin", "beat", "license-server", "avtorlm"]
)
def test_each_command_is_a_real_entry_point_of_the_project(service: str) -> None:
    assert SERVICES[service]["build"] == "."
    understood = run_command(service_argv(service))
    if service in ("migrate", "avtorlm"):
        assert understood["command"] == {"migrate": "migrate", "avtorlm": "status"}[service]
    if service == "license-server":
        assert (understood["host"], understood["port"]) == ("0.0.0.0", 8470)
    if service == "enrolment":
        assert understood["name"] is None, "each replica names itself after its container"


def test_the_admin_worker_takes_the_admin_queue_only_and_sends_nothing_its_redis_user_may_not() -> None:
    admin = run_command(SERVICES["worker-admin"]["command"])
    assert admin["queues"] == [ADMIN_QUEUE]
    assert {queue.name for queue in app.conf.task_queues} == {ADMIN_QUEUE}
    # No events, heartbeats, gossip or mingle: avtor-worker may not publish or subscribe to them.
    assert (admin["without_heartbeat"], admin["without_gossip"], admin["without_mingle"]) == (
        True,
        True,
        True,
    )
    assert not admin["task_events"]
    assert app.conf.worker_send_task_events is False
    assert app.conf.worker_enable_remote_control is False


def test_enrolment_consumers_scale_and_stop_gracefully() -> None:
    enrolment = SERVICES["enrolment"]
    assert enrolment["deploy"]["replicas"] >= 2
    assert "container_name" not in enrolment and "hostname" not in enrolment
    assert enrolment["stop_grace_period"] == "30s"


def test_the_command_line_runs_on_demand_only() -> None:
    assert SERVICES["avtorlm"]["profiles"] == ["cli"]
    assert SERVICES["avtorlm"]["entrypoint"] == ["avtorlm"]


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
    assert "AVTOR_REDIS_URL" not in environment, "each process connects as the Redis user of its role"
    for service in ("migrate", "license-server"):
        assert SERVICES[service]["environment"] == environment
    for service in REDIS_USER_OF:
        own = SERVICES[service]["environment"]
        assert {name: value for name, value in own.items() if name != "AVTOR_REDIS_URL"} == environment
        load_settings(
            **{name.removeprefix("AVTOR_").lower(): with_defaults(value) for name, value in own.items()}
        )


@pytest.mark.parametrize("service", REDIS_USER_OF)
def test_each_process_connects_to_redis_as_the_user_of_its_role(service: str) -> None:
    url = SERVICES[service]["environment"]["AVTOR_REDIS_URL"]
    role = REDIS_USER_OF[service]
    user, _, rest = url.removeprefix("redis://").partition(":")
    assert user == USER_NAMES[role]
    assert required_variable(url) == f"REDIS_{role.value.upper()}_PASSWORD"
    assert rest.endswith("@redis:6379/0")
    assert (
        SERVICES["redis"]["environment"][required_variable(url)]
        == f"${{{required_variable(url)}:?see docs/docker.md}}"
    )


def test_redis_knows_only_the_three_users_with_the_passwords_given() -> None:
    redis = SERVICES["redis"]
    assert redis["entrypoint"] == ["sh", "/etc/avtor-redis/write-users.sh"]
    assert "./docker/redis:/etc/avtor-redis:ro" in redis["volumes"]
    command = redis["command"]
    assert command[:2] == ["docker-entrypoint.sh", "redis-server"]
    assert command[command.index("--aclfile") + 1] == "/run/avtor-redis/users.acl"
    script = (ROOT / "docker" / "redis" / "write-users.sh").read_text(encoding="utf-8")
    assert 'target="${REDIS_ACL_FILE:-/run/avtor-redis/users.acl}"' in script
    assert 'template="${REDIS_ACL_TEMPLATE:-/etc/avtor-redis/users.acl.template}"' in script
    # More host users (docs/redis-users.md) come from a file beside the template, if there is one.
    assert 'hosts="${REDIS_HOST_USERS_FILE:-/etc/avtor-redis/hosts.acl}"' in script
    template = (ROOT / "docker" / "redis" / "users.acl.template").read_text(encoding="utf-8")
    assert template == acl_file_template(), "regenerate it: python -m config.redis_users template"
    for role in Role:
        variable = f"REDIS_{role.value.upper()}_PASSWORD"
        assert required_variable(redis["environment"][variable]) == variable
        assert f"password_hash {variable}" in script and hash_placeholder(role) in script
    assert "user default off" in template
    # Hosts reach Redis from outside; the port is published (on loopback unless told otherwise).
    assert with_defaults(redis["ports"][0]) == "127.0.0.1:6379:6379"


def test_redis_keeps_waiting_work_append_only_and_never_evicts_it() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert health_argv("postgres")[0] == "pg_isready"


def test_health_checks_use_real_commands() -> None:
    # Redis answers its health check only to a user: the workers'.
    redis = SERVICES["redis"]["healthcheck"]["test"]
    assert redis[0] == "CMD-SHELL"
    assert redis[1] == (
        'REDISCLI_AUTH="$$REDIS_WORKER_PASSWORD" redis-cli --user avtor-worker ping | grep -q PONG'
    )
    assert health_argv("license-server")[:2] == ["python", "-c"]


def test_start_order_waits_for_healthy_servers_and_the_finished_migration() -> None:
    def conditions(service: str) -> dict[str, str]:
        return {name: rule["condition"] for name, rule in SERVICES[service]["depends_on"].items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    for service in REDIS_USER_OF:
        assert conditions(service)["migrate"] == "service_completed_successfully"
        assert conditions(service)["redis"] == "service_healthy"
    assert conditions("worker-admin")["license-server"] == "service_healthy"
    assert SERVICES["migrate"]["restart"] == "no" and SERVICES["avtorlm"]["restart"] == "no"
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
