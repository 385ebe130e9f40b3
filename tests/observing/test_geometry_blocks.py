"""Angular distances to scan boxes, and the interval algebra that cuts blocks."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler_server.observing.policies.basic import blocks
from scheduler_server.observing.policies.basic.blocks import Scan
from scheduler_server.observing.sky.geometry import (
    angular_distance,
    azimuth_gap,
    cos_distance_to_box,
    cos_distance_to_box_at,
    distance_to_box,
)


def test_distance_to_a_point_is_the_great_circle_distance():
    assert distance_to_box(10.0, 30.0, 10.0, 10.0, 50.0, 50.0) == pytest.approx(20.0)
    # Along the horizon an azimuth difference is an angle.
    assert distance_to_box(100.0, 0.0, 130.0, 130.0, 0.0, 0.0) == pytest.approx(30.0)
    # Two points at the zenith's side: the pole is 90 deg from the horizon.
    assert distance_to_box(0.0, 90.0, 200.0, 200.0, 0.0, 0.0) == pytest.approx(90.0)


def test_distance_to_an_arc_uses_its_nearest_end_and_wraps_through_north():
    # Scan from az 350 through north to az 10 at el 0.
    assert distance_to_box(5.0, 0.0, 350.0, 370.0, 0.0, 0.0) == pytest.approx(0.0)
    assert distance_to_box(20.0, 0.0, 350.0, 370.0, 0.0, 0.0) == pytest.approx(10.0)
    assert distance_to_box(330.0, 0.0, 350.0, 370.0, 0.0, 0.0) == pytest.approx(20.0)
    assert azimuth_gap(180.0, 350.0, 370.0) == pytest.approx(170.0)


def test_distance_to_a_rectangle_reaches_inside_its_elevation_span():
    # The sun between the rectangle's elevations, 30 deg of azimuth away on the horizon side.
    assert distance_to_box(0.0, 0.0, 30.0, 60.0, -10.0, 10.0) == pytest.approx(30.0)
    # Inside: zero.
    assert distance_to_box(45.0, 5.0, 30.0, 60.0, -10.0, 10.0) == pytest.approx(0.0)


def test_the_fast_cosine_form_agrees_with_the_exact_distance():
    rng = np.random.default_rng(7)
    az, el = rng.uniform(0, 360, 5000), rng.uniform(-90, 90, 5000)
    a, e = np.radians(az), np.radians(el)
    for box in [(10, 50, 40, 40), (350, 370, 30, 30), (100, 100, 60, 60), (200, 330, 20, 70), (0, 400, 50, 50)]:
        exact = distance_to_box(az, el, *box)
        fast = np.degrees(
            np.arccos(np.clip(cos_distance_to_box(np.cos(a), np.sin(a), np.sin(e), np.cos(e), box), -1, 1))
        )
        assert np.abs(exact - fast).max() < 1e-4, box


def test_the_one_direction_form_agrees_with_the_array_form():
    rng = np.random.default_rng(5)
    az, el = rng.uniform(0, 360, 400), rng.uniform(-90, 90, 400)
    a, e = np.radians(az), np.radians(el)
    for box in [
        (10, 50, 40, 40),
        (350, 370, 30, 30),
        (100, 100, 60, 60),
        (200, 330, 20, 70),
        (0, 400, 50, 50),
        (-20, 10, 0, 89),
    ]:
        many = cos_distance_to_box(np.cos(a), np.sin(a), np.sin(e), np.cos(e), box)
        one = np.array([cos_distance_to_box_at(x, y, box) for x, y in zip(az, el)])
        assert np.abs(many - one).max() < 1e-12, box


def test_the_exact_distance_is_the_minimum_over_a_dense_sample_of_the_box():
    rng = np.random.default_rng(11)
    for _ in range(20):
        box = (rng.uniform(0, 300), 0, rng.uniform(0, 60), 0)
        box = (box[0], box[0] + rng.uniform(0, 60), box[2], box[2] + rng.uniform(0, 30))
        sun_az, sun_el = rng.uniform(0, 360), rng.uniform(-30, 90)
        grid_az, grid_el = np.meshgrid(np.linspace(box[0], box[1], 300), np.linspace(box[2], box[3], 300))
        brute = angular_distance(sun_az, sun_el, grid_az, grid_el).min()
        assert distance_to_box(sun_az, sun_el, *box) == pytest.approx(brute, abs=0.2)
        assert distance_to_box(sun_az, sun_el, *box) <= brute + 1e-9


def test_intervals_from_mask_union_pad_subtract():
    t = np.arange(0, 100, 10)
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 0, 1, 1], dtype=bool)
    assert blocks.from_mask(t, mask).tolist() == [[10, 20], [50, 50], [80, 90]]
    assert blocks.union(np.array([[50, 60], [0, 10], [5, 20], [60, 70]])).tolist() == [[0, 20], [50, 70]]
    assert blocks.pad(np.array([[10, 20], [40, 50]]), 10, 5).tolist() == [[0, 25], [30, 55]]
    assert blocks.subtract(0, 100, np.array([[10, 20], [15, 30], [90, 120]])) == [(0, 10), (30, 90)]
    assert blocks.subtract(0, 100, blocks.empty()) == [(0, 100)]
    assert blocks.subtract(0, 100, np.array([[-5, 200]])) == []


def test_cutting_a_scan_records_what_was_removed_and_why():
    scan = Scan("field", "master", 1000, 5000, 120.0, 50.0, 30.0)
    pieces = blocks.cut_scan(scan, np.array([[2000, 2600]]), "sun-avoidance")
    assert [(p.t0, p.t1) for p in pieces] == [(1000, 2000), (2600, 5000)]
    assert all(p.cuts == ("sun-avoidance: removed 1970-01-01 00:33:20 to 1970-01-01 00:43:20",) for p in pieces)
    assert blocks.cut_scan(scan, np.array([[6000, 7000]]), "x") == [scan]
