"""Rules (operating criteria, clause 8.1.1), versioned: list, show with every version, create, change (a new
version), delete (a disabled version); engineers and admins change them, every change is audited."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field

from api.deps import BookDep, EngineDep, Engineer, NowDep, SettingsDep, SiteQuery, Viewer, invalid, site_of
from api.errors import NotFound
from api.rulebook import StoredRule
from calc.rules import Metric, RuleSpec, RuleState, ScopeKind

router = APIRouter(prefix="/v1", tags=["rules"])

RuleId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64)]

EXAMPLE = {"id": "press-peak", "name": "Press line peak power", "metric": "power", "comparison": ">",
           "threshold": 400.0, "clear_threshold": 350.0, "for_s": 60, "severity": "warning", "scope": "area",
           "target": "pressing", "schedule": [{"days": [0, 1, 2, 3, 4], "start": "06:00", "end": "22:00"}]}


class RuleIn(RuleSpec):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64, description="stable id; also the MQTT topic level")


class RuleOut(BaseModel):
    id: str
    version: int
    enabled: bool
    created_at: str
    created_by: str
    unit: str
    spec: RuleSpec


class RuleDetail(RuleOut):
    versions: list[RuleOut]
    phase: str = Field(description="ok | pending | firing (live)")
    value: float | None = Field(description="the metric's live value over the rule's scope")
    projection_method: str | None = Field(default=None, description="allowance projection rules: how the value "
                                          "was projected, as /v1/balance's allowance.projection_method says")
    open_alert: int | None


def _out(r: StoredRule) -> RuleOut:
    return RuleOut(id=r.id, version=r.version, enabled=r.enabled, created_at=r.created_at, created_by=r.created_by,
                   unit=r.spec.unit, spec=r.spec)


def _check_target(settings: SettingsDep, spec: RuleSpec) -> None:
    if spec.scope is ScopeKind.AREA and spec.target not in {m.area for m in settings.plant.meters}:
        raise invalid(("body", "target"), f"no area {spec.target!r} in this plant")
    virtual = settings.plant.virtual()
    if spec.scope is ScopeKind.METER and spec.target not in settings.plant.meters_by_id and spec.target not in virtual:
        raise invalid(("body", "target"), f"no meter {spec.target!r} in this plant")
    if spec.metric is Metric.UNMETERED and (spec.target not in virtual or
                                             sum(t.sign > 0 for t in virtual[spec.target].base) != 1):
        raise invalid(("body", "target"), f"an unmetered rule needs a virtual meter written 'main - sub - ...' "
                      f"(one main once expanded); {spec.target!r} is not one")
    plant = settings.plant
    lines = {m.line for m in plant.meters} | {v.line for v in plant.variables}
    if spec.scope is ScopeKind.LINE and spec.target not in lines:
        raise invalid(("body", "target"), f"no line {spec.target!r} in this plant")
    production = {v.id: v for v in plant.variables if v.kind == "production"}
    if spec.product_variable is not None and spec.product_variable not in production:
        raise invalid(("body", "product_variable"), f"no production variable {spec.product_variable!r} in this "
                      "plant (its [[variables]] with kind = \"production\")")


@router.get("/rules")
def list_rules(settings: SettingsDep, book: BookDep, key: Viewer, site: SiteQuery = None) -> list[RuleOut]:
    """The current version of every rule that is not deleted."""
    return [_out(r) for r in book.current(site_of(key, settings, site))]


@router.get("/rules/{rule_id}", responses={404: {"description": "no such rule on this site"}})
def show_rule(rule_id: RuleId, settings: SettingsDep, book: BookDep, engine: EngineDep, now: NowDep, key: Viewer,
              site: SiteQuery = None) -> RuleDetail:
    site = site_of(key, settings, site)
    versions = book.versions(site, rule_id)
    last = versions[-1]
    state = engine.states.get(rule_id, RuleState())
    value = engine.live.value(last.spec, now)
    made = engine.live.allowance_projection(last.spec, now) if last.spec.metric is Metric.ALLOWANCE_PROJECTION \
        else None
    return RuleDetail(**_out(last).model_dump(), versions=[_out(v) for v in versions], phase=state.phase.value,
                      value=None if math.isnan(value) or math.isinf(value) else value,
                      projection_method=made.method.value if made is not None else None,
                      open_alert=engine.open.get(rule_id))


@router.post("/rules", status_code=201, responses={409: {"description": "the id is taken"},
                                                  422: {"description": "an invalid rule"}})
def create_rule(body: Annotated[RuleIn, Body(openapi_examples={"peak": {"value": EXAMPLE}})],
                settings: SettingsDep, book: BookDep, engine: EngineDep, key: Engineer,
                site: SiteQuery = None) -> RuleOut:
    site = site_of(key, settings, site)
    spec = RuleSpec.model_validate(body.model_dump(exclude={"id"}))
    _check_target(settings, spec)
    rule = book.save(site, body.id, spec, key.name, create=True)
    engine.reload_rules()
    return _out(rule)


@router.put("/rules/{rule_id}", responses={404: {"description": "no such rule"}, 422: {"description": "invalid"}})
def change_rule(rule_id: RuleId, body: Annotated[RuleSpec, Body()], settings: SettingsDep, book: BookDep,
                engine: EngineDep, key: Engineer, site: SiteQuery = None) -> RuleOut:
    """A new version of the rule; the earlier versions stay readable (alerts name the version that fired)."""
    site = site_of(key, settings, site)
    _check_target(settings, body)
    book.get(site, rule_id)
    rule = book.save(site, rule_id, body, key.name)
    engine.reload_rules()
    return _out(rule)


@router.delete("/rules/{rule_id}", responses={404: {"description": "no such rule"}})
def delete_rule(rule_id: RuleId, settings: SettingsDep, book: BookDep, engine: EngineDep, key: Engineer,
                site: SiteQuery = None) -> RuleOut:
    """Disable the rule (a new, disabled version; nothing is erased)."""
    site = site_of(key, settings, site)
    last = book.get(site, rule_id)
    if not last.enabled:
        raise NotFound(f"rule {rule_id!r} is deleted")
    rule = book.save(site, rule_id, last.spec, key.name, enabled=False)
    engine.reload_rules()
    return _out(rule)
