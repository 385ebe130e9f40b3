"""``python -m devtools.openstack_sim``: run the OpenStack simulator until SIGINT/SIGTERM.

On start it prints one JSON line (auth_url, port, ssh_port, ...) and, if asked,
writes a clouds.yaml and/or an openrc file for it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

import yaml

from .app import Simulator
from .config import SimConfig
from .faults import KINDS, parse_rule


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.openstack_sim", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address the APIs listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="API port (default: a free one, printed at start)")
    p.add_argument("--ssh-port", type=int, default=0, help="port of every server's sshd (default: a free one)")
    p.add_argument("--boot-delay", type=float, default=1.0, help="seconds a server stays in BUILD (default 1)")
    p.add_argument("--delete-delay", type=float, default=0.2, help="seconds a deleted server lingers (default 0.2)")
    p.add_argument("--max-servers", type=int, default=50, help="instance quota (default 50)")
    p.add_argument("--fip-pool-size", type=int, default=50, help="floating IPs in the public pool (default 50)")
    p.add_argument("--username", default="demo")
    p.add_argument("--password", default="secret")
    p.add_argument("--project", default="demo")
    p.add_argument("--security-group", action="append", default=[], help="extra security group name (repeatable)")
    p.add_argument(
        "--keypair", action="append", default=[], metavar="NAME=PUBFILE", help="import a public key as keypair NAME"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:k=v,...]",
        help=f"inject a fault; kinds: {', '.join(KINDS)}",
    )
    p.add_argument("--clouds-yaml", type=Path, help="write a clouds.yaml for this simulator here")
    p.add_argument("--openrc", type=Path, help="write an openrc file for this simulator here")
    p.add_argument("--cloud-name", default="sim", help="cloud name in the written clouds.yaml (default sim)")
    return p


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        host=args.host,
        port=args.port,
        ssh_port=args.ssh_port,
        boot_delay=args.boot_delay,
        delete_delay=args.delete_delay,
        max_servers=args.max_servers,
        fip_pool_size=args.fip_pool_size,
        username=args.username,
        password=args.password,
        project_name=args.project,
        security_groups=args.security_group,
    )


def _write_client_files(sim: Simulator, args: argparse.Namespace) -> None:
    """The clouds.yaml and openrc a client of this simulator uses (they hold its password: 0600)."""
    if args.clouds_yaml:
        args.clouds_yaml.write_text(yaml.safe_dump(sim.clouds_yaml(args.cloud_name), sort_keys=False))
        args.clouds_yaml.chmod(0o600)
    if args.openrc:
        args.openrc.write_text(sim.openrc())
        args.openrc.chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s openstack-sim %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        faults = [parse_rule(text) for text in args.fault]
    except ValueError as exc:
        print(f"error: --fault: {exc}", file=sys.stderr)
        return 2
    config = _config(args)
    sim = Simulator(config, faults)
    for item in args.keypair:
        name, sep, path = item.partition("=")
        if not sep:
            print(f"error: --keypair {item!r}: expected NAME=PUBFILE", file=sys.stderr)
            return 2
        sim.cloud.import_keypair(name, Path(path).expanduser().read_text())
    sim.start()
    _write_client_files(sim, args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(
        json.dumps(
            {
                "auth_url": sim.auth_url,
                "port": config.port,
                "ssh_port": config.ssh_port,
                "address_block": config.address_block,
                "cloud": args.cloud_name,
            }
        ),
        flush=True,
    )
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
