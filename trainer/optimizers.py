"""Optimisers, learning-rate schedules and per-parameter rules (optax).

One update, for a trainable parameter p with gradient g at step s, is

  p <- p - sched(s) * (lr * lr_mult(p) * opt(clip(g)) + weight_decay * p)

with sched(s) in [0, 1] the warmup-then-decay shape of the schedule. Weight
decay is decoupled from the learning rate and its multipliers (big_vision's
convention, so its `wd` values carry over: SigLIP's 1e-4 means a 1e-4
shrinkage per step at the schedule's peak) and applies only to "kernel"
parameters (Dense, Conv and the bottleneck projection; not embedding tables,
position embeddings, biases, LayerNorm scales, the MAP probe, t or b) outside
the `pretrained` and `frozen` subtrees. Frozen subtrees get zero updates and
no optimiser state; gradient clipping sees only trainable gradients.

Subtrees are named by "/"-joined path prefixes of the parameter tree:
"img" is the image tower, "txt/Embed_0" the text token table.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

Params = Any
Schedule = Callable[[jax.Array | int], jax.Array]

OPTIMIZERS = ("adamw", "adafactor", "lion")
SCHEDULES = ("cosine", "rsqrt", "constant")

_TRAINABLE = "trainable"
_FROZEN = "frozen"


def default_config() -> ml_collections.ConfigDict:
  """`config.optim` with every key and the paper's defaults."""
  return ml_collections.ConfigDict(dict(
      name="adamw",
      lr=1e-3,
      b1=0.9,  # Adam and Lion first moment; Adafactor momentum (0: none).
      # Adam and Lion second moment (Lion's paper uses 0.99); Adafactor's cap.
      b2=0.95,
      eps=1e-8,  # Adam only.
      adafactor_decay_rate=0.8,  # Adafactor's beta2(s) = 1 - (s + 1)^-rate.
      weight_decay=1e-4,
      clip_norm=1.0,  # Global-norm gradient clipping; 0 disables it.
      schedule="cosine",
      warmup_steps=0,
      cooldown_steps=0,  # Linear decay to 0 over the last steps.
      rsqrt_timescale=10_000,
      lr_mults={},  # Path prefix -> learning-rate multiplier.
      frozen=(),  # Path prefixes that are not trained.
      pretrained=(),  # Path prefixes exempt from weight decay.
  ))


def path_name(path: Sequence[Any]) -> str:
  """The "/"-joined name of a pytree key path ("img/head/kernel")."""
  return jax.tree_util.keystr(tuple(path), simple=True, separator="/")


def under(name: str, prefix: str) -> bool:
  """Whether parameter `name` lies in the subtree named `prefix`."""
  return name == prefix or name.startswith(prefix.rstrip("/") + "/")


def make_schedule(optim_config: ml_collections.ConfigDict,
                  total_steps: int) -> Schedule:
  """The schedule's shape sched(step) in [0, 1], peak 1 after warmup.

  cosine: half a cosine from 1 at the end of warmup to 0 at total_steps.
  rsqrt: 1 / sqrt((step + timescale - warmup) / timescale) after warmup,
    i.e. 1 at the end of warmup.
  constant: 1.
  Warmup is linear from 0 at step 0; cooldown (any schedule) multiplies by a
  linear ramp to 0 at total_steps.
  """
  kind = optim_config.schedule
  if kind not in SCHEDULES:
    raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {kind!r}")
  warmup = optim_config.warmup_steps
  cooldown = optim_config.cooldown_steps
  timescale = optim_config.rsqrt_timescale
  if not 0 <= warmup < total_steps:
    raise ValueError(f"optim.warmup_steps must be in [0, total_steps="
                     f"{total_steps}), got {warmup}")

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    if kind == "cosine":
      progress = jnp.clip((step - warmup) / (total_steps - warmup), 0.0, 1.0)
      value = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    elif kind == "rsqrt":
      value = jnp.where(
          step > warmup,
          1.0 / jnp.sqrt((step + timescale - warmup) / timescale), 1.0)
    else:
      value = jnp.ones_like(step)
    if warmup:
      value = value * jnp.minimum(1.0, step / warmup)
    if cooldown:
      value = value * jnp.clip((total_steps - step) / cooldown, 0.0, 1.0)
    return value

  return schedule


def _map_by_path(fn: Callable[[str, jax.Array, jax.Array], jax.Array]
                 ) -> optax.GradientTransformation:
  """Stateless: each update u of param p becomes fn(path name, u, p)."""

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("this optimiser needs the params in tx.update")
    mapped = jax.tree_util.tree_map_with_path(
        lambda path, u, p: fn(path_name(path), u, p), updates, params)
    return mapped, state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def _base_optimizer(optim_config: ml_collections.ConfigDict
                    ) -> optax.GradientTransformation:
  """The direction opt(g), before learning rate and schedule."""
  name, b1, b2 = optim_config.name, optim_config.b1, optim_config.b2
  if name == "adamw":
    return optax.scale_by_adam(b1=b1, b2=b2, eps=optim_config.eps)
  if name == "lion":
    return optax.scale_by_lion(b1=b1, b2=b2)
  if name == "adafactor":

    def beta2(step, decay_rate):
      # Adafactor's second-moment decay 1 - (s + 1)^-rate, capped at b2 as in
      # big_vision, so that b2 = 0.95 plays the role it has in Adam.
      t = jnp.asarray(step, jnp.float32) + 1.0
      return jnp.minimum(b2, 1.0 - t**(-decay_rate))

    # min_dim_size_to_factor=32 and undebiased momentum follow big_vision.
    return optax.chain(
        optax.scale_by_factored_rms(
            decay_rate=optim_config.adafactor_decay_rate,
            min_dim_size_to_factor=32, decay_rate_fn=beta2),
        optax.ema(b1, debias=False) if b1 else optax.identity())
  raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {name!r}")


def _check_prefixes(names: Sequence[str], prefixes: Sequence[str],
                    key: str) -> None:
  for prefix in prefixes:
    if not any(under(name, prefix) for name in names):
      raise ValueError(f"optim.{key} entry {prefix!r} matches no parameter")


def make_optimizer(optim_config: ml_collections.ConfigDict, params: Params,
                   total_steps: int
                   ) -> tuple[optax.GradientTransformation, Schedule]:
  """The optimiser for `params` and its learning-rate schedule lr(step).

  Args:
    optim_config: `config.optim` (see `default_config`).
    params: the parameter tree (arrays or `jax.ShapeDtypeStruct`s); only its
      paths are used.
    total_steps: length of training, for the decay schedules.

  Returns:
    (tx, lr): `tx` for the full parameter tree; `lr(step)` the effective
    learning rate of a parameter without multiplier (for logging).
  """
  names = [path_name(p) for p, _ in
           jax.tree_util.tree_flatten_with_path(params)[0]]
  frozen = tuple(optim_config.frozen)
  pretrained = tuple(optim_config.pretrained)
  lr_mults = dict(optim_config.lr_mults)
  lr, weight_decay = optim_config.lr, optim_config.weight_decay
  _check_prefixes(names, frozen, "frozen")
  _check_prefixes(names, pretrained, "pretrained")
  _check_prefixes(names, lr_mults, "lr_mults")
  for prefix, mult in lr_mults.items():
    if mult <= 0:
      raise ValueError(f"optim.lr_mults[{prefix!r}] must be positive, got "
                       f"{mult}; freeze with optim.frozen instead")

  def lr_mult(name: str) -> float:
    # The longest matching prefix wins, so "txt/Embed_0" can refine "txt".
    matches = [p for p in lr_mults if under(name, p)]
    return lr_mults[max(matches, key=len)] if matches else 1.0

  def decay_rate(name: str) -> float:
    decayed = (name.rsplit("/", 1)[-1] == "kernel"
               and not any(under(name, p) for p in pretrained))
    return weight_decay if decayed else 0.0

  def is_frozen(name: str) -> bool:
    return any(under(name, p) for p in frozen)

  schedule = make_schedule(optim_config, total_steps)
  clip = (optax.clip_by_global_norm(optim_config.clip_norm)
          if optim_config.clip_norm else optax.identity())
  trainable_tx = optax.chain(
      clip,
      _base_optimizer(optim_config),
      _map_by_path(lambda name, u, _: u * lr * lr_mult(name)),
      _map_by_path(lambda name, u, p: u + decay_rate(name) * p),
      optax.scale_by_schedule(schedule),
      optax.scale(-1.0))

  def labels(tree):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: _FROZEN if is_frozen(path_name(path)) else _TRAINABLE,
        tree)

  tx = optax.partition(
      {_TRAINABLE: trainable_tx, _FROZEN: optax.set_to_zero()}, labels)
  return tx, lambda step: lr * schedule(step)

