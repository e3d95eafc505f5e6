"""The operators' side of GET /metrics: compose.yaml's optional Prometheus (profile ``metrics``)
scrapes every app replica directly with METRICS_TOKEN, never through the proxy, and the Grafana
dashboard in deploy/ draws only families the contract defines (each of them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from tests.core.prometheus_text import CONTRACT
from tests.deploy.test_compose import _docker_compose
from tests.servers import ROOT

DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
SECRET_TARGET = "/run/secrets/metrics_token"


def _series_names() -> dict[str, str]:
    """Every series name a scrape can carry → its family (a histogram's _bucket, _sum and _count)."""
    names = {}
    for family, (kind, _) in CONTRACT.items():
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names.update({family + suffix: family for suffix in suffixes})
    return names


def _expressions(dashboard: dict) -> list[str]:
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["definition"])
    return found


def test_the_dashboard_draws_every_family_and_only_those_of_the_contract():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    series = _series_names()
    used = set()
    for expression in _expressions(dashboard):
        names = set(re.findall(r"\bleancore_\w+", expression))
        assert names, expression
        unknown = names - set(series)
        assert not unknown, (expression, unknown)
        used |= {series[name] for name in names}
        assert expression.count("(") == expression.count(")"), expression
    assert used == set(CONTRACT)  # every family has a panel
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    for expression in _expressions(dashboard):
        assert set(re.findall(r"\$(\w+)", expression)) <= variables | {"__rate_interval"}, expression


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_prometheus_is_optional_unpublished_and_reads_the_token_as_a_secret(compose):
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["metrics"]  # `docker compose up` alone does not start it
    assert "ports" not in prometheus
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    assert [secret["source"] for secret in prometheus["secrets"]] == ["metrics_token"]
    assert compose["configs"]["prometheus"]["file"] == "./deploy/prometheus.yml"
    assert "${METRICS_TOKEN:-}" in compose["x-app"]["environment"]["METRICS_TOKEN"]


def test_prometheus_scrapes_every_app_replica_directly_with_the_bearer_token(compose):
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": SECRET_TARGET}
    assert "static_configs" not in job  # no fixed target (the proxy would hand each scrape to one replica)
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["app"]  # Docker's DNS: one address per replica of the service
    assert discovery["type"] == "A"
    app_command = " ".join(compose["services"]["app"]["command"])
    assert f"--port {discovery['port']}" in app_command
    assert "proxy" not in json.dumps(config)


def _resolved(*profiles: str, **env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if key != "METRICS_TOKEN"}
    base |= {
        "SECRET_KEY": "compose-config-check-0123456789abcdef",
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    command = [*_docker_compose(), "-f", str(ROOT / "compose.yaml")]
    for profile in profiles:
        command += ["--profile", profile]
    return subprocess.run(
        [*command, "config", "--format", "json"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_validates_the_metrics_profile_and_leaves_it_out_by_default():
    token = "a-metrics-token-of-32-characters-or-more"
    done = _resolved("metrics", METRICS_TOKEN=token)
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    prometheus = resolved["services"]["prometheus"]
    assert prometheus["secrets"][0]["target"] == SECRET_TARGET
    assert prometheus["configs"][0]["target"] == "/etc/prometheus/prometheus.yml"
    assert resolved["services"]["app"]["environment"]["METRICS_TOKEN"] == token
    default = _resolved()
    assert default.returncode == 0, default.stderr
    assert "prometheus" not in json.loads(default.stdout)["services"]


def test_each_replica_accepts_the_scrape_s_host_its_own_address(compose):
    """Prometheus names a replica by its address (the Host it sends, which it cannot change): the app's
    command adds the container's own addresses to ALLOWED_HOSTS before serve starts, and nothing else."""
    done = _resolved()
    assert done.returncode == 0, done.stderr
    shell = json.loads(done.stdout)["services"]["app"]["command"][-1].replace("$$", "$")
    prelude, _, launch = shell.partition("&& exec ")
    assert launch.startswith("python manage.py serve")
    printed = subprocess.run(
        ["/bin/sh", "-c", f'{prelude} && echo "$ALLOWED_HOSTS"'],
        # the image's `python`; here the test's own
        env={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "ALLOWED_HOSTS": "leancore.example.com"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    hosts = printed.split(",")
    assert hosts[0] == "leancore.example.com"
    own = hosts[1:]
    assert own
    assert all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", host) for host in own), hosts
