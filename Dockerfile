# One image for both add-ons: `clockify-addons serve api-studio` or `... universal-webhook`.
# Build: docker build -t clockify-addons .   (docs/operations.md)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve the locked dependencies into a virtual environment -----------------------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --no-cache
COPY addon_core ./addon_core
COPY api_studio ./api_studio
COPY universal_webhook ./universal_webhook
COPY alembic ./alembic
COPY manifests ./manifests
# The project as a wheel (migrations and manifests packaged inside), not an editable link.
RUN uv sync --frozen --no-dev --no-editable --no-cache

# --- runtime: the environment only, no compilers, caches or build tools ----------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 addons \
    && useradd --system --uid 10001 --gid addons --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin addons \
    && mkdir -p /app/var \
    && chown addons:addons /app/var
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
EXPOSE 8100 8200
ENTRYPOINT ["clockify-addons"]
CMD ["--help"]
