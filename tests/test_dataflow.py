"""Dataflow readiness, offline: the graph, the staged package, submissions.

No Google service is reached: gs:// is a GCS emulator (`tests/fixtures/
gcs.py`) and Dataflow a fake REST endpoint on localhost (`tests/fixtures/
dataflow.py`) that records the create-job requests. `pipelines.embed`'s
submission is tested with its tower, in test_embed.py.
"""

import hashlib
import json
import pickle
import re
import tarfile
import tomllib

import pytest

from apache_beam.internal import pickler
from apache_beam.portability.api import beam_runner_api_pb2
from pipelines import beam_options
from pipelines import blocklist
from pipelines import build_dataset
from pipelines import pipeline_command
from tests.fixtures import dataflow as dataflow_fixture
from tests.fixtures import gcs as gcs_fixture
from tests.fixtures import vocab as vocab_fixture
from tests.test_blocklist import many_eval_images
from vocabularies import train_vocab
from vocabularies import vocabulary

REPO_ROOT = dataflow_fixture.REPO_ROOT
REGION = dataflow_fixture.REGION
dataflow_flags = dataflow_fixture.dataflow_flags
# Top-level packages of the checkout that workers never import.
_NOT_SHIPPED = ("tests", "benchmarks")
# Dataflow refuses job graphs over 10 MB (cloud.google.com/dataflow/docs/
# request-quotas); this block-list's signatures alone take more.
_EVAL_IMAGES = 1000


def shipped_files() -> set[str]:
  """The files of the packages workers import, relative to the checkout."""
  packages = [p for p in REPO_ROOT.iterdir()
              if (p / "__init__.py").is_file() and p.name not in _NOT_SHIPPED]
  return {f.relative_to(REPO_ROOT).as_posix()
          for package in packages for f in package.rglob("*")
          if f.is_file() and "__pycache__" not in f.parts}


def build_folders() -> set[str]:
  """What building a package may leave in the checkout."""
  return {p.name for p in REPO_ROOT.iterdir()
          if p.name in ("build", "dist") or p.name.endswith(".egg-info")}


@pytest.fixture(scope="module")
def gcs_corpus(gcs, demo_corpus) -> str:
  return gcs.upload_dir(demo_corpus.output_dir, gcs.uri("dataflow/corpus"))


def build_argv(gcs, corpus: str, en_vocab_dir, output: str,
               *extra: str) -> list[str]:
  return ["--input", f"{corpus}/*.tar", "--output", output,
          "--vocab", str(en_vocab_dir), *dataflow_flags(gcs, *extra)]


def _do_fn(pipeline: beam_runner_api_pb2.Pipeline, name: str):
  """The DoFn of the ParDo `name`, unpickled as a worker would, and the size
  of its pickle."""
  [transform] = [t for t in pipeline.components.transforms.values()
                 if t.unique_name == name]
  payload = beam_runner_api_pb2.ParDoPayload.FromString(
      transform.spec.payload).do_fn.payload
  return pickler.loads(payload)[0], len(payload)


def test_dry_run_translates_the_build_and_stages_the_whole_project(
    gcs, gcs_corpus, en_vocab_dir):
  before = build_folders()
  output = gcs.uri("dataflow/dry_run")
  eval_images = gcs.uri("dataflow/eval.blocklist")
  gcs.write(eval_images, blocklist.file_bytes(many_eval_images(_EVAL_IMAGES),
                                              256))
  args, beam_argv = build_dataset.parse_args(build_argv(
      gcs, gcs_corpus, en_vocab_dir, output, "--blocklist", eval_images,
      "--dry_run", "True"))
  launched = build_dataset.build(args, beam_argv)
  assert isinstance(launched, pipeline_command.Launched)
  assert launched.summary == (
      "dry run: the pipeline was translated for DataflowRunner; no job was "
      f"submitted and nothing was written to {output}")
  assert gcs.list(output) == []
  job = launched.result.job
  pipeline = job.proto_pipeline
  stages = {t.unique_name.split("/")[1]
            for t in pipeline.components.transforms.values()
            if t.unique_name.startswith("BuildDataset/")}
  assert stages == {
      "Read", "Batch", "Process", "KeyByImageHash", "Blocklist",
      "KeyBlocked", "GroupByImageHash", "Deduplicate", "KeyByShard",
      "ShardIndices", "KeyShardIndices", "GroupByShard", "WriteShards",
      "CountRead", "FinalizeTrigger", "Finalize"}
  # The block-list travels as a file under the temp location, byte for byte
  # the one given here; the graph names it, far smaller than its
  # signatures.
  eval_bytes = gcs.read(eval_images)
  assert len(eval_bytes) > 10_000_000
  assert pipeline.ByteSize() < 1_000_000
  process_fn, process_size = _do_fn(
      pipeline, "BuildDataset/Process/ParDo(_ProcessFn)")
  eval_filter = process_fn._eval_filter  # pylint: disable=protected-access
  assert len(pickle.dumps(eval_filter)) < 1024
  sha256 = hashlib.sha256(eval_bytes).hexdigest()
  source = eval_filter.source
  assert source == blocklist.BlocklistFile(source.path, sha256, 256)
  assert source.path.startswith(gcs.uri("dataflow-temp", "worker-files-"))
  assert source.path.endswith(f"/{sha256}.blocklist")
  assert gcs.read(source.path) == eval_bytes
  # A dry run's job could be launched still: the file stays.
  assert eval_filter.num_signatures == 81 * _EVAL_IMAGES
  # The language identifier and vocabulary make the rest of the DoFn.
  assert process_size < 400_000
  # The worker environment: Beam's SDK container, this project's sdist and
  # the launcher's package list, the worker log levels.
  [environment] = pipeline.components.environments.values()
  assert environment.urn == "beam:env:docker:v1"
  assert beam_runner_api_pb2.DockerPayload.FromString(
      environment.payload).container_image == dataflow_fixture.SDK_IMAGE
  staged = {}
  for artifact in environment.dependencies:
    name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
        artifact.role_payload).staged_name
    staged[name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(
        artifact.type_payload).path
  assert sorted(staged) == sorted(dataflow_fixture.STAGED_FILES)
  options = job.options.get_all_options()
  assert options["setup_file"] == str(REPO_ROOT / "setup.py")
  assert options["save_main_session"] is False
  assert options["sdk_harness_log_level_overrides"]["pipelines"] == "INFO"
  # The sdist holds every module and data file of the shipped packages, and
  # pyproject.toml, whose dependencies pip installs on the workers (langdetect
  # brings the language profiles).
  with tarfile.open(staged["workflow.tar.gz"]) as sdist:
    files = {m.name.split("/", 1)[1]: m for m in sdist.getmembers()
             if m.isfile()}
    pyproject = sdist.extractfile(files["pyproject.toml"]).read()
  missing = shipped_files() - set(files)
  assert not missing, f"not in the sdist: {sorted(missing)}"
  assert {"pipelines/langid.py", "trainer/configs/siglip_b16.py"} <= set(files)
  assert pyproject == (REPO_ROOT / "pyproject.toml").read_bytes()
  assert "langdetect==1.0.9" in tomllib.loads(
      pyproject.decode())["project"]["dependencies"]
  assert build_folders() == before


def test_template_is_staged_and_summarised(gcs, gcs_corpus, en_vocab_dir,
                                           capsys):
  output = gcs.uri("dataflow/from_template")
  template = gcs.uri("dataflow/templates/build_dataset.json")
  assert build_dataset.main(build_argv(
      gcs, gcs_corpus, en_vocab_dir, output, "--template_location", template,
      "--job_name", "build-template")) == 0
  assert capsys.readouterr().out == (
      f"staged a DataflowRunner template at {template}; launching it writes "
      f"{output}\n")
  assert gcs.list(output) == []
  request = json.loads(gcs.read(template))
  assert "BuildDataset/Finalize" in dataflow_fixture.submitted_transforms(
      request, gcs.read, "build-template")


def test_build_dataset_is_submitted_to_dataflow(gcs, gcs_corpus, en_vocab_dir,
                                                fake_dataflow, capsys):
  output = gcs.uri("dataflow/submitted")
  eval_images = gcs.uri("dataflow/submitted.blocklist")
  eval_bytes = blocklist.file_bytes(many_eval_images(3, seed=1), 256)
  gcs.write(eval_images, eval_bytes)
  assert build_dataset.main(build_argv(
      gcs, gcs_corpus, en_vocab_dir, output, "--job_name", "build-submitted",
      "--dataflow_endpoint", fake_dataflow.endpoint, "--no_wait",
      "--blocklist", eval_images)) == 0
  captured = capsys.readouterr()
  assert captured.out == (
      "submitted DataflowRunner job fake-job-0 (state PENDING); it writes "
      f"{output}, COMPLETED last, when it finishes\n"
      "follow it at https://console.cloud.google.com/dataflow/jobs/"
      f"{REGION}/fake-job-0?project={gcs_fixture.PROJECT}\n")
  # The job's workers will read the block-list: it stays, and the launcher
  # says where.
  [worker_dir] = re.findall(r"left (\S+) for the job's workers: delete it "
                            r"when no job needs it\n", captured.err)
  sha256 = hashlib.sha256(eval_bytes).hexdigest()
  assert worker_dir.startswith(gcs.uri("dataflow-temp", "worker-files-"))
  assert gcs.read(f"{worker_dir}/{sha256}.blocklist") == eval_bytes
  [request] = fake_dataflow.jobs
  names = dataflow_fixture.submitted_transforms(request, gcs.read,
                                                "build-submitted")
  assert {"BuildDataset/Read", "BuildDataset/Process",
          "BuildDataset/WriteShards", "BuildDataset/Finalize"} <= names
  options = request["environment"]["sdkPipelineOptions"]["options"]
  assert (options["project"], options["region"]) == (gcs_fixture.PROJECT,
                                                     REGION)
  assert gcs.list(output) == []


def test_train_vocab_runs_its_sampling_job_on_dataflow(
    gcs, gcs_dir, gcs_corpus, en_vocab_dir, fake_dataflow, capsys):
  # The fake service "runs" the job by writing the sample the same pipeline
  # writes locally; train_vocab then trains the local vocabulary from it.
  reference, sample = f"{gcs_dir}/reference", f"{gcs_dir}/sample"
  options = train_vocab.TrainingOptions(
      input_patterns=(f"{gcs_corpus}/*.tar",), output_dir=f"{gcs_dir}/unused",
      preset=train_vocab.PRESETS["en32k"],
      vocab_size=vocab_fixture.EN_VOCAB_SIZE, name="en32k")
  assert train_vocab.write_sample(options, reference,
                                  beam_options.from_flags([])) is None

  def run_job(unused_request):
    for name, data in gcs.read_dir(reference).items():
      gcs.write(f"{sample}/{name}", data)

  fake_dataflow.on_create = run_job
  fake_dataflow.state = "JOB_STATE_DONE"
  output = f"{gcs_dir}/vocab"
  assert train_vocab.main([
      "--input", f"{gcs_corpus}/*.tar", "--output", output, "--preset",
      "en32k", "--vocab_size", str(vocab_fixture.EN_VOCAB_SIZE),
      "--sample_dir", sample, *dataflow_flags(
          gcs, "--job_name", "train-vocab",
          "--dataflow_endpoint", fake_dataflow.endpoint)]) == 0
  [request] = fake_dataflow.jobs
  names = dataflow_fixture.submitted_transforms(request, gcs.read,
                                                "train-vocab")
  assert {"Read", "Clean", "Identify", "Sample", "WriteSample",
          "WriteSummary"} <= names
  card = json.loads(gcs.read(f"{output}/{vocabulary.VOCAB_JSON}"))
  local = json.loads((en_vocab_dir / vocabulary.VOCAB_JSON).read_text())
  assert card["sha256"] == local["sha256"]
  assert gcs.read(f"{output}/{card['model_file']}") == (
      en_vocab_dir / card["model_file"]).read_bytes()
  capsys.readouterr()


def test_train_vocab_dry_run_and_template(gcs, gcs_dir, gcs_corpus, capsys):
  output = f"{gcs_dir}/vocab"
  argv = ["--input", f"{gcs_corpus}/*.tar", "--output", output, "--preset",
          "en32k"]
  assert train_vocab.main([*argv, *dataflow_flags(
      gcs, "--dry_run", "True")]) == 0
  assert capsys.readouterr().out == (
      "dry run: the pipeline was translated for DataflowRunner; no job was "
      f"submitted and nothing was written to {output}\n")
  assert train_vocab.main([*argv, *dataflow_flags(
      gcs, "--template_location", gcs.uri("templates/vocab.json"))]) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: --template_location: ")
  assert len(err.strip().splitlines()) == 1
  assert gcs.list(output) == []
  assert gcs.list(gcs.uri("templates")) == []
