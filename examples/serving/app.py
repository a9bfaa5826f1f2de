"""A FastAPI + uvicorn model server wired with ``parity.watch``, started by one command:

    python examples/serving/app.py --golden golden/ --port 8000            # the demo model
    python examples/serving/app.py --golden golden-minilm/ --model minilm  # all-MiniLM-L6-v2

On the first start it writes the model's files (``--workdir``, default next to the golden
record) and records the golden record from them; later starts reuse both, so the golden
record keeps guarding the model whatever happens to its files afterwards.

Endpoints: ``POST /predict`` ``{"texts": [...]}``; ``GET /metrics`` (Prometheus);
``GET /parity/status``; ``POST /parity/check`` (run the golden canary now);
``POST /admin/reload`` (reload weights and tokenizer from disk, as after a deployment);
``GET /healthz``. With ``--allow-test-hooks`` only: ``POST /debug/train`` and
``POST /debug/eval`` (put the model in training or eval mode, as a stray code path would).
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Response
from model import Served, load, prepare
from pydantic import BaseModel

import parity

log = logging.getLogger("serving")


class Texts(BaseModel):
    texts: list[str]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--golden", type=Path, required=True, help="golden record (recorded here if missing)")
    p.add_argument("--model", choices=("demo", "minilm"), default="demo")
    p.add_argument("--workdir", type=Path, help="the model's files [default: <golden>/../<model>-model]")
    p.add_argument("--state-dir", type=Path, help="watch state [default: <golden>/../watch-state]")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--sample-every", type=int, default=100)
    p.add_argument("--canary-every", type=float, default=600.0, help="seconds; 0: only POST /parity/check")
    p.add_argument("--allow-test-hooks", action="store_true", help="serve /debug/train and /debug/eval")
    return p.parse_args(argv)


def golden_record(served: Served, golden: Path) -> None:
    """Record the golden record from the freshly deployed model, once."""
    if (golden / "manifest.json").is_file():
        return
    capture = "full" if served.kind == "demo" else "stats"
    result = parity.record(served.pipeline, out=golden, capture=capture)
    log.info("golden record written: %s (%d layers, capture=%s)", result.path, result.layers, capture)


def build_app(args: argparse.Namespace) -> FastAPI:
    workdir = args.workdir or args.golden.resolve().parent / f"{args.model}-model"
    prepare(args.model, workdir)
    served = load(args.model, workdir)
    golden_record(served, args.golden)
    watch = parity.watch(served.pipeline, golden=args.golden, sample_every=args.sample_every,
                         canary_every=args.canary_every or None, name=args.model,
                         state_dir=args.state_dir or args.golden.resolve().parent / "watch-state")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        watch.close()

    app = FastAPI(title="parity watch example", lifespan=lifespan)
    app.state.watch, app.state.served = watch, served
    _routes(app, watch, served, args.allow_test_hooks)
    return app


def _routes(app: FastAPI, watch: Any, served: Served, test_hooks: bool) -> None:
    @app.post("/predict")
    def predict(body: Texts) -> dict[str, Any]:
        if not body.texts:
            raise HTTPException(422, "texts is empty")
        with torch.no_grad():
            out = watch(body.texts)
        return {"model": served.kind, "outputs": out.tolist()}

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/parity/status")
    def status() -> dict[str, Any]:
        return dict(watch.status().to_json())

    @app.post("/parity/check")
    def check() -> dict[str, Any]:
        result = watch.check()
        return {"verdict": result.verdict, "reason": result.reason, "probable_cause": result.probable_cause}

    @app.post("/admin/reload")
    def reload() -> dict[str, Any]:
        with watch.exclusive():  # no request or canary sees half a reload
            return served.reload()

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "verdict": watch.status().verdict}

    if test_hooks:
        @app.post("/debug/train")
        def train() -> dict[str, Any]:
            with watch.exclusive():
                served.pipeline.model.train()
            return {"training": True}

        @app.post("/debug/eval")
        def evaluate() -> dict[str, Any]:
            with watch.exclusive():
                served.pipeline.model.eval()
            return {"training": False}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s", stream=sys.stderr)
    app = build_app(args)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
