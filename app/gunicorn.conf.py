"""Gunicorn settings: `gunicorn -c app/gunicorn.conf.py app.wsgi:app`.

Every value comes from the environment with a default here.

Forwarded headers: we rely on Gunicorn's `forwarded_allow_ips` and do NOT add Werkzeug's
ProxyFix. Gunicorn honours X-Forwarded-Proto (the request's scheme) only from peers in
FORWARDED_ALLOW_IPS (default loopback, where NGINX runs; in compose, NGINX's address), and
it is the process that sees the socket's real peer address. A ProxyFix would be a second
trust setting that must agree with the first. The app takes no decision on the client's
address (rate limiting is NGINX's job); X-Forwarded-For is only written to the access log.
"""

import importlib
import os
import shutil
import tempfile


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND") or "127.0.0.1:8000"
# Each worker holds its own copy of the model (tens of MB), so the default is modest;
# threads overlap the I/O (log writes, slow clients) inside a worker.
workers = _env_int("GUNICORN_WORKERS", 2)
threads = _env_int("GUNICORN_THREADS", 4)
# gthread with new connections spread over the workers (app/balanced_worker.py says why).
worker_class = "app.balanced_worker.BalancedThreadWorker"
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than NGINX's upstream keepalive_timeout (60s by default), so that NGINX, not
# Gunicorn, closes idle upstream connections: no request races a closing socket.
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)
# Recycle workers now and then (bounded memory growth); the jitter keeps them from all
# restarting at once. A restarting worker finishes its requests first. Round-robin load
# brings every worker to its limit at about the same time, so the jitter is half the limit:
# with 200 of 2,000 the two workers of a busy service were seen recycling within seconds.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 1000)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
# One native (OpenMP/BLAS) thread per worker thread: the workers and their threads already
# use the cores, and OpenMP's spin-waiting teams multiplied by workers x threads make a
# loaded host crawl (the same reason as TrainingConfig.native_threads). Set before the
# fork, so that every worker's numeric libraries start with it; an explicit value wins.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
accesslog = "-"
errorlog = "-"
loglevel = (os.environ.get("GUNICORN_LOG_LEVEL") or "info").lower()
access_log_format = ('%(h)s "%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(b)s %(M)sms '
                     '"%({x-request-id}o)s" "%(a)s"')
# The heartbeat file on tmpfs: a disk-backed /tmp can stall workers under I/O load.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# No control socket: its default path is one per user, which several servers on one host
# (tests, `make serve`) would fight over, and nothing here uses it.
control_socket_disable = True

# prometheus_client picks multiprocess mode when it is imported with this variable set.
# It is set here, in the master, before the fork, so every worker inherits it. The default
# is a private directory per server, so that two servers on one host never mix samples;
# that directory is removed again when the server exits.
_OWN_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_METRICS_DIR = tempfile.mkdtemp(
        prefix="credit-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _OWN_METRICS_DIR


# Modules every worker needs, imported once in the master so that a forked worker starts
# with them: a recycled worker then costs a fork and a model load (~0.1 s of CPU), not
# ~2 s of imports. Only modules: the app, its model and its metrics are built in each
# worker after the fork (app.wsgi is never imported here), and OMP_NUM_THREADS=1 above
# means the numeric libraries start no thread pools that a fork could not copy.
_SHARED_MODULES = ("numpy", "pandas", "sklearn", "joblib", "flask", "prometheus_client",
                   "app.api", "app.web", "training.train")


def on_starting(server):  # noqa: ANN001 - Gunicorn's hook signature
    """Empty the metrics directory (stale samples of a previous run), import the shared
    modules and seed the registry."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    for module in _SHARED_MODULES:
        importlib.import_module(module)
    seed = os.environ.get("MODEL_SEED_DIR")
    if not seed:
        return
    from app.config import load_settings
    from app.seed import seed_registry
    registry = load_settings()["MODEL_REGISTRY"]
    try:
        version = seed_registry(registry, seed)
    except Exception:  # noqa: BLE001 - serve anyway: /readyz says 503 until a model exists
        server.log.exception("could not seed the registry %s from %s", registry, seed)
        return
    if version:
        server.log.info("seeded the registry %s with %s from %s", registry, version, seed)


def post_worker_init(worker):  # noqa: ANN001 - Gunicorn's hook signature
    """Start the model watcher in a new worker of the service (threads do not survive a
    fork), then take everything loaded so far out of the cyclic garbage collector's sight."""
    import gc
    import sys

    from app import start_watcher
    # Gunicorn loaded the worker's app just before this hook. Another app under these
    # settings (make bench's bare Flask floor) has no model to watch: importing app.wsgi
    # there would build the whole service, its model and its watcher threads, in the floor.
    service = sys.modules.get("app.wsgi")
    if service is not None:
        start_watcher(service.app)
    # The imported libraries and the model are ~150,000 objects that live as long as the
    # worker. A full collection walks them all: ~70 ms with the GIL held, a pause every
    # request in flight waits out (the p99 of the benchmark). Frozen, they are never
    # walked; reference counting still frees them. A model loaded later is not frozen, so
    # the cycles of a replaced one stay collectable.
    gc.freeze()


def worker_exit(server, worker):  # noqa: ANN001 - Gunicorn's hook signature
    """End a finished worker at once, with the status Gunicorn chose for it.

    The interpreter's teardown of a worker's objects costs ~0.5 s of CPU, more than its
    start, and every recycled worker pays it. Nothing needs it: the prediction log is
    written with unbuffered write()s, metrics through a shared mmap, and logging and the
    standard streams are flushed here. A boot error keeps its exit status, which is what
    stops the master instead of respawning a worker that cannot start.
    """
    import logging
    import sys
    leaving = sys.exc_info()[1]
    if not isinstance(leaving, SystemExit):
        return  # not Gunicorn's own exit path: let Python end the process normally
    code = leaving.code
    status = code if isinstance(code, int) else (0 if code is None else 1)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status & 0xFF)


def child_exit(server, worker):  # noqa: ANN001 - Gunicorn's hook signature
    """Fold the metric files of a worker that exited into the merged ones, and delete them,
    so that recycling workers never fills the directory (app/metrics.py)."""
    from app.metrics_files import merge_dead_worker
    try:
        merge_dead_worker(worker.pid, os.environ["PROMETHEUS_MULTIPROC_DIR"])
    except Exception:  # noqa: BLE001 - the master must survive; the loss is logged
        server.log.exception("could not merge the metrics of worker %s", worker.pid)


def on_exit(server):  # noqa: ANN001 - Gunicorn's hook signature
    """Remove the metrics directory this config created (an operator's own one stays)."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)
