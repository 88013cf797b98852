"""``python -m robustret.demo --run OUT``: a local web page over a finished experiment."""

from __future__ import annotations

import argparse
import sys

from robustret.cli.boundary import run_command

PROG = "python -m robustret.demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a page that searches the gallery of a finished run with original, "
                    "degraded and restored queries (see docs/demo.md).")
    parser.add_argument("--run", required=True, metavar="OUT",
                        help="a finished experiment folder (config.json, results.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")

    from robustret.demo.app import bind, create_app, make_server
    from robustret.demo.run import load_run

    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print(f"loading {args.run} ...", flush=True)
    status, service = run_command(PROG, lambda: load_run(args.run, args.device))
    if service is None:
        sock.close()
        return status
    host, port = sock.getsockname()[:2]
    print(f"robustret demo: http://{host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        make_server(create_app(service)).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C while serving: a stop, not an error
        print("stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
