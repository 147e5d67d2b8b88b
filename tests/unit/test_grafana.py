"""The Grafana dashboards (dashboards/grafana/) ask only for what the code really writes.

Grafana cannot run here, and a panel whose query names a field nobody writes shows "No data" instead of failing,
so the queries are checked against the code: Flux panels against the points `gateway.telemetry_sink.to_point`
makes from each sensor kind's contract schema, SQL panels against the SQLAlchemy tables, the threshold lines
against the built-in alarm rules, and the datasources against docker-compose.yml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from core.alarm_rules_config import ALARM_TYPES, BUILT_IN
from core.alarm_rules_text import ALARM_TYPE_NAMES
from core.contract import SENSOR_VALUES, SensorKind
from core.rounds import RoundState
from core.severity import SEVERITIES
from gateway.telemetry_sink import ReadingPoint, to_point
from storage.models import Base

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards/grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
#: How the dashboards colour a severity: threshold steps, value mappings and series overrides alike.
SEVERITY_COLOR = {"warning": "yellow", "major": "orange", "critical": "red"}
#: Columns Flux itself adds to every point; anything else a query names as `r.<name>` must be a tag.
FLUX_COLUMNS = frozenset({"_measurement", "_field", "_value", "_time", "_start", "_stop"})
#: SQL words the queries may use bare; every other name must be a `table.column` (so it is checked).
SQL_WORDS = frozenset(
    {"select", "from", "join", "on", "where", "and", "or", "not", "in", "is", "null", "as", "group", "by", "order"}
    | {"asc", "desc", "count", "avg", "min", "max", "sum", "round", "numeric", "filter", "date_trunc", "at", "time"}
    | {"zone", "case", "when", "then", "else", "end", "coalesce"}
)
#: Columns whose values are a closed vocabulary in the code: a literal compared with them must be in it.
SQL_VOCABULARY: dict[tuple[str, str], frozenset[str]] = {
    ("rounds", "state"): frozenset(get_args(RoundState)),
    ("alarms", "severity"): frozenset(SEVERITIES),
    ("alarms", "peak_severity"): frozenset(SEVERITIES),
    ("alarms", "alarm_type"): frozenset(ALARM_TYPES),
}


# ---------------------------------------------------------------- what the code really produces


@cache
def written() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Sensor kind -> (tag keys, field keys) of the point the writer makes from a reading with every field of
    the kind's contract schema and every place set: read back from its line protocol, not restated here."""
    out: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for kind in get_args(SensorKind):
        values = dict.fromkeys(SENSOR_VALUES[kind].model_fields, 1.0)
        reading = ReadingPoint(kind, "s", "d", "b", "f", "l", at, values, "m")
        point = to_point(reading)
        assert point is not None, kind
        series, fields, _ = point.to_line_protocol().split(" ")
        measurement, *tags = series.split(",")
        assert measurement == kind
        out[kind] = (
            frozenset(t.split("=")[0] for t in tags),
            frozenset(f.split("=")[0] for f in fields.split(",")),
        )
    return out


def tag_names() -> frozenset[str]:
    return frozenset().union(*(tags for tags, _ in written().values()))


# ---------------------------------------------------------------- what the dashboards ask for


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(where, datasource uid, query text) of every panel target and template variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel["datasource"]
            yield f"panel {panel['title']!r}", ds["uid"], target.get("query") or target.get("rawSql", "")
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            text = var["query"] if isinstance(var["query"], str) else var["query"].get("query", "")
            yield f"variable {var['name']!r}", var["datasource"]["uid"], text


def datasources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((GRAFANA / "provisioning/datasources").glob("*.yaml")):
        for ds in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]:
            assert ds["uid"] not in found, ds["uid"]
            found[ds["uid"]] = ds
    return found


def flux_names(query: str) -> tuple[set[str], set[str], set[str]]:
    """(measurements, fields, other columns) a Flux query names in filters, group/keep lists and schema calls."""
    measurements = set(re.findall(r'r\._measurement\s*==\s*"([^"]+)"', query))
    fields = set(re.findall(r'r\._field\s*==\s*"([^"]+)"', query))
    columns = set(re.findall(r"\br\.(\w+)", query)) | set(re.findall(r'\btag:\s*"([^"]+)"', query))
    for listed in re.findall(r"columns:\s*\[([^\]]*)\]", query):
        columns |= set(re.findall(r'"([^"]+)"', listed))
    return measurements, fields, columns


def flux_panels() -> Iterator[tuple[str, dict[str, Any], str, set[str]]]:
    """(measurement, panel, query, fields) of every telemetry panel with one measurement."""
    for path in DASHBOARDS:
        for panel in panels(load(path)):
            for target in panel.get("targets", []):
                if "query" in target:
                    measurements, fields, _ = flux_names(target["query"])
                    assert len(measurements) == 1, f"{path.name} {panel['title']!r}: one sensor kind per panel"
                    yield measurements.pop(), panel, target["query"], fields


# ---------------------------------------------------------------- the checks


def test_the_three_dashboards_exist_with_unique_uids() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert {"patrol-telemetry", "patrol-alarms", "patrol-completion"} <= set(uids)
    assert len(uids) == len(set(uids))
    for path in DASHBOARDS:
        title = load(path)["title"]
        assert re.search(r"[\u4e00-\u9fff].*\([A-Za-z][^)]*\)$", title), f"{path.name}: 中文 (English) title"


def test_every_datasource_a_panel_names_is_provisioned_with_its_type() -> None:
    provisioned = datasources()
    for path in DASHBOARDS:
        dashboard = load(path)
        for panel in panels(dashboard):
            for ds in [panel.get("datasource"), *(t.get("datasource") for t in panel.get("targets", []))]:
                if ds is not None:
                    assert ds["uid"] in provisioned, f"{path.name} {panel['title']!r}: {ds['uid']}"
                    assert ds["type"] == provisioned[ds["uid"]]["type"], f"{path.name} {panel['title']!r}"
        for where, uid, _ in queries(dashboard):
            assert uid in provisioned, f"{path.name} {where}: {uid}"


def test_every_flux_query_names_a_measurement_field_and_tag_the_writer_produces() -> None:
    produced = written()
    tags = tag_names()
    checked = 0
    for path in DASHBOARDS:
        for where, uid, query in queries(load(path)):
            if datasources()[uid]["type"] != "influxdb":
                continue
            checked += 1
            measurements, fields, columns = flux_names(query)
            assert measurements <= produced.keys(), f"{path.name} {where}: {measurements - produced.keys()}"
            known = frozenset().union(*(produced[m][1] for m in measurements)) if measurements else frozenset()
            assert fields <= known, f"{path.name} {where}: {sorted(measurements)} has no field {fields - known}"
            unknown = columns - tags - FLUX_COLUMNS
            assert not unknown, f"{path.name} {where}: the writer writes no tag {unknown}; tags: {sorted(tags)}"
            if where.startswith("panel"):
                assert measurements and fields, f"{path.name} {where}: name a measurement and a field"
                assert "from(bucket: v.defaultBucket)" in query, f"{path.name} {where}: use the datasource's bucket"
                assert "r.site" in query, f"{path.name} {where}: filter by the site variable"
    assert checked


def test_display_names_use_tags_the_writer_produces() -> None:
    tags = tag_names()
    for path in DASHBOARDS:
        for panel in panels(load(path)):
            shown = json.dumps(panel.get("fieldConfig", {}), ensure_ascii=False)
            used = set(re.findall(r"__field\.labels\.(\w+)", shown))
            assert used <= tags, f"{path.name} {panel['title']!r}: {used - tags}"


def test_every_sensor_kind_has_a_telemetry_panel() -> None:
    shown = {kind for kind, *_ in flux_panels()}
    assert shown == set(get_args(SensorKind))


def _expected_steps(kind: str, fields: set[str]) -> list[tuple[float, str]]:
    rule = BUILT_IN[kind]
    return sorted(
        (float(t.value), SEVERITY_COLOR[t.severity])
        for name in fields
        for t in rule.thresholds.get(name, ())
        if t.op in (">=", ">") and not t.when and isinstance(t.value, float)
    )


def test_threshold_lines_are_the_built_in_alarm_thresholds() -> None:
    """Each telemetry panel draws exactly the built-in numeric levels of its field (gas lel_pct 10/25, leak_ma
    30, ...) in its severity's colour, and every numeric level is drawn somewhere."""
    drawn: set[tuple[str, str]] = set()
    for kind, panel, _, fields in flux_panels():
        defaults = panel["fieldConfig"]["defaults"]
        steps = defaults.get("thresholds", {}).get("steps", [])
        actual = [(float(s["value"]), s["color"]) for s in steps if s["value"] is not None]
        expected = _expected_steps(kind, fields)
        assert actual == expected, f"{panel['title']!r}: thresholds {actual}, the built-in rule says {expected}"
        if expected:
            style = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
            assert style != "off", f"{panel['title']!r}: draw the thresholds"
            drawn |= {(kind, f) for f in fields}
    numeric = {(k, f) for k in BUILT_IN for f in BUILT_IN[k].thresholds if _expected_steps(k, {f})}
    assert ("gas", "lel_pct") in numeric and ("electric_leak", "leak_ma") in numeric
    assert numeric <= drawn, numeric - drawn


def test_state_panels_colour_the_alarm_state_by_its_built_in_severity() -> None:
    """True/false and text levels (wet, smoke alarm, door open, elevator fault) are drawn as a state timeline:
    the query turns the alarm state into 1, and the mapping of 1 has the severity's colour."""
    wanted = {
        (k, f): t
        for k in BUILT_IN
        for f, levels in BUILT_IN[k].thresholds.items()
        for t in levels
        if t.op == "==" and not t.when and not isinstance(t.value, float)
    }
    seen: set[tuple[str, str]] = set()
    for kind, panel, query, fields in flux_panels():
        for field in fields:
            level = wanted.get((kind, field))
            if level is None:
                continue
            seen.add((kind, field))
            if isinstance(level.value, bool):
                assert "toInt()" in query, panel["title"]
            else:
                assert f'r._value == "{level.value}" then 1' in query, panel["title"]
            mappings = panel["fieldConfig"]["defaults"]["mappings"]
            one = next(m["options"]["1"] for m in mappings if m["type"] == "value" and "1" in m["options"])
            assert one["color"] == SEVERITY_COLOR[level.severity], panel["title"]
    assert seen == set(wanted), set(wanted) - seen


# ---------------------------------------------------------------- SQL panels

_STRING = re.compile(r"'(?:[^']|'')*'")
_QUOTED_NAME = re.compile(r'"[^"]*"')
_MACRO = re.compile(r"\$__\w+|\$\{\w+(?::\w+)?\}|\$\w+")


def sql_queries() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        for where, uid, query in queries(load(path)):
            if datasources()[uid]["type"] == "grafana-postgresql-datasource":
                yield f"{path.name} {where}", query


def test_sql_panels_read_tables_and_columns_that_exist() -> None:
    tables = Base.metadata.tables
    checked = 0
    for where, sql in sql_queries():
        checked += 1
        used = set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", sql, re.IGNORECASE))
        assert used and used <= tables.keys(), f"{where}: no table {used - tables.keys()}"
        code = _MACRO.sub(" ", _QUOTED_NAME.sub(" ", _STRING.sub(" ", sql)))
        for table, column in re.findall(r"\b(\w+)\.(\w+)", code):
            assert table in used, f"{where}: {table}.{column} from a table not in FROM/JOIN"
            assert column in tables[table].c, f"{where}: table {table} has no column {column}"
        bare = {w.lower() for w in re.findall(r"(?<![\w.])([A-Za-z_]\w*)(?![\w.])", code)}
        bare -= SQL_WORDS | used | {"__value", "__text", "metric", "value"}
        assert not bare, f"{where}: write columns as table.column so they are checked: {bare}"
    assert checked


def test_sql_literals_are_values_the_code_writes() -> None:
    for where, sql in sql_queries():
        for table, column, rest in re.findall(r"\b(\w+)\.(\w+)\s*(=\s*'[^']*'|IN\s*\([^)]*\))", sql):
            vocabulary = SQL_VOCABULARY.get((table, column))
            if vocabulary is not None:
                literals = set(re.findall(r"'([^']*)'", rest))
                assert literals <= vocabulary, f"{where}: {table}.{column} is never {literals - vocabulary}"


def test_alarm_type_series_are_named_as_the_alarms_are() -> None:
    dashboard = load(GRAFANA / "dashboards/alarms.json")
    renamed = 0
    for panel in panels(dashboard):
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            name = override["matcher"]["options"]
            for prop in override["properties"]:
                if prop["id"] == "displayName":
                    assert name in ALARM_TYPES, name
                    label = ALARM_TYPE_NAMES[name]
                    assert prop["value"] == f"{label.zh} ({label.en})", name
                    renamed += 1
    assert renamed == len(ALARM_TYPES)


# ---------------------------------------------------------------- provisioning and compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_mounts_the_provisioning_and_the_dashboards(compose: dict[str, Any]) -> None:
    svc = compose["services"]["grafana"]
    assert re.fullmatch(r"grafana/grafana-oss:\d+(\.\d+)*", svc["image"]), "pin the Grafana version"
    assert "./dashboards/grafana/provisioning:/etc/grafana/provisioning:ro" in svc["volumes"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/patrol.yaml").read_text(encoding="utf-8"))
    path = provider["providers"][0]["options"]["path"]
    assert f"./dashboards/grafana/dashboards:{path}:ro" in svc["volumes"]
    assert all(str(p).startswith("127.0.0.1:") for p in svc["ports"]), "publish Grafana on the loopback only"
    assert {"postgres", "influxdb"} <= set(svc["depends_on"])


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def test_compose_gives_grafana_every_secret_by_reference(compose: dict[str, Any]) -> None:
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?"), "no default admin password"
    for path in sorted((GRAFANA / "provisioning").rglob("*.yaml")):
        for value in strings(yaml.safe_load(path.read_text(encoding="utf-8"))):
            for name in re.findall(r"\$\{?(\w+)", value):
                assert name in env, f"{path.name} reads {name}, which docker-compose.yml does not set"
    secrets = [ds.get("secureJsonData", {}) for ds in datasources().values()]
    assert all(re.fullmatch(r"\$\{\w+\}", v) for s in secrets for v in s.values()), "secrets come from the environment"
    for name, value in env.items():
        if any(s in name for s in ("PASSWORD", "TOKEN")):
            assert str(value).startswith("${"), f"{name}: a reference to the environment, not a value"


def test_datasources_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    provisioned = {ds["type"]: ds for ds in datasources().values()}
    services = compose["services"]
    gateway = services["gateway"]["environment"]
    influx = provisioned["influxdb"]
    assert influx["url"] == gateway["PATROL_INFLUX_URL"]
    assert influx["jsonData"]["version"] == "Flux"
    assert influx["jsonData"]["organization"] == gateway["PATROL_INFLUX_ORG"]
    assert influx["jsonData"]["defaultBucket"] == gateway["PATROL_INFLUX_BUCKET"]
    pg = provisioned["grafana-postgresql-datasource"]
    assert pg["url"] == "postgres:5432" and "postgres" in services
    assert pg["jsonData"]["database"] == services["postgres"]["environment"]["POSTGRES_DB"]
