"""``python -m devtools.xnat_sim --seed SEED.yaml``: run the XNAT simulator until SIGINT/SIGTERM.

On start it prints one JSON line (``url``, ``port``, ``pid``, ``ca_file`` with ``--tls``). Passwords come only from the seed file (``--seed
default`` is the built-in seed of the ``xnat_sim`` test fixture); none is ever an argument.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .app import XnatSim
from .seed import SeedError, default_seed
from .state import Faults


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.xnat_sim", description=__doc__.splitlines()[0])
    p.add_argument("--seed", required=True, help="YAML seed file (users, projects, generate), or 'default'")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one, printed at start)")
    p.add_argument("--token-lifetime", type=float, help="alias token lifetime in seconds (default 48 h, as XNAT)")
    p.add_argument("--session-timeout", type=float, help="idle JSESSIONID lifetime in seconds (default 900)")
    p.add_argument("--slow", type=float, default=0.0, help="fault: seconds every request waits")
    p.add_argument("--slow-paths", help="fault: only paths matching this regex are slow")
    p.add_argument("--fail-500", help="fault: paths matching this regex answer 500")
    p.add_argument("--expire-tokens-after", type=float, help="fault: tokens expire this many seconds after issue")
    p.add_argument("--refuse-logins", action="store_true", help="fault: every credential check fails (401)")
    p.add_argument("--redirect", help="fault: paths matching this regex answer a 302 to --redirect-to")
    p.add_argument("--redirect-to", default=Faults.redirect_to, help="where --redirect sends (default: cloud metadata)")
    p.add_argument(
        "--tls", action="store_true", help="HTTPS with a self-signed certificate (its file in the start line)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    faults = Faults(
        slow=args.slow,
        slow_paths=args.slow_paths,
        fail_500=args.fail_500,
        expire_tokens_after=args.expire_tokens_after,
        refuse_logins=args.refuse_logins,
        redirect=args.redirect,
        redirect_to=args.redirect_to,
    )
    try:
        seed = default_seed() if args.seed == "default" else args.seed
        sim = XnatSim(
            seed,
            faults,
            host=args.host,
            port=args.port,
            token_lifetime=args.token_lifetime,
            session_timeout=args.session_timeout,
            tls=args.tls,
        )
    except (OSError, SeedError) as exc:
        print(f"xnat_sim: {exc}", file=sys.stderr)
        return 2
    sim.start()
    ca_file = str(sim.ca_file) if sim.ca_file else None
    print(json.dumps({"url": sim.url, "port": sim.port, "pid": os.getpid(), "ca_file": ca_file}), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
