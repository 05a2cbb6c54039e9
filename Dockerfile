# The project's image for Docker and Kubernetes work pools (see README, "Beyond one machine").
# Documented, not tested here: the machine this project is developed on has no Docker daemon.
#
#   docker build -t registry.example.com/retraining:0.1.0 .
#
# Flow runs start in /opt/retraining (prefect.yaml's pull step sets it, or a git_clone step
# replaces it); RETRAIN_HOME must be a shared POSIX volume with flock (NFSv4, EFS), mounted at
# /data/retraining by the work pool's job variables. The workers themselves (prefect-docker,
# prefect-kubernetes) run elsewhere, from Prefect's own images; this image runs the flows.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    RETRAIN_HOME=/data/retraining

WORKDIR /opt/retraining
# CPU wheels of torch (a CUDA image: use the matching base and index instead)
COPY pyproject.toml README.md ./
COPY model model
COPY tasks tasks
COPY flows flows
COPY deployments deployments
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu .
COPY prefect.yaml prefect.toml retraining.toml ./

RUN useradd --uid 10001 --create-home retrain \
    && mkdir -p /data/retraining && chown retrain /data/retraining
USER retrain
