# csi-vso: one image for both processes (`csi-vso operator`, `csi-vso provider`).
#
#   docker build -t registry.example.com/csi-vso:0.1.0 .
#
# Stage 1 installs the package and its runtime dependencies into a virtualenv. Every
# dependency ships manylinux wheels (grpcio, protobuf, cryptography, ...), so neither stage
# needs a compiler; the slim base has none. The gRPC modules generated from
# proto/provider.proto are committed inside the package (csi_vso/providerapi/), so the image
# contains them without running grpcio-tools. Only the runtime dependencies are installed:
# no [demo] or [dev] extras (no OpenBao, PostgreSQL, pytest, grpcio-tools).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/csi-vso
COPY pyproject.toml README.md ./
COPY csi_vso ./csi_vso
# Install (pip byte-compiles, so the read-only root filesystem at run time costs nothing),
# prove the generated gRPC code imports, then drop the installers from the runtime venv.
RUN /opt/csi-vso/bin/pip install . \
 && /opt/csi-vso/bin/python -c "import csi_vso.providerapi.provider_pb2_grpc, csi_vso.cli" \
 && /opt/csi-vso/bin/pip uninstall -y pip setuptools

# Stage 2: the same base (the venv's interpreter symlink points at its python), plus the
# venv and nothing else.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="csi-vso" \
      org.opencontainers.image.description="Vault/OpenBao secrets as files that rotate in place: VSO-compatible operator and Secrets Store CSI driver provider" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root uid for the operator (runAsNonRoot can check a numeric USER). The provider
# DaemonSet overrides it with uid 0 because it writes into kubelet's root-owned volume tree;
# see deploy/provider/daemonset.yaml.
RUN groupadd --system --gid 65532 csi-vso \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin csi-vso
COPY --from=build /opt/csi-vso /opt/csi-vso
ENV PATH=/opt/csi-vso/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["csi-vso"]
CMD ["--help"]
