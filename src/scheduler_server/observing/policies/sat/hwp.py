"""The half-wave plate's state machine: spin up (in a direction), spin down (braked or coasting).

As schedlib's SAT policy: spinning up takes 7 minutes, spinning down 15; a spin-up in the other direction than
the one spinning spins down first; the direction is ``True`` for ccw seen from the sky (``freq=2``), ``False``
for cw (``freq=-2``). Better than schedlib: a spin-up is refused (a comment, no command) while the telescope
points outside ``min_hwp_el..max_hwp_el``, so the plan never spins the HWP where the checker would refuse it.
"""

from __future__ import annotations

from scheduler_server.observing.policies.sat.ops_config import OpsConfig
from scheduler_server.observing.policies.sat.script import comment, num
from scheduler_server.observing.policies.sat.steps import Op, SatState


def direction_name(hwp_dir: bool | None) -> str | None:
    return None if hwp_dir is None else ("ccw" if hwp_dir else "cw")


def in_hwp_range(el: float, cfg: OpsConfig) -> bool:
    return cfg.min_hwp_el <= el <= cfg.max_hwp_el


def spin_down(state: SatState, cfg: OpsConfig, reason: str = "") -> tuple[list[Op], SatState]:
    """Stop the HWP if it spins (even with ``disable_hwp``: a spinning HWP is stopped when safety needs it)."""
    if not state.hwp_spinning:
        return [], state
    lines = (comment(f"hwp spin down: {reason}"),) if reason else ()
    lines += (f"run.hwp.spin_down(active={bool(cfg.brake_hwp)})",)
    op = Op(
        "hwp.spin_down",
        cfg.hwp_spin_down,
        lines,
        lane="hwp",
        state="spin_down",
        detail={"direction": direction_name(state.hwp_dir)},
    )
    return [op], state.at(t=state.t + cfg.hwp_spin_down, hwp_spinning=False)


def spin_up(state: SatState, hwp_dir: bool | None, cfg: OpsConfig) -> tuple[list[Op], SatState]:
    """Spin the HWP in ``hwp_dir`` (None: the current or last direction, else ``cfg.hwp_dir_default``)."""
    if cfg.disable_hwp:
        return [], state
    want = _resolve(state, hwp_dir, cfg)
    ops: list[Op] = []
    if state.hwp_spinning:
        if state.hwp_dir == want:
            return [], state
        ops, state = spin_down(state, cfg, "reversing the direction")
    if not in_hwp_range(state.el, cfg):
        text = f"hwp not spun up: el {num(state.el)} outside {num(cfg.min_hwp_el)}..{num(cfg.max_hwp_el)}"
        return [*ops, Op("comment", 0.0, (comment(text),))], state
    freq = 2 if want else -2
    op = Op(
        "hwp.spin_up",
        cfg.hwp_spin_up,
        (f"run.hwp.spin_up(freq={freq})",),
        lane="hwp",
        state="spin_up",
        detail={"direction": direction_name(want)},
    )
    return [*ops, op], state.at(t=state.t + cfg.hwp_spin_up, hwp_spinning=True, hwp_dir=want)


def _resolve(state: SatState, hwp_dir: bool | None, cfg: OpsConfig) -> bool:
    if hwp_dir is not None:
        return bool(hwp_dir)
    if state.hwp_dir is not None:
        return bool(state.hwp_dir)
    return bool(cfg.hwp_dir_default)
