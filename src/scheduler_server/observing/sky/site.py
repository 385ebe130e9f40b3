"""Where the telescope is. Kept apart from ``sky`` so that configs can name a site without numpy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    """Geodetic latitude and longitude (deg) and height (m) of the telescope."""

    name: str
    telescope: str
    lat: float
    lon: float
    elevation: float

    @property
    def key(self) -> str:
        return f"{self.lat:+.6f}_{self.lon:+.6f}_{self.elevation:.1f}"


# The Simons Observatory small-aperture telescopes in the Atacama desert (the seed's site).
ATACAMA = Site("ATACAMA", "SAT", -22.958, -67.786, 5200.0)
