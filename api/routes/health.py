"""Liveness (/healthz, no key, for supervisors), /v1/status (broker link and live counters) and /metrics in the
Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from api.deps import EngineDep, SettingsDep, Viewer
from api.stream import Hub

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
def status(request: Request, settings: SettingsDep, engine: EngineDep, key: Viewer) -> Status:
    link = request.app.state.mqtt
    hub: Hub = request.app.state.hub
    c = engine.counters
    return Status(site=settings.plant.site.id, mqtt_url=settings.mqtt.effective_url,
                  mqtt_connected=bool(link and link.connected.is_set()),
                  mqtt_subscribed=bool(link and link.subscribed.is_set()), mqtt_error=link.last_error if link else None,
                  messages=c.messages, bad_messages=c.bad_messages, rules=len(engine.rules),
                  open_alerts=len(engine.open), stream_subscribers=len(hub.subscribers))


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"}})
def metrics(request: Request, settings: SettingsDep, engine: EngineDep, key: Viewer) -> PlainTextResponse:
    link = request.app.state.mqtt
    hub: Hub = request.app.state.hub
    c = engine.counters
    site = settings.plant.site.id
    live = list(engine.live.meters.values())
    lines = [
        ("carbonwatch_api_messages_total", "counter", "reading messages received", c.messages),
        ("carbonwatch_api_bad_messages_total", "counter", "messages that did not decode", c.bad_messages),
        ("carbonwatch_api_rule_evaluations_total", "counter", "rule evaluations", c.evaluations),
        ("carbonwatch_api_alerts_fired_total", "counter", "alerts fired", c.fired),
        ("carbonwatch_api_alerts_resolved_total", "counter", "alerts resolved by the engine", c.resolved),
        ("carbonwatch_api_open_alerts", "gauge", "alerts firing or acknowledged", len(engine.open)),
        ("carbonwatch_api_mqtt_connected", "gauge", "1 when connected to the broker",
         int(bool(link and link.connected.is_set()))),
        ("carbonwatch_api_stream_subscribers", "gauge", "live stream clients", len(hub.subscribers)),
        ("carbonwatch_site_power_kw", "gauge", "live active power of the site, kW",
         sum(m.power_kw or 0.0 for m in live)),
        ("carbonwatch_site_co2e_rate_kg_per_h", "gauge",
         "live CO2e rate of the site, kg/h (calc.rate: latest flow x stored kg CO2e per unit, as /v1/balance)",
         sum(m.co2e_rate_kg_per_h for m in live)),
    ]
    out = []
    for name, kind, help_text, value in lines:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f'{name}{{site="{site}"}} {float(value)!r}']
    out += ["# HELP carbonwatch_meter_power_kw live active power per meter, kW",
            "# TYPE carbonwatch_meter_power_kw gauge"]
    out += [f'carbonwatch_meter_power_kw{{site="{site}",meter="{m.meter}",area="{m.area}"}} {float(m.power_kw)!r}'
            for m in live if m.power_kw is not None]
    out += ["# HELP carbonwatch_meter_co2e_rate_kg_per_h live CO2e rate per meter, kg/h (meters with a rate)",
            "# TYPE carbonwatch_meter_co2e_rate_kg_per_h gauge"]
    out += [f'carbonwatch_meter_co2e_rate_kg_per_h{{site="{site}",meter="{m.meter}",area="{m.area}"}} '
            f'{float(m.rate.rate_kg_per_h)!r}' for m in live if m.rate is not None]
    return PlainTextResponse("\n".join(out) + "\n", media_type="text/plain; version=0.0.4")
