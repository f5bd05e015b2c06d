# Dataflow worker image for `pipelines.embed` on GPUs.
#
# Beam's Python SDK container for the pinned Beam and Python, this project
# installed with the same pins as `requirements.lock`, and JAX's CUDA 12 plugin
# (its wheels bring the CUDA libraries; Dataflow installs the driver when the
# job asks for `install-nvidia-driver`). Build from the repository root:
#
#   docker build -f docker/embed-gpu.Dockerfile -t REGION-docker.pkg.dev/PROJECT/REPO/embed-gpu:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/embed-gpu:0.1.0
#
# and run embed with `--sdk_container_image` set to it (README, "Dataflow").
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/sigmoid-pretraining
COPY pyproject.toml requirements.lock setup.py README.md ./
COPY dataformat dataformat
COPY demo demo
COPY eval eval
COPY pipelines pipelines
COPY vocabularies vocabularies
COPY trainer trainer

# The project is installed, not staged: jobs that use this image pass no
# --setup_file, so workers start without building or installing anything.
RUN pip install --no-cache-dir -c requirements.lock '.[gcp]' \
      'jax[cuda12]==0.10.2' \
 && python -c "import pipelines.embed, jax; print(jax.__version__)"

# Beam's boot program stays the entry point (it starts the SDK harness).
ENTRYPOINT ["/opt/apache/beam/boot"]
