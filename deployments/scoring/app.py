"""The scoring service: FastAPI app over :mod:`model.serving` (``retrain serve``).

``POST /predict`` scores JSON rows (``{"rows": [...]}``) or an Arrow IPC / Parquet body with
the current model set (read once per request), appends the rows to the prediction log, and
answers per row ``id``, ``score``, ``label``, ``version``, ``role`` (JSON; Arrow IPC when the
request accepts ``application/vnd.apache.arrow.stream``). ``GET /health``, ``GET /version``,
``GET /metrics``. A background task follows the registry (poll, and a Prefect
``retraining.model.promoted`` or ``rolled_back`` event when a Prefect API is configured). The
hot path is orjson + NumPy + torch: no pydantic, no pandas.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import hmac
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from deployments.scoring.metrics import Metrics
from model.errors import RetrainError
from model.serving.features import (
    RequestError,
    check_integer_ids_rows,
    check_integer_ids_table,
    check_limits,
)
from model.serving.labels import production_contract
from model.serving.log import PredictionLog, log_folder
from model.serving.models import DEFAULT_WATCH_MAX_DAYS, ModelHolder, ModelSet, Scored

logger = logging.getLogger("retrain.serve")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
API_KEY_HEADER = "x-api-key"
LOG_BUFFER_ROWS = 200_000
"""Rows the prediction log buffers at least (twice --max-rows when that is more)."""
ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
PROMOTED_EVENT = "retraining.model.promoted"
ROLLED_BACK_EVENT = "retraining.model.rolled_back"
FOLLOWED_EVENTS = (PROMOTED_EVENT, ROLLED_BACK_EVENT)  # production changes that wake the poll


@dataclass
class ServeConfig:
    """Everything ``retrain serve`` configures."""

    registry: Path
    predictions_dir: Path
    model_name: str = "demo"
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_rows: int = 10_000
    max_bytes: int = 16 * 2**20
    poll_seconds: float = 2.0
    shadow: str = "watch"
    watch_max_days: float = DEFAULT_WATCH_MAX_DAYS
    log_enabled: bool = True
    flush_rows: int = 10_000
    flush_seconds: float = 5.0
    flush_pause: float = 0.0
    events: bool = True
    home: Path | None = None
    """The working root (RETRAIN_HOME): where production's training manifest is read from, for
    the type of its id column (None: ids are checked as strings or integers only)."""

    def check(self) -> None:
        """Refuse a configuration the service must not run with (exit 2 in the CLI)."""
        if self.host not in LOCAL_HOSTS and not self.api_key:
            raise ServeConfigError(
                f"--host {self.host}: binding beyond 127.0.0.1 needs an API key "
                "(--api-key or RETRAIN_SERVE_API_KEY)"
            )
        if isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise ServeConfigError(f"--port {self.port}: a TCP port is 1 to 65535")
        for name in ("max_rows", "max_bytes", "flush_rows"):
            if getattr(self, name) < 1:
                raise ServeConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.poll_seconds <= 0 or self.flush_seconds <= 0:
            raise ServeConfigError("--poll-seconds and --flush-seconds must be positive")
        if not 0 < self.watch_max_days <= 366:
            raise ServeConfigError(
                f"--watch-max-days must be in (0, 366], got {self.watch_max_days}"
            )


class ServeConfigError(RetrainError):
    """A configuration ``retrain serve`` refuses to start with."""


def _error(status: int, message: str) -> Response:
    """The JSON error answer: ``{"detail": message}`` on one line (a library's multi-line
    text folded)."""
    message = " ".join(message.split())
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(
        orjson.dumps({"detail": message}), status, headers=headers, media_type="application/json"
    )


class Service:
    """The state behind the routes: the model holder, the log, the metrics."""

    def __init__(self, config: ServeConfig, holder: ModelHolder | None = None) -> None:
        config.check()
        self.config = config
        self.holder = holder or ModelHolder(
            config.registry, shadow=config.shadow, watch_max_days=config.watch_max_days
        )
        self.holder.refresh()  # raises ModelLoadError when nothing can serve
        self.metrics = Metrics()
        self.started = time.time()
        self.wake = asyncio.Event()
        models = self._models()
        enc = models.production.encoder
        self.log: PredictionLog | None = None
        if config.log_enabled:
            self.log = PredictionLog(
                log_folder(config.predictions_dir, config.model_name),
                enc.id_column,
                enc.numeric,
                enc.categorical,
                flush_rows=config.flush_rows,
                flush_seconds=config.flush_seconds,
                pause_before_rename=config.flush_pause,
                max_buffer_rows=max(LOG_BUFFER_ROWS, 2 * config.max_rows),  # any request fits
            )
        self.integer_ids = _integer_ids(config)

    def _models(self) -> ModelSet:
        models = self.holder.current
        assert models is not None  # refresh() succeeded in __init__
        return models

    # ------------------------------------------------------------------ request path

    def authorised(self, request: Request) -> bool:
        key = self.config.api_key
        if not key:
            return True
        given = request.headers.get(API_KEY_HEADER, "")
        return hmac.compare_digest(given.encode(), key.encode())

    async def body(self, request: Request) -> bytes:
        limit = self.config.max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(
                f"request body of {int(declared):,} bytes; the limit is {limit:,} (--max-bytes)",
                status=413,
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(
                        f"request body over {limit:,} bytes (--max-bytes)", status=413
                    )
                chunks.append(chunk)
        except ClientDisconnect:
            raise RequestError(
                f"the client disconnected after {size:,} bytes of its body", status=400
            ) from None
        return b"".join(chunks)

    def score(self, body: bytes, content_type: str) -> Scored:
        """Parse, check, score and log one request's rows: rows the log cannot take are
        refused before they are scored, never served and dropped."""
        models = self._models()  # one consistent set for the whole request
        kind = content_type.split(";", 1)[0].strip().lower()
        id_column = models.production.encoder.id_column
        if kind in ("", "application/json"):
            rows = _json_rows(body)
            check_limits(len(rows), self.config.max_rows)
            if self.integer_ids:
                check_integer_ids_rows(rows, id_column)
            with self._log_room(len(rows)) as log:
                scored = models.score(models.encode_rows(rows), rows)
                log(scored)
            return scored
        if kind in (ARROW_STREAM, ARROW_FILE, *PARQUET_TYPES):
            table = _table(body, kind)
            check_limits(table.num_rows, self.config.max_rows)
            if self.integer_ids:
                check_integer_ids_table(table, id_column)
            with self._log_room(table.num_rows) as log:
                scored = models.score(models.production.encoder.from_table(table), table)
                log(scored)
            return scored
        raise RequestError(
            f"content type {kind!r} is not accepted: send application/json, {ARROW_STREAM}, "
            f"{ARROW_FILE} or {PARQUET_TYPES[0]}",
            status=415,
        )

    @contextlib.contextmanager
    def _log_room(self, rows: int) -> Iterator[Callable[[Scored], None]]:
        """Room for ``rows`` in the prediction log's buffer, held while the request is scored
        (503 when the disk is not keeping up); yields the function that logs the scored rows.
        Without a log, nothing is held."""
        log = self.log
        if log is None:
            yield lambda scored: None
            return
        if not log.reserve(rows):
            raise RequestError(
                f"the prediction log's buffer is full ({log.pending:,} rows not yet written: "
                "the disk is not keeping up); retry later",
                status=503,
            )
        logged = False

        def write(scored: Scored) -> None:
            nonlocal logged
            log.append(scored, reserved=True)
            logged = True

        try:
            yield write
        finally:
            if not logged:
                log.release(rows)


def _integer_ids(config: ServeConfig) -> bool:
    """Whether production was trained on integer ids (its training manifest says so)."""
    if config.home is None:
        return False
    try:
        contract = production_contract(config.registry, config.home)
    except (RetrainError, OSError) as exc:
        logger.warning("ids checked as strings or integers only: %s", exc)
        return False
    id_type = contract.id_type if contract is not None else None
    return id_type is not None and pa.types.is_integer(id_type)


def _json_rows(body: bytes) -> list[Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # the standard parser reads NaN/Infinity, which validation then names
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise RequestError(f"body is not valid JSON: {what}") from None
    if not isinstance(payload, dict) or "rows" not in payload:
        raise RequestError('body must be a JSON object {"rows": [{...}, ...]}')
    rows = payload["rows"]
    if not isinstance(rows, list):
        raise RequestError(f"'rows' must be a list of objects, got {type(rows).__name__}")
    return rows


def _table(body: bytes, kind: str) -> pa.Table:
    try:
        if kind == ARROW_STREAM:
            reader = pa.BufferReader(body)
            table = ipc.open_stream(reader).read_all()
            rest = len(body) - reader.tell()
            if rest:  # a second stream (or garbage) after the end of the first
                raise RequestError(
                    f"body holds {rest:,} bytes after the end of its Arrow stream: send one "
                    "stream per request"
                )
        elif kind == ARROW_FILE:
            table = ipc.open_file(pa.BufferReader(body)).read_all()
        else:
            table = pq.read_table(pa.BufferReader(body))
        names = table.column_names  # decoded here: a corrupt name is not UTF-8
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, RequestError):
            raise
        raise RequestError(f"body is not a readable {kind} table: {str(exc)[:200]}") from None
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RequestError(f"body has duplicate column names: {duplicated[:10]}")
    return table


def _json_response(scored: Scored) -> Response:
    ids = scored.batch.ids
    scores = scored.scores.tolist()
    labels = scored.labels.tolist()
    out = [
        {"id": ids[i], "score": scores[i], "label": labels[i], "version": v, "role": r}
        for i, (v, r) in enumerate(zip(scored.versions, scored.roles, strict=True))
    ]
    return Response(orjson.dumps({"predictions": out}), media_type="application/json")


def _arrow_response(scored: Scored) -> Response:
    table = pa.table(
        {
            "id": pa.array(scored.batch.ids, pa.string()),
            "score": pa.array(scored.scores, pa.float64()),
            "label": pa.array(scored.labels, pa.int8()),
            "version": pa.array(scored.versions, pa.string()),
            "role": pa.array(scored.roles, pa.string()),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue(), media_type=ARROW_STREAM)


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def create_app(config: ServeConfig, holder: ModelHolder | None = None) -> FastAPI:
    """The FastAPI app; models are loaded here (a failure raises before serving)."""
    service = Service(config, holder)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gc.freeze()  # the loaded modules and models: out of the collector's way (p99)
        if service.log is not None:
            service.log.start()
        tasks = [asyncio.create_task(_follow(service))]
        if config.events:
            tasks.append(asyncio.create_task(_subscribe(service)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if service.log is not None:
                await asyncio.to_thread(service.log.close)
                counters = service.log.counters
                logger.info(
                    "prediction log closed: %d row(s) written, %d dropped",
                    counters.written,
                    counters.dropped,
                )

    app = FastAPI(title="retrain scoring service", lifespan=lifespan, docs_url=None)
    app.state.service = service

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        rows = 0
        try:
            if not service.authorised(request):
                raise RequestError(f"missing or wrong API key (header {API_KEY_HEADER})", 401)
            body = await service.body(request)
            scored = service.score(body, request.headers.get("content-type", ""))
            rows = len(scored.batch)
            accept = request.headers.get("accept", "")
            response = _arrow_response(scored) if ARROW_STREAM in accept else _json_response(scored)
        except RequestError as exc:
            if exc.status == 400 and "disconnected" in str(exc):
                logger.info("%s", exc)  # a log line, not a traceback
            response = _error(exc.status, str(exc))
        except Exception as exc:  # a bug must not take the service down
            logger.exception("scoring failed")
            response = _error(500, f"scoring failed: {type(exc).__name__}")
        service.metrics.observe(response.status_code, time.perf_counter() - start, rows)
        return response

    @app.get("/health")
    async def health() -> Response:
        """200 ``ok`` (with ``problems`` when the registry needs attention, e.g. a challenger
        that is gone and no longer routed to); 503 ``degraded`` when production's files are
        damaged: it is still served from memory, but the service could not restart."""
        models = service._models()
        damaged = service.holder.production_damaged
        doc = {"status": "degraded" if damaged else "ok", "problems": list(models.problems)}
        return Response(orjson.dumps(doc), 503 if damaged else 200, media_type="application/json")

    @app.get("/version")
    async def version(request: Request) -> Response:
        if not service.authorised(request):
            return _error(401, f"missing or wrong API key (header {API_KEY_HEADER})")
        models = service._models()

        def describe(m: Any) -> dict[str, Any] | None:
            if m is None:
                return None
            return {"version": m.version, "sha256": m.sha256, "loaded_at": _iso(m.loaded_at)}

        doc = {
            "model": config.model_name,
            "production": describe(models.production),
            "challenger": describe(models.challenger),
            "traffic": models.traffic,
            "shadow": describe(models.shadow),
            "shadow2": describe(models.shadow2),
            "shadow_mode": config.shadow,
            "set_loaded_at": _iso(models.loaded_at),
            "problems": list(models.problems),
            "last_reload_error": service.holder.last_error,
        }
        return Response(orjson.dumps(doc), media_type="application/json")

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not service.authorised(request):
            return _error(401, f"missing or wrong API key (header {API_KEY_HEADER})")
        log = service.log
        counters = log.counters if log is not None else None
        gauges = {
            "retrain_serve_reloads_total": (
                "counter",
                "Model sets swapped in after start.",
                service.holder.reloads,
            ),
            "retrain_serve_reload_errors_total": (
                "counter",
                "Versions that failed to load or registry reads that failed.",
                service.holder.reload_errors,
            ),
            "retrain_serve_log_rows_written_total": (
                "counter",
                "Rows written to the prediction log.",
                counters.written if counters else 0,
            ),
            "retrain_serve_log_rows_dropped_total": (
                "counter",
                "Rows the prediction log could not write (full disk, slow disk).",
                counters.dropped if counters else 0,
            ),
            "retrain_serve_log_rows_pending": (
                "gauge",
                "Rows buffered, not yet written.",
                log.pending if log is not None else 0,
            ),
        }
        text = service.metrics.render(gauges)
        return Response(text, media_type="text/plain; version=0.0.4")

    return app


async def _follow(service: Service) -> None:
    """Poll the registry (and wake on a promotion event); swap in a new set when it changed."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.wake.wait(), service.config.poll_seconds)
        service.wake.clear()
        try:
            await asyncio.to_thread(service.holder.refresh)
        except Exception:  # never stop following
            logger.exception("following the registry failed")


async def _subscribe(service: Service) -> None:
    """Wake the follower on ``retraining.model.promoted`` and ``retraining.model.rolled_back``
    (the post-promotion watch's rollback) when a Prefect API is configured."""
    try:
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            return
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

        event_filter = EventFilter(  # this model's events only
            event=EventNameFilter(name=list(FOLLOWED_EVENTS)),
            resource=EventResourceFilter(id=[f"retraining.model.{service.config.model_name}"]),
        )
        async with get_events_subscriber(filter=event_filter) as subscriber:
            logger.info("listening for %s events", ", ".join(FOLLOWED_EVENTS))
            async for _event in subscriber:
                service.wake.set()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the poll still follows promotions
        logger.warning("no event subscription (%s); polling only", exc)
