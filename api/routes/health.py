"""Liveness (/healthz, no key, for supervisors), /v1/status (broker link and live counters) and /metrics in the
Prometheus text format (prometheus_client): the API's counters, the live figures and every ingest worker's."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel

from api.deps import EngineDep, HubDep, SettingsDep, SiteQuery, Viewer, site_of
from api.live.rule_runner import Engine
from api.live.stream import Hub
from api.settings import Settings
from ingest.metrics import SnapshotCollector, read_plant_metrics

router = APIRouter(tags=["health"])


class Health(BaseModel):
    ok: bool
    site: str


class Status(BaseModel):
    site: str
    mqtt_url: str
    mqtt_connected: bool
    mqtt_subscribed: bool
    mqtt_error: str | None
    messages: int
    bad_messages: int
    rules: int
    open_alerts: int
    stream_subscribers: int


@router.get("/healthz")
def healthz(settings: SettingsDep) -> Health:
    return Health(ok=True, site=settings.plant.site.id)


@router.get("/v1/status")
def status(request: Request, settings: SettingsDep, engine: EngineDep, hub: HubDep, key: Viewer,
           site: SiteQuery = None) -> Status:
    if site is not None:   # another site of the organisation: only for a key that may see it
        site_of(key, settings, site)
    link = request.app.state.mqtt
    c = engine.counters
    return Status(site=settings.plant.site.id, mqtt_url=settings.mqtt.effective_url,
                  mqtt_connected=bool(link and link.connected.is_set()),
                  mqtt_subscribed=bool(link and link.subscribed.is_set()), mqtt_error=link.last_error if link else None,
                  messages=c.messages, bad_messages=c.bad_messages, rules=len(engine.rules),
                  open_alerts=len(engine.open), stream_subscribers=len(hub.subscribers))


class _ApiCollector:
    """The API's own counters and the live figures, as prometheus_client metric families."""

    def __init__(self, request: Request, settings: Settings, engine: Engine, hub: Hub) -> None:
        self.request, self.settings, self.engine, self.hub = request, settings, engine, hub

    def collect(self) -> Iterator[Metric]:
        link = self.request.app.state.mqtt
        hub = self.hub
        c = self.engine.counters
        site = self.settings.plant.site.id
        live = list(self.engine.live.meters.values())
        for name, help_text, value in (
                ("carbonwatch_api_messages", "reading messages received", c.messages),
                ("carbonwatch_api_bad_messages", "messages that did not decode", c.bad_messages),
                ("carbonwatch_api_rule_evaluations", "rule evaluations", c.evaluations),
                ("carbonwatch_api_alerts_fired", "alerts fired", c.fired),
                ("carbonwatch_api_alerts_resolved", "alerts resolved by the engine", c.resolved)):
            counter = CounterMetricFamily(name, help_text, labels=["site"])
            counter.add_metric([site], float(value))
            yield counter
        gauges: list[tuple[str, str, float]] = [
                ("carbonwatch_api_open_alerts", "alerts firing or acknowledged", len(self.engine.open)),
                ("carbonwatch_api_mqtt_connected", "1 when connected to the broker",
                 int(bool(link and link.connected.is_set()))),
                ("carbonwatch_api_stream_subscribers", "live stream clients", len(hub.subscribers)),
                ("carbonwatch_site_power_kw", "live active power of the site, kW",
                 sum(m.power_kw or 0.0 for m in live)),
                ("carbonwatch_site_co2e_rate_kg_per_h",
                 "live CO2e rate of the site, kg/h (calc.rate: latest flow x stored kg CO2e per unit, as /v1/balance)",
                 sum(m.co2e_rate_kg_per_h for m in live))]
        for name, help_text, amount in gauges:
            gauge = GaugeMetricFamily(name, help_text, labels=["site"])
            gauge.add_metric([site], float(amount))
            yield gauge
        power = GaugeMetricFamily("carbonwatch_meter_power_kw", "live active power per meter, kW",
                                  labels=["site", "meter", "area"])
        for m in live:
            if m.power_kw is not None:
                power.add_metric([site, m.meter, m.area], float(m.power_kw))
        yield power
        rate = GaugeMetricFamily("carbonwatch_meter_co2e_rate_kg_per_h",
                                 "live CO2e rate per meter, kg/h (meters with a rate)",
                                 labels=["site", "meter", "area"])
        for m in live:
            if m.rate is not None:
                rate.add_metric([site, m.meter, m.area], float(m.rate.rate_kg_per_h))
        yield rate


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}})
def metrics(request: Request, settings: SettingsDep, engine: EngineDep, hub: HubDep, key: Viewer,
            site: SiteQuery = None) -> Response:
    """The API's counters and live figures, and every ingest worker's counters (from the snapshots the workers
    write, `ingest.metrics.read_plant_metrics`) with the age of each snapshot, so a dead worker shows; of the
    server's own site, or of `site`."""
    if site is not None:
        site_of(key, settings, site)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ApiCollector(request, settings, engine, hub))
    registry.register(SnapshotCollector(read_plant_metrics(settings.plant_data, settings.base_dir)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
