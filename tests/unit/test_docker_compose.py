"""docker-compose.yml and the Dockerfile checked against the project, since Docker does not run here.

Every command must be one the project really has (a console script and its
arguments, or a `celery -A worker` subcommand with options Celery accepts and
queues the app declares); every AVTOR_* variable must be a setting; each process
must connect to Redis as the user of its role, and Redis must know only those
users (config/redis_users.py); health checks and start order must be there; beat
must stay single. tests/integration/test_redis_users.py runs Redis's entrypoint
script and health check against a real redis-server.

docker-compose.yml is production: development mode off, the vendor's license
service and key from the environment with no development default, and no
development license server. docker-compose.development.yml, given after it with
a second -f, is the development variant; `merged` applies to the two files the
merge rules of the Compose specification (each file interpolated on its own,
then mappings merged entry by entry, sequences appended, command, entrypoint
and health-check tests replaced), so the tests check what Compose would run.
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cli.main import parser as avtorlm_parser
from config import Settings, SettingsError, load_settings
from config.redis_users import USER_NAMES, Role, acl_file_template, hash_placeholder
from config.settings import development_public_key
from licenseserver.cli import _parser as license_server_parser
from licenseserver.signing import Signer
from web.pages import public as console_public_routes
from worker.app import ADMIN_QUEUE, app
from worker.enrolment_consumer import _parser as enrolment_consumer_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DEVELOPMENT_TEXT = (ROOT / "docker-compose.development.yml").read_text(encoding="utf-8")
DEVELOPMENT: dict[str, Any] = yaml.safe_load(DEVELOPMENT_TEXT)
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
# The services that connect to Redis, and the user each connects as.
REDIS_USER_OF = {
    "enrolment": Role.WORKER,
    "worker-admin": Role.WORKER,
    "beat": Role.WORKER,
    "avtorlm": Role.ADMIN,
    "console": Role.ADMIN,
    "metrics": Role.ADMIN,
}
# The manager's processes (the services that run the image's manager code).
MANAGER_SERVICES = ("migrate", *REDIS_USER_OF)
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# What a required ${NAME:?message} stands for in these tests.
REQUIRED = "a-password-given-in-dot-env"
# What an administrator puts in .env for the vendor's service: its https URL and a public key
# of a key pair generated here (not the development one).
VENDOR_URL = "https://licensing.example.com"
VENDOR_KEY = Signer(Ed25519PrivateKey.generate(), is_development_key=False).public_key
VENDOR = {"AVTOR_LICENSE_SERVER_URL": VENDOR_URL, "AVTOR_LICENSE_SERVER_PUBLIC_KEY": VENDOR_KEY}
DEVELOPMENT_URL = "http://license-server:8470"


def run_command(argv: list[str]) -> dict[str, Any]:
    """Parse `argv` with the real command line of the program it names; return what it understood."""
    program, arguments = argv[0], argv[1:]
    if program == "celery":
        assert arguments[:2] == ["-A", "worker"], f"{argv}: the app is `celery -A worker`"
        sub, rest = arguments[2], arguments[3:]
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


def service_argv(service: str, services: dict[str, dict[str, Any]] = SERVICES) -> list[str]:
    """What a service runs: its entrypoint (if it sets one) and its command."""
    return [*services[service].get("entrypoint", []), *services[service]["command"]]


def health_argv(service: str, services: dict[str, dict[str, Any]] = SERVICES) -> list[str]:
    test = services[service]["healthcheck"]["test"]
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


def interpolated(value: Any, environment: dict[str, str]) -> Any:
    """`value` (a file's tree) with each ${NAME...} read from `environment` the way Compose does.

    ${NAME:-default} is NAME if set and not empty, else the default; ${NAME:?message} is NAME
    (REQUIRED when it is not given, as a password in .env would be); ${NAME} is NAME or empty.
    """
    if isinstance(value, dict):
        return {name: interpolated(item, environment) for name, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, kind, default = match.groups()
        given = environment.get(name, "")
        if given:
            return given
        return REQUIRED if kind == "?" else (default or "") if kind == "-" else ""

    return INTERPOLATION.sub(substitute, value)


# Attributes whose value the later file replaces instead of extending (the specification's
# "shell commands"); `ports` are merged by their published address and port.
REPLACED = frozenset({"command", "entrypoint", "test"})


def merge(base: Any, override: Any, key: str = "") -> Any:
    """The Compose specification's merge of `override` (a later -f file) into `base`."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for name, value in override.items():
            result[name] = merge(base[name], value, name) if name in base else value
        return result
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED:
        if key == "ports":
            return [*(port for port in base if port not in override), *override]
        return [*base, *override]
    return override


def merged(environment: dict[str, str] | None = None) -> dict[str, Any]:
    """What `docker compose -f docker-compose.yml -f docker-compose.development.yml` runs."""
    given = environment or {}
    return dict(merge(interpolated(COMPOSE, given), interpolated(DEVELOPMENT, given)))


DEVELOPMENT_SERVICES: dict[str, dict[str, Any]] = merged()["services"]


def settings_of(environment: dict[str, Any]) -> Settings:
    """The settings a process with this (interpolated) environment starts with."""
    return load_settings(
        **{name.removeprefix("AVTOR_").lower(): value for name, value in environment.items()}
    )


def string_values(tree: Any) -> list[str]:
    """Every string value (not key) in a file's tree."""
    if isinstance(tree, dict):
        return [text for value in tree.values() for text in string_values(value)]
    if isinstance(tree, list):
        return [text for value in tree for text in string_values(value)]
    return [tree] if isinstance(tree, str) else []


def test_the_services_are_the_whole_system_and_the_development_server_only_in_development() -> None:
    production = {
        *(
            "redis",
            "postgres",
            "migrate",
            "enrolment",
            "worker-admin",
            "beat",
            "console",
            "metrics",
            "avtorlm",
        )
    }
    assert set(SERVICES) == production
    assert set(DEVELOPMENT_SERVICES) == production | {"license-server"}
    # The development variant adds the development server and tells each manager process about
    # it; it changes nothing else (no command, no Redis, no store).
    assert set(DEVELOPMENT["services"]) == {*MANAGER_SERVICES, "license-server"}
    for service in MANAGER_SERVICES:
        assert set(DEVELOPMENT["services"][service]) <= {"environment", "depends_on"}, service


def test_the_merge_follows_the_compose_specification() -> None:
    # The specification's own examples (mapping, sequence, shell commands, unique resources).
    assert merge({"key1": "value1", "key2": "value2"}, {"key2": "VALUE", "key3": "value3"}) == {
        "key1": "value1",
        "key2": "VALUE",
        "key3": "value3",
    }
    assert merge({"dns": ["1.1.1.1"]}, {"dns": ["8.8.8.8"]}) == {"dns": ["1.1.1.1", "8.8.8.8"]}
    assert merge({"command": ["echo", "foo"]}, {"command": ["echo", "bar"]}) == {"command": ["echo", "bar"]}
    assert merge({"ports": ["127.0.0.1:8470:8470"]}, {"ports": ["127.0.0.1:8470:8470", "8471:8471"]}) == {
        "ports": ["127.0.0.1:8470:8470", "8471:8471"]
    }
    # Both files write `environment` and `depends_on` as mappings, so that they merge entry by
    # entry (the list forms would be converted first; keeping to one form keeps this exact).
    for tree in (COMPOSE, DEVELOPMENT):
        for service in tree["services"].values():
            for attribute in ("environment", "depends_on"):
                assert isinstance(service.get(attribute, {}), dict)
    # The development file needs no variable of its own: it works with the same .env.
    assert not INTERPOLATION.search(DEVELOPMENT_TEXT)


@pytest.mark.parametrize(
    "service",
    ["migrate", "enrolment", "worker-admin", "beat", "console", "metrics", "license-server", "avtorlm"],
)
def test_each_command_is_a_real_entry_point_of_the_project(service: str) -> None:
    services = SERVICES if service in SERVICES else DEVELOPMENT_SERVICES
    assert services[service]["build"] == "."
    assert services[service]["image"] == COMPOSE["x-avtor"]["image"], "one image for every role"
    understood = run_command(service_argv(service, services))
    if service in ("migrate", "avtorlm"):
        assert understood["command"] == {"migrate": "migrate", "avtorlm": "status"}[service]
    if service == "license-server":
        assert (understood["host"], understood["port"]) == ("0.0.0.0", 8470)
    if service == "enrolment":
        assert understood["name"] is None, "each replica names itself after its container"
    if service == "console":
        # `avtorlm serve`, on every address of its container, plain HTTP (TLS is the proxy's).
        assert understood["command"] == "serve"
        assert (understood["host"], understood["port"]) == ("0.0.0.0", 8480)
        assert (understood["tls_cert"], understood["tls_key"]) == (None, None)
    if service == "metrics":
        # `avtorlm metrics-serve`, on every address of its container, published on loopback only.
        assert understood["command"] == "metrics-serve"
        assert (understood["host"], understood["port"]) == ("0.0.0.0", 9480)
        assert services[service]["ports"] == ["127.0.0.1:9480:9480"]
        assert services[service]["environment"] == SERVICES["avtorlm"]["environment"]
    # The development variant changes no command.
    assert service_argv(service, DEVELOPMENT_SERVICES) == service_argv(service, services)


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


def test_the_console_is_published_on_loopback_only_and_believes_only_the_proxies_given() -> None:
    console = SERVICES["console"]
    port = run_command(service_argv("console"))["port"]
    assert console["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert console["restart"] == "unless-stopped"
    # The command line's environment (the avtor-admin user: Refresh goes through the admin
    # worker), and the reverse proxies, from .env, none by default.
    own = dict(console["environment"])
    proxies = own.pop("AVTOR_CONSOLE_TRUSTED_PROXIES")
    assert own == SERVICES["avtorlm"]["environment"]
    assert interpolated(proxies, {}) == ""
    assert settings_of(interpolated(console["environment"], VENDOR)).console_trusted_proxies == ""
    behind = {**VENDOR, "AVTOR_CONSOLE_TRUSTED_PROXIES": "172.18.0.1"}
    assert settings_of(interpolated(console["environment"], behind)).console_trusted_proxies == "172.18.0.1"
    with pytest.raises(SettingsError, match="AVTOR_CONSOLE_TRUSTED_PROXIES"):
        settings_of(
            interpolated(console["environment"], {**VENDOR, "AVTOR_CONSOLE_TRUSTED_PROXIES": "proxy"})
        )


def test_the_command_line_runs_on_demand_only() -> None:
    for services in (SERVICES, DEVELOPMENT_SERVICES):
        assert services["avtorlm"]["profiles"] == ["cli"]
        assert services["avtorlm"]["entrypoint"] == ["avtorlm"]


def test_the_image_installs_the_project_alone_without_an_index() -> None:
    assert "pip install --no-index --no-build-isolation ." in DOCKERFILE
    # Flower needs Celery events and remote control, which no Redis user of the manager may use.
    assert "monitoring" not in PYPROJECT["project"].get("optional-dependencies", {})


def test_the_image_installs_the_locked_versions() -> None:
    assert "pip install --require-hashes --no-deps -r requirements/image.txt" in DOCKERFILE
    locked = (ROOT / "requirements" / "image.txt").read_text(encoding="utf-8")
    for package in ("celery", "redis", "sqlalchemy", "fastapi", "uvicorn"):
        assert re.search(rf"^{package}==", locked, re.MULTILINE), f"requirements/image.txt lacks {package}"


def test_the_image_holds_every_package_of_the_project() -> None:
    packages = [
        pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert f"COPY {package} ./{package}" in DOCKERFILE, f"the Dockerfile does not copy {package}/"


def test_every_avtor_variable_is_a_setting_and_the_defaults_are_valid() -> None:
    named = set(re.findall(r"\bAVTOR_[A-Z0-9_]+", COMPOSE_TEXT + DEVELOPMENT_TEXT))
    settings = {f"AVTOR_{name.upper()}" for name in Settings.model_fields}
    assert named and named <= settings, f"not settings: {sorted(named - settings)}"
    environment = COMPOSE["x-avtor-environment"]
    # With the vendor's service given in .env, as docs/docker.md asks, every default loads.
    loaded = settings_of(interpolated(environment, VENDOR))
    assert loaded.store_url.get_secret_value().startswith("postgresql+psycopg://avtor:")
    assert "AVTOR_REDIS_URL" not in environment, "each process connects as the Redis user of its role"
    assert SERVICES["migrate"]["environment"] == environment
    # The console's own setting: the reverse proxies it believes.
    own_settings = {"AVTOR_REDIS_URL", "AVTOR_CONSOLE_TRUSTED_PROXIES"}
    for service in REDIS_USER_OF:
        own = SERVICES[service]["environment"]
        assert {name: value for name, value in own.items() if name not in own_settings} == environment
        settings_of(interpolated(own, VENDOR))


def test_the_default_stack_has_no_development_default() -> None:
    environment = COMPOSE["x-avtor-environment"]
    # Development mode is off, whatever the shell or .env says: only the development file turns it on.
    assert environment["AVTOR_DEVELOPMENT_MODE"] == "0"
    assert interpolated(environment["AVTOR_DEVELOPMENT_MODE"], {"AVTOR_DEVELOPMENT_MODE": "1"}) == "0"
    # The license service and its key come from the environment, with no default of the file's.
    for name in ("AVTOR_LICENSE_SERVER_URL", "AVTOR_LICENSE_SERVER_PUBLIC_KEY"):
        assert INTERPOLATION.fullmatch(environment[name]), f"{name} is taken from the environment"
        assert interpolated(environment[name], {}) == "", f"{name} has a default"
        assert interpolated(environment[name], VENDOR) == VENDOR[name]
    # Nothing in the file points at the development server or carries its key.
    values = string_values(COMPOSE)
    assert not [value for value in values if "license-server" in value or "8470" in value]
    assert development_public_key() not in COMPOSE_TEXT
    assert not [value for value in values if "avtor-license-server" in value]


@pytest.mark.parametrize("service", MANAGER_SERVICES)
def test_the_default_stack_needs_the_vendors_service_and_key(service: str) -> None:
    own = SERVICES[service]["environment"]
    # Nothing in .env: the manager refuses to start, naming the variable to set.
    with pytest.raises(SettingsError, match="AVTOR_LICENSE_SERVER_URL"):
        settings_of(interpolated(own, {}))
    # The URL without the key: the processes that call the service (the admin worker, beat,
    # `avtorlm license ...`) refuse, naming the key's variable.
    without_key = settings_of(interpolated(own, {"AVTOR_LICENSE_SERVER_URL": VENDOR_URL}))
    assert not without_key.development_mode
    with pytest.raises(SettingsError, match="AVTOR_LICENSE_SERVER_PUBLIC_KEY"):
        without_key.trusted_public_key()
    # The development key, or plain HTTP to the development server, are refused outside development mode.
    with pytest.raises(SettingsError, match="AVTOR_LICENSE_SERVER_PUBLIC_KEY"):
        settings_of(
            interpolated(own, {**VENDOR, "AVTOR_LICENSE_SERVER_PUBLIC_KEY": development_public_key()})
        )
    with pytest.raises(SettingsError, match="AVTOR_LICENSE_SERVER_URL"):
        settings_of(interpolated(own, {**VENDOR, "AVTOR_LICENSE_SERVER_URL": DEVELOPMENT_URL}))
    # The vendor's URL and key: production, trusting that key only.
    production = settings_of(interpolated(own, VENDOR))
    assert not production.development_mode
    assert (production.license_server_url, production.trusted_public_key()) == (VENDOR_URL, VENDOR_KEY)


@pytest.mark.parametrize("service", MANAGER_SERVICES)
def test_the_development_variant_runs_every_process_in_development_mode_with_the_development_server(
    service: str,
) -> None:
    base = SERVICES[service]["environment"]
    own = DEVELOPMENT_SERVICES[service]["environment"]
    changed = {"AVTOR_DEVELOPMENT_MODE", "AVTOR_LICENSE_SERVER_URL", "AVTOR_LICENSE_SERVER_PUBLIC_KEY"}
    assert set(own) == set(base)
    assert {name: value for name, value in own.items() if name not in changed} == interpolated(
        {name: value for name, value in base.items() if name not in changed}, {}
    )
    assert (own["AVTOR_DEVELOPMENT_MODE"], own["AVTOR_LICENSE_SERVER_URL"]) == ("1", DEVELOPMENT_URL)
    # Whatever .env holds for the vendor's service, the development variant uses the development server.
    for given in ({}, VENDOR):
        settings = settings_of(merged(given)["services"][service]["environment"])
        assert settings.development_mode
        assert settings.license_server_url == DEVELOPMENT_URL
        assert settings.trusted_public_key() == development_public_key()
    # The URL names the development server's service, on the port it listens on.
    host, _, port = DEVELOPMENT_URL.removeprefix("http://").partition(":")
    server = run_command(service_argv(host, DEVELOPMENT_SERVICES))
    assert server["port"] == int(port)
    assert DEVELOPMENT_SERVICES[host]["ports"] == [f"127.0.0.1:{port}:{port}"]
    # It signs with the development key pair (the one development mode trusts) and the demo keys.
    assert (server["key_pair"], server["keys"], server["generate_key_pair"]) == (None, None, None)


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
    assert "license-server" not in SERVICES
    development = health_argv("license-server", DEVELOPMENT_SERVICES)
    assert development[:2] == ["python", "-c"]
    port = run_command(service_argv("license-server", DEVELOPMENT_SERVICES))["port"]
    assert f"'http://127.0.0.1:{port}/_dev/public-key'" in development[2]
    # The console is healthy when its sign-in page answers: the one page that needs no session.
    for services in (SERVICES, DEVELOPMENT_SERVICES):
        console = health_argv("console", services)
        assert console[:2] == ["python", "-c"]
        port = run_command(service_argv("console", services))["port"]
        assert f"urllib.request.urlopen('http://127.0.0.1:{port}/sign-in', timeout=3)" in console[2]
    sign_in = [route for route in console_public_routes.routes if getattr(route, "path", None) == "/sign-in"]
    assert any("GET" in getattr(route, "methods", set()) for route in sign_in)


@pytest.mark.parametrize("variant", ["production", "development"])
def test_start_order_waits_for_healthy_servers_and_the_finished_migration(variant: str) -> None:
    services = SERVICES if variant == "production" else DEVELOPMENT_SERVICES

    def conditions(service: str) -> dict[str, str]:
        return {name: rule["condition"] for name, rule in services[service].get("depends_on", {}).items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    for service in REDIS_USER_OF:
        assert conditions(service)["migrate"] == "service_completed_successfully"
        assert conditions(service)["redis"] == "service_healthy"
    if variant == "production":
        assert not any("license-server" in conditions(service) for service in services)
    else:
        # The processes that call the license service wait for the development server to answer.
        waiting = {service for service in services if "license-server" in conditions(service)}
        assert waiting == {"worker-admin", "avtorlm", "console"}
        assert all(conditions(service)["license-server"] == "service_healthy" for service in waiting)
    assert services["migrate"]["restart"] == "no" and services["avtorlm"]["restart"] == "no"
    for service in services:
        for dependency, condition in conditions(service).items():
            assert dependency in services, f"{service} waits for {dependency}, which {variant} lacks"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{service} waits for {dependency}'s health check"
                )


@pytest.mark.parametrize("variant", ["production", "development"])
def test_there_is_exactly_one_beat_and_it_is_not_scaled(variant: str) -> None:
    services = SERVICES if variant == "production" else DEVELOPMENT_SERVICES
    beats = [name for name, service in services.items() if run_command_name(service) == "beat"]
    assert beats == ["beat"]
    beat = services["beat"]
    assert beat.get("scale", 1) == 1
    assert beat.get("deploy", {}).get("replicas", 1) == 1


def run_command_name(service: dict[str, Any]) -> str | None:
    command = service.get("command") or []
    return command[3] if command[:3] == ["celery", "-A", "worker"] else None
