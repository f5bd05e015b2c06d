r"""Trains a two-tower image-text model with the sigmoid loss.

  python -m trainer.train --config trainer/configs/demo_tiny.py \
      --workdir /tmp/demo --config.data.train_dir=DATASET

The workdir receives `config.json`, `checkpoints/<step>/` (train state and
input iterator together) and `tb/` (TensorBoard scalars). Running the same
command again resumes from the newest checkpoint that restores (a damaged
one is renamed `<step>.damaged`, with a warning). SIGTERM makes the run save
a checkpoint at the next step boundary and exit 0. A non-finite loss (or
parameters) stops training with an error; checkpoints are only ever written
from finite states, so the newest one on disk is the last good one.

Multi-host: the same command on every host, with
`--config.distributed.initialize=True` (and `coordinator_address`,
`num_processes`, `process_id` where JAX cannot discover them). Each process
reads its own share of the data; `batch_size` is global.

The file goes in order: config -> data -> model and init -> optimizer ->
jitted train step -> loop (logging, checkpoints, evaluators).
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import functools
import math
import os
import signal
import sys
import threading
from typing import Any, Protocol

from absl import app
from absl import flags
from absl import logging
import flax.struct
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from dataformat import cli
from dataformat import files
from trainer import checkpoints
from trainer import evaluators as evaluators_lib
from trainer import input_pipeline
from trainer import losses
from trainer import mesh as mesh_lib
from trainer import metric_writers
from trainer import model_loader
from trainer import optimizers
from trainer.models import two_towers

Params = Any
TB_DIR = "tb"
LossFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array | None],
                  jax.Array]


class Evaluator(Protocol):
  """A periodic evaluation: `run(params)` returns named metrics.

  Called with the replicated parameters every `every` steps where the
  evaluator has that attribute and it is positive, else every
  `config.eval_every` steps; the metrics go to TensorBoard as
  "<name>/<metric>".
  """

  name: str

  def run(self, params: Params) -> Mapping[str, float]:
    ...


class NonFiniteLossError(RuntimeError):
  """Training produced a non-finite loss or non-finite parameters."""


@flax.struct.dataclass
class TrainState:
  """What a training step updates (and a checkpoint holds, with the data)."""

  step: jax.Array
  params: Params
  opt_state: optax.OptState


def create_train_state(model: two_towers.Model,
                       tx: optax.GradientTransformation, rng: jax.Array,
                       example_spec: Mapping[str, tuple[tuple[int, ...],
                                                        np.dtype]]
                       ) -> TrainState:
  """Freshly initialised parameters and optimiser state at step 0."""
  dummy = {name: jnp.zeros((1,) + shape, dtype)
           for name, (shape, dtype) in example_spec.items()}
  params = model.init(rng, dummy[input_pipeline.IMAGE],
                      dummy[input_pipeline.TEXT])["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params))


def load_initial_params(init_config: ml_collections.ConfigDict,
                        params: Params) -> Params:
  """`params` with the subtrees `init_config.load` taken from a checkpoint.

  `init_config.checkpoint` is a big_vision `.npz` or one of our workdirs (or
  step directories), local or gs:// (`model_loader.load_subtrees`).
  """
  return {**params, **model_loader.load_subtrees(
      init_config.checkpoint, params, init_config.load)}


def train_step(state: TrainState, batch: Mapping[str, jax.Array], *,
               model: two_towers.Model, tx: optax.GradientTransformation,
               loss_fn: LossFn,
               lr_fn: optimizers.Schedule) -> tuple[TrainState,
                                                    dict[str, jax.Array]]:
  """One optimiser update on a global batch; returns the metrics of it."""

  def loss_and_extras(params):
    zimg, ztxt, extras = model.apply(
        {"params": params}, batch[input_pipeline.IMAGE],
        batch[input_pipeline.TEXT], train=True)
    return loss_fn(zimg, ztxt, extras["t"], extras["b"]), extras

  (loss, extras), grads = jax.value_and_grad(
      loss_and_extras, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {
      "loss": loss,
      "grad_norm": optax.global_norm(grads),
      "lr": lr_fn(state.step),
      "t": extras["t"],
      # A state may be checkpointed only if its update kept every parameter
      # finite: a finite loss alone can still come with overflowing updates.
      "finite": jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(params)),
  }
  if extras["b"] is not None:
    metrics["b"] = extras["b"]
  return TrainState(step=state.step + 1, params=params,
                    opt_state=opt_state), metrics


class _StopRequest:
  """Set by SIGTERM; read by the loop at step boundaries."""

  def __init__(self):
    self.requested = False

  @contextlib.contextmanager
  def handling_sigterm(self) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
      yield  # Signal handlers can only be installed from the main thread.
      return

    def handler(signum, frame):
      del signum, frame
      self.requested = True

    previous = signal.signal(signal.SIGTERM, handler)
    try:
      yield
    finally:
      signal.signal(signal.SIGTERM, previous)

  def agreed(self) -> bool:
    """Whether any process was asked to stop (a collective when multi-host)."""
    if jax.process_count() == 1:
      return self.requested
    flags_ = multihost_utils.process_allgather(np.int32(self.requested))
    return bool(np.any(flags_))


def _fetch_finite(pending: Sequence[Mapping[str, jax.Array]],
                  step: int) -> list[dict[str, float]]:
  """Host copies of the metrics of the steps up to `step`, all finite.

  Raises:
    NonFiniteLossError: naming the first step whose update was not finite.
  """
  fetched = jax.device_get(list(pending))
  for offset, metrics in enumerate(fetched):
    if not metrics["finite"]:
      bad_step = step - len(fetched) + 1 + offset
      loss = float(metrics["loss"])
      if math.isfinite(loss):
        raise NonFiniteLossError(f"parameters became non-finite at step "
                                 f"{bad_step} (loss {loss:.4g})")
      raise NonFiniteLossError(f"loss is {loss} at step {bad_step}")
  return fetched


def _window_scalars(window: Sequence[Mapping[str, float]],
                    examples_per_sec: float,
                    data_wait: float) -> dict[str, float]:
  """TensorBoard scalars of a logging window.

  Loss and gradient norm are averaged over the window; the scheduled or
  slowly moving values (lr, t, b) are the latest.
  """
  last = window[-1]
  scalars = {
      "train/loss": float(np.mean([m["loss"] for m in window])),
      "train/grad_norm": float(np.mean([m["grad_norm"] for m in window])),
      "train/lr": float(last["lr"]),
      "train/t": float(last["t"]),
      "perf/examples_per_sec": examples_per_sec,
      "perf/data_wait_fraction": data_wait,
  }
  if "b" in last:
    scalars["train/b"] = float(last["b"])
  return scalars


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | os.PathLike[str],
                       evaluators: Sequence[Evaluator] = ()) -> TrainState:
  """Trains (or resumes training) until `config.total_steps`.

  Raises:
    NonFiniteLossError: when the loss or the parameters stop being finite.
    ValueError: for a config that does not fit the data or the devices, a
      damaged dataset shard, or checkpoints of which none restores.
    OSError: when a checkpoint cannot be written (e.g. the disk is full).
  """
  workdir = files.resolve(workdir)  # Local or gs://.
  # Config.
  mesh_lib.initialize_distributed(config.distributed)
  is_chief = jax.process_index() == 0

  # Data.
  mesh = mesh_lib.make_mesh()
  data_iter = input_pipeline.make_train_iterator(
      config.data, mesh_lib.batch_size_per_process(config.batch_size),
      config.data.shuffle_seed, jax.process_index(), jax.process_count())
  if is_chief:
    checkpoints.save_config(config, workdir)

  # Model and init; optimizer.
  model = two_towers.build_model(config.model)
  example_spec = input_pipeline.example_spec(config.data)
  rng = jax.random.key(config.seed)
  abstract_params = jax.eval_shape(
      lambda: create_train_state(model, optax.identity(), rng,
                                 example_spec).params)
  tx, lr_fn = optimizers.make_optimizer(config.optim, abstract_params,
                                        config.total_steps)
  replicated = mesh_lib.replicated(mesh)
  init = jax.jit(functools.partial(create_train_state, model, tx,
                                   example_spec=example_spec),
                 out_shardings=replicated)
  checkpointer = checkpoints.Checkpointer(workdir, config.keep_checkpoints)
  start = checkpointer.latest_step()
  if start is None:
    state = init(rng)
    if config.init.checkpoint:
      state = state.replace(params=jax.device_put(
          load_initial_params(config.init, jax.device_get(state.params)),
          replicated))
      if is_chief:
        print(f"Initialised {', '.join(config.init.load)} from "
              f"{config.init.checkpoint}", flush=True)
  else:
    abstract_state = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
        jax.eval_shape(init, rng))
    restored = checkpointer.restore_latest(abstract_state, data_iter)
    start, state = restored.step, restored.state
    if is_chief:
      for message in restored.damaged:
        print(f"warning: {message}", file=sys.stderr, flush=True)
      print(f"Resuming from step {start} ({checkpointer.directory})",
            flush=True)

  # Jitted train step.
  loss_by_name = losses.LOSSES[config.loss]
  step_fn = jax.jit(
      functools.partial(
          train_step, model=model, tx=tx, lr_fn=lr_fn,
          loss_fn=lambda zimg, ztxt, t, b: loss_by_name(zimg, ztxt, t, b,
                                                        mesh)),
      donate_argnums=0, out_shardings=(replicated, replicated))

  # Loop.
  total_steps = config.total_steps
  step = int(state.step)
  last_saved = start
  writer = (metric_writers.TensorBoardWriter(files.join(workdir, TB_DIR))
            if is_chief else None)
  timer = metric_writers.StepTimer()
  stop = _StopRequest()
  stopping = False
  pending = []  # Device metrics not yet checked for finiteness.
  window = []  # Host metrics since the last log line.
  try:
    with stop.handling_sigterm():
      while step < total_steps:
        # The previous step must be done before the clock starts, so that
        # the wait measured is time the devices sat idle for want of data
        # (batches are made in the background meanwhile).
        jax.block_until_ready(state.step)
        with timer.waiting():
          batch = mesh_lib.global_batch(next(data_iter), mesh)
        state, metrics = step_fn(state, batch)
        step += 1
        timer.add_step()
        pending.append(metrics)

        for evaluator in evaluators:
          every = getattr(evaluator, "every", 0) or config.eval_every
          if every and step % every == 0:
            with timer.excluded():
              results = evaluator.run(state.params)
            if writer:
              writer.write_scalars(step, {
                  f"{evaluator.name}/{key}": value
                  for key, value in results.items()})
        if jax.process_count() == 1 or step % config.log_every == 0:
          stopping = stop.agreed()
        log_now = step % config.log_every == 0 or step == total_steps
        save_now = (stopping or step == total_steps or
                    (config.checkpoint_every and
                     step % config.checkpoint_every == 0))
        if log_now or save_now:
          window.extend(_fetch_finite(pending, step))
          pending = []
        if log_now:
          steps, seconds, data_wait = timer.lap()
          scalars = _window_scalars(window, config.batch_size * steps /
                                    seconds, data_wait)
          window = []
          if is_chief:
            print(metric_writers.progress_line(
                step, total_steps, scalars["train/loss"],
                scalars["perf/examples_per_sec"], data_wait,
                eta_seconds=(total_steps - step) * seconds / steps),
                  flush=True)
            writer.write_scalars(step, scalars)
        if save_now and step != last_saved:
          with timer.excluded():
            checkpointer.save(step, state, data_iter)
          last_saved = step
        if stopping:
          checkpointer.wait()  # Raises if the save failed.
          if is_chief:
            print(f"SIGTERM: saved a checkpoint at step {step} and stopped.",
                  flush=True)
          break
  except NonFiniteLossError as e:
    checkpointer.wait()
    last_good = checkpointer.latest_step()
    kept = ("no checkpoint was saved" if last_good is None else
            f"the last good checkpoint is step {last_good} in "
            f"{checkpointer.directory}")
    raise NonFiniteLossError(f"{e}: training stopped; {kept}") from None
  finally:
    try:
      checkpointer.wait()
    finally:
      checkpointer.close()
      data_iter.close()
      if writer is not None:
        writer.close()
  return state


_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a training config file (trainer/configs/*.py); "
    "override any key with --config.KEY=VALUE.", lock_config=True)
_CONFIG_PARSE_ERROR = "Error whilst parsing config file:"
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory (local or gs://) for config.json, "
    "checkpoints/ and tb/; a "
    "run resumes from the newest checkpoint found here.")


def _one_line(error: BaseException) -> str:
  """The message of `error` as one line of text.

  ml_collections wraps a KeyError (whose str() is the repr of its message)
  in an AttributeError and puts its "Did you mean" on a second line.
  """
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  text = (error.args[0] if len(error.args) == 1 and
          isinstance(error.args[0], str) else str(error))
  return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _flag_error_line(error: flags.Error) -> str:
  """The one line of a flag error that says what is wrong."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  # config_flags puts the traceback of an error raised by get_config() under
  # this first line (e.g. an unknown preset name); its last line is the error.
  if len(lines) > 1 and lines[0].endswith(_CONFIG_PARSE_ERROR):
    return lines[0].removesuffix(_CONFIG_PARSE_ERROR) + lines[-1]
  return lines[0]


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with a one-line error instead of a usage dump."""
  if {"-h", "--help", "--helpshort"} & set(argv[1:]):
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
  try:
    try:
      remaining = flags.FLAGS(argv)
    except (AttributeError, KeyError, ValueError) as e:  # A --config.KEY.
      message = _one_line(e)
      raise flags.ValidationError(
          f"a --config override names an unknown key: {message}"
          if not isinstance(e, ValueError) else
          f"a --config override cannot be applied: {message}") from None
    if _CONFIG.value is None:
      raise flags.ValidationError("--config is required")
    try:
      _CONFIG.value.keys()
    except OSError as e:  # config_flags defers load errors to the first use.
      reason = str(e.__cause__ or e).strip().splitlines()[-1].strip()
      raise flags.ValidationError(
          f"cannot load --config "
          f"{config_flags.get_config_filename(flags.FLAGS['config'])}: "
          f"{reason}") from None
    if not _WORKDIR.value:
      raise flags.ValidationError("--workdir is required")
  except flags.Error as e:
    cli.fail(_flag_error_line(e))
    sys.exit(cli.USAGE)
  if len(remaining) > 1:
    cli.fail(f"unexpected arguments {remaining[1:]}")
    sys.exit(cli.USAGE)
  return remaining


def main(argv: list[str]) -> int:
  del argv
  # absl.app turns on INFO logging, where orbax reports every file it writes;
  # progress goes to stdout instead.
  logging.set_verbosity(logging.WARNING)
  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    train_and_evaluate(config, workdir,
                       evaluators_lib.from_config(config, workdir))
  except (NonFiniteLossError, ValueError, OSError) as e:
    return cli.fail(e)
  return 0


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
