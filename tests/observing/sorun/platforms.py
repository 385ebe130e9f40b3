"""The platform the simulated agents stand for: motion limits, the telescope's state when a script starts, and which
agents are online."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SunPolicy:
    """The ACU agent's own Sun avoidance (socs acu/avoidance.py; its DEFAULT_POLICY is 20 deg and 1 h)."""

    exclusion_radius: float = 20.0
    min_sun_time: float = 3600.0


@dataclass(frozen=True)
class Platform:
    """A SAT: el limits of the telescope model (observing/telescope.py), az limits of socs' satp example config.

    The state the telescope is in when the script starts (``park``, ``boresight``, ``hwp_direction``: None
    stopped, 'cw' or 'ccw' spinning) is what the agents report until the script changes it.
    """

    az_limits: tuple[float, float] = (-90.0, 480.0)
    el_limits: tuple[float, float] = (20.0, 90.0)
    park: tuple[float, float] = (180.0, 60.0)
    smurfs: int = 2  # sorunlib 0.1.35 mishandles exactly one (it keeps the id string, not a client)
    test_mode: bool = True  # which SMuRF agent class is online: SmurfFileEmulator, or PysmurfController
    hwp: bool = True  # an HWP supervisor online
    sun: SunPolicy | None = None  # the ACU's Sun avoidance; None: off (a site configures it)
    boresight: float = 0.0
    boresight_limits: tuple[float, float] = (-55.0, 55.0)  # socs' satp example motion_limits
    hwp_direction: str | None = None
    hwp_grip_state: str = "ungripped"
    # the HWP's elevation range: the ACU's HWP interlocks and the supervisor's spin-up check; None: neither
    hwp_el: tuple[float, float] | None = None
    wiregrid: bool = False  # the wiregrid's actuator, kikusui, encoder and labjack agents online
    wiregrid_position: str = "outside"
    detectors_biased: bool = True  # the detectors biased when the script starts (a relock leaves them unbiased)
    iboots: tuple[str, ...] = ()  # iBoot PDUs online by instance id (satp3's preamble reads one's outlets)

    def at(self, **changes) -> Platform:
        return replace(self, **changes)


# A SAT as the observatory runs it: socs' satp example ACU limits (az -90..450, el 18.5..90, boresight -55..55),
# the real pysmurf-controllers, an HWP interlocked to schedlib's min_hwp_el/max_hwp_el (40..60), the wiregrid.
SAT = Platform(az_limits=(-90.0, 450.0), el_limits=(18.5, 90.0), test_mode=False, hwp_el=(40.0, 60.0), wiregrid=True)
