"""The half-wave plate's state machine: spin up (in a direction), spin down (braked or coasting).

As schedlib's SAT policy: spinning up takes 7 minutes, spinning down 15; a spin-up in the other direction than
the one spinning spins down first; the direction is ``True`` for ccw seen from the sky (``freq=2``), ``False``
for cw (``freq=-2``). Better than schedlib: a spin-up is refused (a comment, no command) while the telescope
points (or a type-3 scan would nod) outside ``min_hwp_el..max_hwp_el``, so the plan never spins the HWP where the checker would refuse it.
"""

from __future__ import annotations

from scheduler_server.observing.policies.sat.ops_config import OpsConfig
from scheduler_server.observing.policies.sat.script import comment, num
from scheduler_server.observing.policies.sat.steps import Op, SatState, Visit


def direction_name(hwp_dir: bool | None) -> str | None:
    return None if hwp_dir is None else ("ccw" if hwp_dir else "cw")


def in_hwp_range(el: float, cfg: OpsConfig, amp: float = 0.0) -> bool:
    """Whether the HWP may spin at ``el`` (and over a type-3 scan's nod of ``amp`` either side)."""
    return cfg.min_hwp_el <= el - abs(amp) and el + abs(amp) <= cfg.max_hwp_el


def nod(visit: Visit) -> float:
    """The elevation amplitude a visit's scan sweeps (type 3's el_amp; others scan at constant elevation)."""
    return abs(visit.el_amp) if visit.scan_type == 3 else 0.0


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


def spin_up(state: SatState, hwp_dir: bool | None, cfg: OpsConfig, amp: float = 0.0) -> tuple[list[Op], SatState]:
    """Spin the HWP in ``hwp_dir`` (None: the current or last direction, else ``cfg.hwp_dir_default``), unless
    the elevation (± ``amp``, the scan's nod) is outside the HWP's range: then it is spun down if it spins, and
    a comment says why it is not spun up."""
    limits = f"{num(cfg.min_hwp_el)}..{num(cfg.max_hwp_el)}"
    if not in_hwp_range(state.el, cfg, amp):
        ops, state = spin_down(state, cfg, f"the scan's el {num(state.el)} (nod {num(amp)}) is outside {limits}")
        if cfg.disable_hwp:
            return ops, state
        text = f"hwp not spun up: el {num(state.el)} (nod {num(amp)}) outside {limits}"
        return [*ops, Op("comment", 0.0, (comment(text),))], state
    if cfg.disable_hwp:
        return [], state
    want = _resolve(state, hwp_dir, cfg)
    ops = []
    if state.hwp_spinning:
        if state.hwp_dir == want:
            return [], state
        ops, state = spin_down(state, cfg, "reversing the direction")
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
