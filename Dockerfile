# syntax=docker/dockerfile:1
#
# Attest application image. One image runs every app role of docker-compose.yml:
# web (the default CMD: uWSGI), the Celery workers, beat and the one-shot
# `migrate` job. See docs/operations.md.
#
#   docker build -t attest .                       # CPU image (onnxruntime, CPU provider)
#   docker build --build-arg ATTEST_GPU=1 -t attest-gpu .
#                                                  # swaps in onnxruntime-gpu + CUDA/cuDNN wheels
#
# NO LOCK FILE YET: dependencies are resolved from the version ranges in
# pyproject.toml at build time, so two builds of the same commit on different
# days can contain different library versions. Until a hashed lock file exists,
# keep (tag, push) the images you validated instead of rebuilding an old release.

FROM python:3.12-slim

ARG ATTEST_GPU=0
# Pin this (e.g. "onnxruntime-gpu[cuda,cudnn]==1.22.*") to match the CUDA major
# version your host's NVIDIA driver supports.
ARG ONNXRUNTIME_GPU_SPEC="onnxruntime-gpu[cuda,cudnn]"

# PYTHONPATH=/app: the code runs from /app, not from the copy `pip install .`
# puts in site-packages (templates and static files are not packaged), and this
# keeps the web server, celery and manage.py importing the same tree.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=portal.settings \
    ATTEST_DATA_DIR=/var/lib/attest \
    ATTEST_STATIC_ROOT=/app/staticfiles

# Shared libraries WeasyPrint (dossier PDFs) loads at run time, and a font.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 attest \
 && useradd --system --uid 10001 --gid attest --create-home --home-dir /home/attest \
        --shell /usr/sbin/nologin attest

WORKDIR /app

# Dependencies in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# GPU variant: onnxruntime and onnxruntime-gpu provide the same module and must
# not be installed together. The CUDA/cuDNN libraries come as pip wheels; list
# their directories for the dynamic loader. The host needs the NVIDIA driver and
# the NVIDIA Container Toolkit; without a GPU, onnxruntime falls back to CPU.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN if [ "$ATTEST_GPU" = "1" ]; then \
        pip uninstall -y onnxruntime \
     && pip install "$ONNXRUNTIME_GPU_SPEC" \
     && python -c "import glob, site; print('\n'.join(sorted(glob.glob(site.getsitepackages()[0] + '/nvidia/*/lib'))))" \
            > /etc/ld.so.conf.d/attest-nvidia-wheels.conf \
     && ldconfig; \
    fi

COPY . .

# The server itself (the `attest` client is its own distribution, clients/python,
# not part of this image), then static files. The
# secret key here exists only for this build step; it is not kept in the image.
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info \
 && ATTEST_SECRET_KEY=collectstatic-at-build-time-only-not-a-real-secret \
        python manage.py collectstatic --noinput \
 && mkdir -p /var/lib/attest/media \
 && chown attest:attest /var/lib/attest /var/lib/attest/media

# Code and collected static files (/app/staticfiles, served by whitenoise) stay
# root-owned, read-only for the app user; /var/lib/attest (media/ is a volume
# in compose) and /tmp are writable.
USER attest

EXPOSE 8000

# gunicorn, the one web server; its settings (workers, threads, timeouts, the access
# line with the request id) are read from the environment by deploy/gunicorn.conf.py.
CMD ["gunicorn", "-c", "/app/deploy/gunicorn.conf.py"]
