"""Tests for trainer.optimizers: schedules, masks, multipliers, freezing."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from trainer import optimizers


def make_params() -> dict:
  """A small tree with the kinds of leaves a two-tower model has."""
  shapes = {
      "img": {"embedding": {"kernel": (2, 2, 3, 4), "bias": (4,)},
              "pos_embedding": (1, 4, 4),
              "head": {"kernel": (4, 4), "bias": (4,)}},
      "txt": {"Embed_0": {"embedding": (10, 4)},
              "embed_bottleneck": {"embedding": (10, 2), "kernel": (2, 4)},
              "LayerNorm_0": {"scale": (4,), "bias": (4,)},
              "head": {"kernel": (4, 4), "bias": (4,)}},
      "t": (1,),
      "b": (1,),
  }
  keys = iter(jax.random.split(jax.random.key(0), 20))
  return jax.tree.map(lambda s: jax.random.normal(next(keys), s), shapes,
                      is_leaf=lambda x: isinstance(x, tuple))


def names(tree) -> list[str]:
  return [optimizers.path_name(p)
          for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def config(**overrides):
  c = optimizers.default_config()
  c.update(dict(schedule="constant", weight_decay=0.0, clip_norm=0.0))
  c.update(overrides)
  return c


def gradients(params, seed: int = 1):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      treedef, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


def run(optim_config, params, grads_list, total_steps: int = 100):
  """Updates of each step, applying them to params as a trainer would."""
  tx, _ = optimizers.make_optimizer(optim_config, params, total_steps)
  state = tx.init(params)
  updates_list = []
  for grads in grads_list:
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    updates_list.append(updates)
  return updates_list, params, state


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_frozen_subtree_never_changes_and_has_no_state(name):
  params = make_params()
  grads = [gradients(params, seed) for seed in range(3)]
  _, new_params, state = run(
      config(name=name, frozen=("img",), weight_decay=0.1), params, grads)
  jax.tree.map(np.testing.assert_array_equal, new_params["img"],
               params["img"])
  assert not np.allclose(new_params["txt"]["head"]["kernel"],
                         params["txt"]["head"]["kernel"])
  # Optimiser state mirrors the parameter tree; frozen leaves are empty
  # MaskedNodes, so no array in the state belongs to an "img" path.
  state_names = names(state)
  assert state_names and not [n for n in state_names if "/img/" in n]
  assert [n for n in state_names if "/txt/head/kernel" in n]


def test_frozen_gradients_do_not_count_towards_clipping():
  params = make_params()
  grads = gradients(params)
  huge = {**grads, "img": jax.tree.map(lambda g: 1e6 * g, grads["img"])}
  c = config(frozen=("img",), clip_norm=1.0, eps=1.0)
  (plain,), _, _ = run(c, params, [grads])
  (with_huge,), _, _ = run(c, params, [huge])
  jax.tree.map(np.testing.assert_array_equal, with_huge, plain)


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_lr_multiplier_scales_the_update_exactly(name):
  params = make_params()
  grads = [gradients(params, seed) for seed in range(3)]
  base, _, _ = run(config(name=name), params, grads)
  scaled, _, _ = run(
      config(name=name, lr_mults={"img": 0.1, "txt/head": 3.0}), params, grads)
  # Gradients are fixed in advance and weight decay is off, so both runs
  # have the same optimiser state at every step: only the multiplier differs.
  for step in range(3):
    for tree_name, expected_mult in (("img", 0.1), ("txt", 1.0)):
      jax.tree.map(
          lambda s, b, m=expected_mult: np.testing.assert_allclose(
              s, m * b, rtol=1e-6),
          {k: v for k, v in scaled[step][tree_name].items() if k != "head"},
          {k: v for k, v in base[step][tree_name].items() if k != "head"})
    np.testing.assert_allclose(scaled[step]["txt"]["head"]["kernel"],
                               3.0 * base[step]["txt"]["head"]["kernel"],
                               rtol=1e-6)
    np.testing.assert_array_equal(scaled[step]["t"], base[step]["t"])


def test_adafactor_second_moment_decay_is_capped_at_b2():
  params = {"w": jnp.zeros(3)}
  steps = 60
  grads = [{"w": jnp.ones(3)}] + [{"w": jnp.zeros(3)}] * (steps - 1)
  _, _, state = run(config(name="adafactor", b2=0.9), params, grads)
  # v = g^2 = 1 after step 0 (beta2(0) = 0), then decays by beta2(s) each
  # step; uncapped, beta2(s) = 1 - (s + 1)^-0.8 exceeds 0.9 from s = 15 on.
  expected = math.prod(min(0.9, 1 - (s + 1) ** -0.8) for s in range(1, steps))
  (v,) = jax.tree.leaves(optax.tree_utils.tree_get(state, "v"))
  np.testing.assert_allclose(v, expected, rtol=1e-4)


def test_adamw_first_step_is_lr_times_normalised_gradient():
  params = make_params()
  grads = gradients(params)
  (updates,), _, _ = run(config(lr=0.5, eps=1e-8, lr_mults={"txt": 0.1}),
                         params, [grads])
  # Debiased Adam moments after one step: m = g, v = g^2.
  np.testing.assert_allclose(
      updates["img"]["head"]["kernel"],
      -0.5 * grads["img"]["head"]["kernel"]
      / (jnp.abs(grads["img"]["head"]["kernel"]) + 1e-8), rtol=1e-5)
  np.testing.assert_allclose(
      updates["txt"]["head"]["kernel"],
      -0.05 * grads["txt"]["head"]["kernel"]
      / (jnp.abs(grads["txt"]["head"]["kernel"]) + 1e-8), rtol=1e-5)


def test_weight_decay_hits_exactly_the_kernels_outside_pretrained():
  params = make_params()
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  (updates,), _, _ = run(
      config(weight_decay=0.01, pretrained=("img/head",), lr_mults={"txt": 5}),
      params, [zero_grads])
  flat_updates = dict(zip(names(updates), jax.tree.leaves(updates)))
  flat_params = dict(zip(names(params), jax.tree.leaves(params)))
  decayed = {n for n, u in flat_updates.items() if np.any(u != 0)}
  assert decayed == {"img/embedding/kernel", "txt/embed_bottleneck/kernel",
                     "txt/head/kernel"}
  for n in decayed:  # Decoupled: neither lr nor lr_mults scale the decay.
    np.testing.assert_allclose(flat_updates[n], -0.01 * flat_params[n],
                               rtol=1e-6)


def test_weight_decay_follows_the_schedule():
  params = make_params()
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  c = config(weight_decay=0.01, schedule="cosine", warmup_steps=4)
  updates, _, _ = run(c, params, [zero_grads] * 3, total_steps=10)
  # Warmup rates 0, 1/4, 1/2 of the peak: step 1 shrank the kernel by
  # 0.25 * 0.01, step 2 shrinks what is left by 0.5 * 0.01.
  np.testing.assert_allclose(updates[0]["txt"]["head"]["kernel"], 0.0)
  np.testing.assert_allclose(
      updates[2]["txt"]["head"]["kernel"],
      -0.005 * (1 - 0.0025) * params["txt"]["head"]["kernel"], rtol=1e-5)


def test_schedules_match_hand_computed_values():
  c = config(lr=2.0, schedule="cosine", warmup_steps=10)
  sched = optimizers.make_schedule(c, total_steps=110)
  _, lr = optimizers.make_optimizer(c, make_params(), 110)
  for step, expected in [(0, 0.0), (5, 0.5), (10, 1.0),
                         (35, 0.5 * (1 + math.cos(math.pi / 4))),
                         (60, 0.5), (110, 0.0), (500, 0.0)]:
    np.testing.assert_allclose(sched(step), expected, atol=1e-6)
    np.testing.assert_allclose(lr(step), 2.0 * expected, atol=1e-6)

  c = config(schedule="rsqrt", warmup_steps=100, rsqrt_timescale=1000,
             cooldown_steps=1000)
  sched = optimizers.make_schedule(c, total_steps=10_000)
  for step, expected in [(50, 0.5), (100, 1.0), (3100, 0.5),
                         (8100, 1 / 3), (9550, 0.45 / math.sqrt(10.45))]:
    np.testing.assert_allclose(sched(step), expected, rtol=1e-5)

  sched = optimizers.make_schedule(config(schedule="constant"), 10)
  np.testing.assert_allclose(sched(7), 1.0)


def test_clipping_caps_the_global_norm():
  params = make_params()
  grads = gradients(params)
  norm = float(optax.global_norm(grads))
  assert norm > 2.0
  unit = jax.tree.map(lambda g: g / norm, grads)
  # With eps = 1, Adam's first step g / (|g| + 1) depends on the scale of g,
  # so equal updates mean that clipping rescaled g to unit norm.
  (clipped,), _, _ = run(config(clip_norm=1.0, eps=1.0), params, [grads])
  (reference,), _, _ = run(config(clip_norm=1.0, eps=1.0), params, [unit])
  (unclipped,), _, _ = run(config(clip_norm=0.0, eps=1.0), params, [grads])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5),
               clipped, reference)
  assert not np.allclose(unclipped["txt"]["head"]["kernel"],
                         clipped["txt"]["head"]["kernel"])


def test_bad_settings_are_rejected():
  params = make_params()
  with pytest.raises(ValueError, match="frozen entry 'image'"):
    optimizers.make_optimizer(config(frozen=("image",)), params, 10)
  with pytest.raises(ValueError, match="freeze with optim.frozen"):
    optimizers.make_optimizer(config(lr_mults={"img": 0.0}), params, 10)
  with pytest.raises(ValueError, match="optim.name"):
    optimizers.make_optimizer(config(name="sgd"), params, 10)
  with pytest.raises(ValueError, match="optim.schedule"):
    optimizers.make_optimizer(config(schedule="linear"), params, 10)
  with pytest.raises(ValueError, match="warmup_steps"):
    optimizers.make_optimizer(config(warmup_steps=10), params, 10)


def test_prefixes_match_whole_path_components():
  assert optimizers.under("txt/head/kernel", "txt/head")
  assert optimizers.under("txt/head", "txt/head")
  assert not optimizers.under("txt/head2/kernel", "txt/head")
  assert not optimizers.under("t", "txt")
