"""On-site generation and export: directions, net import, self-consumption, and scope 2 worked by hand."""

from __future__ import annotations

import pytest

from calc.generation import Direction, Flows, direction_of, scope2_with_generation


@pytest.mark.parametrize(("quantity", "direction"), [
    ("active_energy_import", Direction.IMPORT), ("volume", Direction.IMPORT),
    ("active_energy_export", Direction.EXPORT), ("active_energy_generation", Direction.GENERATION),
])
def test_direction_of_a_quantity(quantity: str, direction: Direction) -> None:
    assert direction_of(quantity) is direction


def test_net_import_self_consumption_and_consumption() -> None:
    f = Flows(import_energy=1000.0, export_energy=150.0, generation_energy=400.0)
    assert (f.net_import, f.self_consumed, f.consumption) == (850.0, 250.0, 1250.0)
    assert Flows(100.0, 300.0).net_import == -200.0  # sold more than bought
    assert Flows(100.0, 300.0, 200.0).self_consumed == 0.0  # export beyond the measured generation
    assert f + Flows(10.0, 1.0, 2.0) == Flows(1010.0, 151.0, 402.0)


def test_scope2_with_generation_by_hand() -> None:
    # 1000 kWh bought, 400 kWh made on site, 150 kWh of it sold to the grid; grid 0.5703, residual 0.6 kg/kWh;
    # GECs cover 200 kWh of the import; the certificates of 100 kWh of the self-consumed solar were sold
    s = scope2_with_generation(Flows(1000.0, 150.0, 400.0), 0.5703, 0.6, covered_kwh=200.0, sold_attributes_kwh=100.0)
    assert s.location_kg == pytest.approx(1000 * 0.5703)  # export and generation change nothing here
    assert s.market_kg == pytest.approx((800 + 100) * 0.6)
    assert (s.self_consumed_kwh, s.avoided_location_kg) == (250.0, pytest.approx(250 * 0.5703))


def test_an_export_counter_does_not_change_location_based_scope2() -> None:
    without = scope2_with_generation(Flows(1000.0), 0.5703, 0.6)
    with_export = scope2_with_generation(Flows(1000.0, 300.0, 500.0), 0.5703, 0.6)
    assert with_export.location_kg == without.location_kg
    assert with_export.market_kg == without.market_kg  # no attributes sold: self-consumed solar is 0 kg


def test_sold_attributes_count_at_most_the_self_consumed_energy() -> None:
    s = scope2_with_generation(Flows(100.0, 50.0, 80.0), 0.5, 1.0, sold_attributes_kwh=500.0)
    assert s.market_kg == pytest.approx(100 + 30)
    with pytest.raises(ValueError, match=">= 0"):
        scope2_with_generation(Flows(-1.0), 0.5, 0.5)
