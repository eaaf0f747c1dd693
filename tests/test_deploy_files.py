"""The deployment files say what the code does: .env.example lists every setting (and only
settings) with its meaning and valid examples; Procfile, compose.yaml and the Dockerfile run
real `sapari-nb` commands; compose's backend URLs are ones our factories accept and point at
compose's own services. Docker itself is not needed (nor usable on every test machine)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from sapari_nb.cli import build_parser
from sapari_server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "server" / "deploy" / "compose.yaml"
PROCFILE = ROOT / "Procfile"
DOCKERFILE = ROOT / "server" / "deploy" / "Dockerfile"
LINE = re.compile(r"^(#\s*)?SAPARI_([A-Z0-9_]+)=(.*)$")


def _env_lines() -> list[str]:
    return ENV_EXAMPLE.read_text().splitlines()


def _entries() -> dict[str, tuple[int, bool, str]]:
    """SAPARI_NAME -> (line index, set (not commented out), value)."""
    found: dict[str, tuple[int, bool, str]] = {}
    for i, line in enumerate(_env_lines()):
        m = LINE.match(line)
        if m:
            assert m.group(2) not in found, f"SAPARI_{m.group(2)} is listed twice"
            found[m.group(2)] = (i, m.group(1) is None, m.group(3))
    return found


def test_env_example_lists_every_setting_with_its_meaning() -> None:
    entries = _entries()
    fields = {name.upper() for name in Settings.model_fields}
    assert sorted(fields - set(entries)) == [], "settings missing from .env.example"
    assert sorted(set(entries) - fields) == [], ".env.example names settings that do not exist"
    lines = _env_lines()
    for name, (i, _, _) in entries.items():
        # Above each setting (or the run of settings it belongs to): prose saying what it is.
        j = i - 1
        while j >= 0 and LINE.match(lines[j]):
            j -= 1
        assert j >= 0 and lines[j].startswith("# ") and not LINE.match(lines[j]) \
            and len(lines[j]) > 12, f"SAPARI_{name} has no explanation above it"


def test_env_example_values_are_valid(tmp_path: Path) -> None:
    # As written (what a fleet on one host starts from) ...
    s = Settings(_env_file=ENV_EXAMPLE, data_dir=tmp_path)  # type: ignore[call-arg]
    assert s.local_user is False and s.embedded_workers == 0
    assert s.events_url.startswith("redis://") and s.queue_url.startswith("amqp://")
    # ... and with every commented-out example switched on: each one parses.
    every = tmp_path / "every.env"
    every.write_text("\n".join(re.sub(r"^#\s*(SAPARI_)", r"\1", ln) for ln in _env_lines()))
    s = Settings(_env_file=every)  # type: ignore[call-arg]
    defaults = Settings(data_dir=tmp_path)
    # Examples that show the default must show it exactly.
    for name in ("quota_bytes", "max_upload_bytes", "multipart_threshold",
                 "multipart_part_size", "signed_url_ttl", "job_stale_after", "sse_keepalive",
                 "cors_origin_regex", "retention_days", "smtp_port", "queue_name"):
        assert getattr(s, name) == getattr(defaults, name), name


def _interpolate(text: str) -> str:
    """Compose's ${VAR:-default} and ${VAR:?message} with nothing set: defaults, a test secret."""
    def sub(m: re.Match[str]) -> str:
        return m.group(3) if m.group(2).endswith("-") else "test-secret"
    return re.sub(r"\$\{(\w+)(:?[-?])([^}]*)\}", sub, text)


def _parses(argv: list[str]) -> None:
    assert argv[0] == "sapari-nb", argv
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as e:  # argparse's way of refusing
        pytest.fail(f"`{' '.join(argv)}` is not a valid sapari-nb command (exit {e.code})")


def test_procfile_runs_real_commands() -> None:
    procs: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            procs[name.strip()] = command.strip()
    assert set(procs) == {"release", "web", "worker_heavy", "worker_light"}
    for command in procs.values():
        for part in _interpolate(command.replace("${PORT:-8000}", "8000")).split("&&"):
            _parses(shlex.split(part))
    assert procs["release"].split("&&")[0].split() == ["sapari-nb", "db", "upgrade"]
    assert "--queue heavy" in procs["worker_heavy"] and "--queue light" in procs["worker_light"]
    assert "--workers 0" in procs["web"]


def _compose() -> dict:
    return yaml.safe_load(_interpolate(COMPOSE.read_text()))


def test_compose_services_and_commands() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "rabbitmq", "minio", "migrate",
                             "storage-setup", "api", "worker-heavy", "worker-light"}
    ours = {n: s for n, s in services.items() if s.get("image") == "sapari-nb:latest"}
    assert set(ours) == {"migrate", "storage-setup", "api", "worker-heavy", "worker-light"}
    for svc in ours.values():
        _parses(svc["command"])
    assert services["migrate"]["command"] == ["sapari-nb", "db", "upgrade"]
    assert services["storage-setup"]["command"] == ["sapari-nb", "storage", "setup"]
    assert services["migrate"]["restart"] == "no"
    # Long-running processes start only after both one-shots succeeded.
    for name in ("api", "worker-heavy", "worker-light"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["storage-setup"]["condition"] == "service_completed_successfully", name
    api = services["api"]["command"]
    assert api[api.index("--port") + 1] == "8000" and "8000:8000" in services["api"]["ports"]
    assert api[api.index("--workers") + 1] == "0"
    heavy, light = services["worker-heavy"]["command"], services["worker-light"]["command"]
    assert heavy[heavy.index("--queue") + 1] == "heavy"
    assert light[light.index("--queue") + 1] == "light"


def test_compose_backend_urls_are_accepted_and_point_at_its_services() -> None:
    from sqlalchemy.engine import make_url

    from sapari_server.events.bus import make_event_bus
    from sapari_server.events.redis_bus import RedisEventBus
    from sapari_server.queue.rabbit import split_amqp_url
    from sapari_server.storage.s3 import parse_s3_url

    compose = _compose()
    services = compose["services"]
    env = services["api"]["environment"]
    # Every sapari-nb process gets the very same settings.
    for name in ("migrate", "storage-setup", "worker-heavy", "worker-light"):
        assert services[name]["environment"] == env, name
    settings = Settings(**{k.removeprefix("SAPARI_").lower(): v for k, v in env.items()})
    assert settings.local_user is False and settings.embedded_workers == 0

    db = make_url(settings.database_url)
    assert (db.drivername, db.host, db.port) == ("postgresql+psycopg", "postgres", 5432)
    pg = services["postgres"]["environment"]
    assert (db.username, db.password, db.database) == (pg["POSTGRES_USER"],
                                                        pg["POSTGRES_PASSWORD"],
                                                        pg["POSTGRES_DB"])
    s3 = parse_s3_url(settings.storage_url)
    assert urlparse(s3.endpoint).hostname == "minio" and s3.path_style
    assert s3.public_endpoint == "http://localhost:9000"
    minio = services["minio"]["environment"]
    assert (settings.storage_access_key, settings.storage_secret_key) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    amqp, options = split_amqp_url(settings.queue_url)
    rabbit = services["rabbitmq"]["environment"]
    assert urlparse(amqp).hostname == "rabbitmq"
    assert (urlparse(amqp).username, urlparse(amqp).password) == (
        rabbit["RABBITMQ_DEFAULT_USER"], rabbit["RABBITMQ_DEFAULT_PASS"])
    assert urlparse(options["results_url"]).hostname == "redis"
    bus = make_event_bus(settings.events_url)
    try:
        assert isinstance(bus, RedisEventBus) and urlparse(bus.url).hostname == "redis"
    finally:
        bus.close()
    assert set(compose["volumes"]) == {"postgres", "redis", "rabbitmq", "minio"}


def test_dockerfile_copies_what_exists_and_runs_a_real_command() -> None:
    text = DOCKERFILE.read_text()
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                base = "widgets/" if src in ("package.json", "package-lock.json") else ""
                assert (ROOT / base / src).exists() or (ROOT / src).exists(), src
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    _parses(yaml.safe_load(cmd.group(1)))
    assert 'pip install ".[fleet]"' in text


def test_readme_has_the_fleet_section() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "## Run it as a fleet" in readme
    section = readme.split("## Run it as a fleet", 1)[1].split("\n## ", 1)[0]
    for needed in ("server/deploy/compose.yaml", "Procfile", ".env.example",
                   "sapari-nb db upgrade", "sapari-nb storage setup", "--queue heavy",
                   "SAPARI_EVENTS_URL", "SAPARI_QUEUE_URL", "SAPARI_STORAGE_URL"):
        assert needed in section, needed
