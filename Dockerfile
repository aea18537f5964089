# grokgrid driver/worker image: Ray's CUDA base image with grokgrid installed.
# First version (the cluster issue hardens it: non-root user, deploy/ examples, pinned digests).
# torch comes from PyPI's default (CUDA) build here: constraints-cpu.txt is for CPU-only machines.
FROM rayproject/ray:2.60.0-py311-gpu

WORKDIR /opt/grokgrid
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users grokgrid ./grokgrid
COPY --chown=ray:users sweeps ./sweeps
RUN pip install --no-cache-dir .

ENV TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1 RAY_CHDIR_TO_TRIAL_DIR=0
ENTRYPOINT ["grokgrid"]
CMD ["--help"]
