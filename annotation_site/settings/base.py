"""Settings shared by every environment. Values come from the environment.

Without DATABASE_URL and REDIS_URL the site runs embedded: SQLite under var/ and a
filesystem Celery broker, so `make run` needs no external service.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("PREFLOOP_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.core",
    "apps.accounts",
    "apps.collection",
    "apps.quality",
    "apps.loop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "annotation_site.urls"
WSGI_APPLICATION = "annotation_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.roles",
            ],
        },
    },
]


def postgres_options(database: dict) -> dict:
    """Server-side parameter binding and prepared statements, unless DB_PREPARED_STATEMENTS=0.

    Django turns psycopg's prepared statements off by default (for connection poolers in
    transaction mode). The raters' hot path runs the same dozen statements all day, and
    PostgreSQL spent more time planning them than running them: preparing them halved the
    database's CPU per judgment (BENCHMARKS.md). Behind a pooler that cannot keep prepared
    statements (PgBouncer before 1.21 in transaction mode), set DB_PREPARED_STATEMENTS=0.
    """
    if "postgresql" in database.get("ENGINE", "") and env_bool("DB_PREPARED_STATEMENTS", True):
        database.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    return database


def database_from_env() -> dict:
    url = os.environ.get("DATABASE_URL")
    if url:
        return postgres_options(
            dj_database_url.parse(url, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")))
        )
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "prefloop.sqlite3",
        # Web and worker share the file: wait for the other's write lock instead of failing.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }


DATABASES = {"default": database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": int(os.environ.get("PASSWORD_MIN_LENGTH", "10"))},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Logins (API token endpoint, login page, admin): after LOGIN_FAILURE_LIMIT failures for one
# username, or LOGIN_ADDRESS_FAILURE_LIMIT from one address, within LOGIN_FAILURE_WINDOW
# seconds, logins for it answer 429 until the window ends (apps/accounts/throttling.py).
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "10"))
LOGIN_ADDRESS_FAILURE_LIMIT = int(os.environ.get("LOGIN_ADDRESS_FAILURE_LIMIT", "50"))
LOGIN_FAILURE_WINDOW = int(os.environ.get("LOGIN_FAILURE_WINDOW", "900"))
# An API token unused for this long expires (default 7 days).
API_TOKEN_IDLE_SECONDS = int(os.environ.get("API_TOKEN_IDLE_SECONDS", str(7 * 24 * 3600)))
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Outside production, serve static files straight from the source folders.
WHITENOISE_USE_FINDERS = True
# Files browsers ask for at the site's root (/favicon.ico), served as they are.
WHITENOISE_ROOT = BASE_DIR / "static" / "root"

ARTIFACT_ROOT = Path(os.environ.get("ARTIFACT_ROOT", VAR_DIR / "artifacts"))
# The training loop: the interpreter that runs `python -m trainer` (default: this one), and how
# long a stage's heartbeat may be silent before the watchdog re-queues it.
TRAINER_PYTHON = os.environ.get("TRAINER_PYTHON", "")
LOOP_HEARTBEAT_STALE_SECONDS = int(os.environ.get("LOOP_HEARTBEAT_STALE_SECONDS", "120"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.core.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    # Client addresses (login throttling) come from X-Forwarded-For behind this many proxies.
    "NUM_PROXIES": int(os.environ["NUM_PROXIES"]) if os.environ.get("NUM_PROXIES") else None,
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PrefLoop API",
    "DESCRIPTION": "Rank model outputs, review raters, train reward models and policies.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "apps.core.roles.ROLE_CHOICES",
        "TaskKindEnum": "apps.collection.models.TASK_KINDS",
    },
    # `<id:...>` (apps/core/ids.py): an id, 1 .. 2**63 - 1.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1, "format": "int64"}
    },
}

REDIS_URL = os.environ.get("REDIS_URL", "")
# The cache holds the login throttle's counts: Redis when there is one (every web process
# shares it), else files under var/ (processes of one machine share them).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    )
}
# Redis: an unacknowledged message (its worker died) goes back to the queue after this many
# seconds; the loop's watchdog usually recovers the stage long before (heartbeat).
BROKER_VISIBILITY_TIMEOUT = float(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 6 * 3600))
CELERY_BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
else:
    for sub in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ROUTES = {"loop.run_gpu_stage": {"queue": "gpu"}, "loop.*": {"queue": "default"}}
CELERY_BEAT_SCHEDULE: dict = {
    # Rater quality: reviewers' pages read the latest stored statistics and show their age.
    "quality-snapshots": {
        "task": "quality.snapshots_refresh_all",
        "schedule": float(os.environ.get("QUALITY_REFRESH_SECONDS", "600")),
        "options": {"queue": "default"},
    },
    # Training rounds: advance collecting rounds, re-queue stages whose worker died.
    "loop-watch-rounds": {
        "task": "loop.watch_rounds",
        "schedule": float(os.environ.get("LOOP_WATCH_SECONDS", "15")),
        "options": {"queue": "default"},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"client_errors": {"()": "apps.core.logging.ClientErrorsInOneLine"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django's own "django" logger would also print through its DEBUG-only console handler,
    # with the traceback of every 4xx: one handler, the filtered one, in every mode.
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
