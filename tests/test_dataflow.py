"""Dataflow readiness, offline: the graph, the staged package, submissions.

No Google service is reached: gs:// is a GCS emulator (`tests/fixtures/
gcs.py`) and Dataflow a fake REST endpoint on localhost (`tests/fixtures/
dataflow.py`) that records the create-job requests. `pipelines.embed`'s
submission is tested with its tower, in test_embed.py.
"""

import json
import tarfile
import tomllib

import pytest

from apache_beam.portability.api import beam_runner_api_pb2
from pipelines import beam_options
from pipelines import build_dataset
from pipelines import pipeline_command
from tests.fixtures import dataflow as dataflow_fixture
from tests.fixtures import gcs as gcs_fixture
from tests.fixtures import vocab as vocab_fixture
from vocabularies import train_vocab
from vocabularies import vocabulary

REPO_ROOT = dataflow_fixture.REPO_ROOT
REGION = dataflow_fixture.REGION
dataflow_flags = dataflow_fixture.dataflow_flags
# Top-level packages of the checkout that workers never import.
_NOT_SHIPPED = ("tests", "benchmarks")


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


def test_dry_run_translates_the_build_and_stages_the_whole_project(
    gcs, gcs_corpus, en_vocab_dir):
  before = build_folders()
  output = gcs.uri("dataflow/dry_run")
  args, beam_argv = build_dataset.parse_args(build_argv(
      gcs, gcs_corpus, en_vocab_dir, output, "--dry_run", "True"))
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
  assert build_dataset.main(build_argv(
      gcs, gcs_corpus, en_vocab_dir, output, "--job_name", "build-submitted",
      "--dataflow_endpoint", fake_dataflow.endpoint, "--no_wait")) == 0
  assert capsys.readouterr().out == (
      "submitted DataflowRunner job fake-job-0 (state PENDING); it writes "
      f"{output}, COMPLETED last, when it finishes\n"
      "follow it at https://console.cloud.google.com/dataflow/jobs/"
      f"{REGION}/fake-job-0?project={gcs_fixture.PROJECT}\n")
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
