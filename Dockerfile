# grokgrid driver/worker image: Ray's CUDA base image with grokgrid installed, run as Ray's
# non-root user `ray`. torch comes from PyPI's default (CUDA) build here: constraints-cpu.txt is
# for CPU-only development machines. Cluster launch examples: deploy/README.md.
FROM rayproject/ray:2.60.0-py311-gpu

USER ray
WORKDIR /home/ray/grokgrid
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users grokgrid ./grokgrid
COPY --chown=ray:users sweeps ./sweeps
RUN pip install --no-cache-dir . && grokgrid --version

ENV TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1 RAY_CHDIR_TO_TRIAL_DIR=0
CMD ["grokgrid", "--help"]
