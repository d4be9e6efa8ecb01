"""Python instructions per next + submit, counted by callgrind (machine noise does not enter).

Runs the raters' loop in-process through the WSGI application (no HTTP server, no load
client), on a fresh PostgreSQL database seeded like `assignment_throughput.py`, twice under
`valgrind --tool=callgrind`: once with 0 measured pairs and once with `--pairs`, after the
same warm-up. The difference divided by the pairs is what one next + submit costs the web
process, setup excluded. PostgreSQL's own work is not counted (another process).

    .venv/bin/python bench/hot_path_instructions.py               # 100 pairs, ~3 minutes
    .venv/bin/python bench/hot_path_instructions.py --pairs 200

Needs valgrind and PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import assignment_throughput as throughput  # noqa: E402  (sets the environment)

TASKS = 300
WARM_UP = 30


def run_loop(pairs: int) -> None:
    """Seed, warm up, then `pairs` next + submit calls through the WSGI application."""
    throughput.recreate_database()
    plan = throughput.seed([1], TASKS, 4, 3)[1]
    from annotation_site.wsgi import application

    headers = {"HTTP_AUTHORIZATION": f"Token {plan['tokens'][0]}"}

    def post(path: str, body: bytes = b"") -> tuple[str, bytes]:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(throughput.PORT),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": f"127.0.0.1:{throughput.PORT}",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            **headers,
        }
        status: list[str] = []
        body_out = b"".join(application(environ, lambda s, h, e=None: status.append(s)))
        return status[0], body_out

    def one_pair() -> None:
        status, out = post(f"/api/projects/{plan['project_id']}/assignments/next/")
        assert status.startswith("200"), (status, out)
        lease = json.loads(out)
        ids = [c["id"] for c in lease["completions"]]
        answer = {
            "ranking": [[ids[0]], ids[1:3], ids[3:]],
            "likert": {str(ids[0]): 6},
            "client_key": str(uuid.uuid4()),
            "time_spent_ms": 1000,
        }
        status, out = post(
            f"/api/assignments/{lease['assignment_id']}/judgment/", json.dumps(answer).encode()
        )
        assert status.startswith("201"), (status, out)

    for _ in range(WARM_UP + pairs):
        one_pair()


def instructions(pairs: int, out_dir: Path) -> int:
    """Total instructions callgrind counted for a run with `pairs` measured pairs."""
    out_file = out_dir / f"callgrind.{pairs}.out"
    subprocess.run(
        [
            *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"),
            *(sys.executable, __file__, "--inner", str(pairs)),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for line in out_file.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out_file}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100, help=f"at most {TASKS - WARM_UP}")
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner is not None:
        run_loop(args.inner)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = instructions(0, Path(tmp))
        measured = instructions(args.pairs, Path(tmp))
    per_pair = (measured - base) / args.pairs
    print(json.dumps({"pairs": args.pairs, "instructions_per_pair": round(per_pair)}))


if __name__ == "__main__":
    main()
