"""Accelerator check of the backend-agnostic parts under `KERAS_BACKEND=jax`.

Run on a GPU host that has JAX but no TensorFlow (the project's lent H100 /
H200): PTLoss, the baselines and `ptloss_tf.Distiller` are Keras 3 code, so
they must work and be fast there too. Measures, in one process:

1. PTLoss values under `jax.jit` vs the independent numpy reference.
2. Loss alone: jitted forward+backward of KL vs PTLoss (M = 1, 5, 10),
   B in {256, 4096}, K in {2, 3}, 1,000 chained steps per call.
3. keras-hub BERT-base (random weights, seq 128, mixed_bfloat16, batch 128
   and 256): examples/s and model FLOP utilisation of `fit` with
   cross-entropy on labels, `compile(loss=KL)`, `compile(loss=PTLoss)` and
   `ptloss_tf.Distiller` + PTLoss on cached teacher probabilities, measured
   alternately (A B C D A B C D ...). Target: Distiller / plain >= 0.97.
4. The speed a user sees on SST-2's sentence lengths (`--sst2-lengths`, from
   `bench/device/carry.py`): the project's length-bucketed `PreparedBatches`
   + Distiller + PTLoss against a plain fit padded to 128, batch 128.

Usage, from the repository root (as a module: it imports `ptloss_tf` and
`tests.helpers.reference` from the checkout, which a TF-free venv does not install):
  device:                          pip install --no-deps bench/device/carry/wheels/*.whl
                                   KERAS_BACKEND=jax python3 -m bench.device.jax_bert_check
  here, tiny smoke run with TF:    python -m bench.device.jax_bert_check --tiny
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import ptloss_tf  # noqa: E402
from tests.helpers import reference  # noqa: E402


def log(*a):
    print(*a, flush=True)


def check_values(results):
    rng = np.random.default_rng(0)
    worst = 0.0
    for k, m in [(2, 1), (3, 5), (5, 10)]:
        p = rng.dirichlet(np.ones(k), size=64).astype(np.float32)
        z = rng.normal(scale=3, size=(64, k)).astype(np.float32)
        eta = rng.uniform(-1, 5, size=(m, k))
        loss = ptloss_tf.PTLoss(eta, from_logits=True, reduction=None)
        fn = loss
        if keras.backend.backend() == "jax":
            import jax

            fn = jax.jit(lambda a, b: loss(a, b))
        got = np.asarray(fn(p, z))
        want = reference.ptloss_numpy(p, z, eta)
        worst = max(worst, float(np.max(np.abs(got - want) / (np.abs(want) + 1e-6))))
    results["value_max_rel_error_vs_numpy"] = worst
    log(f"[1] PTLoss under {keras.backend.backend()} (jit) vs numpy: max rel error {worst:.2e}")


def loss_alone(results, steps):
    if keras.backend.backend() != "jax":
        log("[2] skipped (needs the jax backend)")
        return
    import jax
    import jax.numpy as jnp

    rows = []
    for batch in (256, 4096):
        for k in (2, 3):
            rng = np.random.default_rng(1)
            p = jnp.asarray(rng.dirichlet(np.ones(k), size=batch).astype(np.float32))
            z0 = jnp.asarray(rng.normal(scale=2, size=(batch, k)).astype(np.float32))
            losses = {"KL": ptloss_tf.KLDivergence(from_logits=True)}
            for m in (1, 5, 10):
                losses[f"PTLoss M={m}"] = ptloss_tf.PTLoss(
                    rng.uniform(0, 2, size=(m, k)), from_logits=True
                )
            fns = {}
            for name, loss in losses.items():
                def make(loss):
                    grad = jax.value_and_grad(lambda z: loss(p, z))

                    @jax.jit
                    def run(z):
                        def body(i, carry):
                            z, acc = carry
                            v, g = grad(z)
                            return z - 0.1 * g, acc + v
                        return jax.lax.fori_loop(0, steps, body, (z, 0.0))[1]
                    return run
                fns[name] = make(loss)
                fns[name](z0).block_until_ready()
            times = {name: [] for name in fns}
            for _ in range(7):
                for name, fn in fns.items():
                    t = time.perf_counter()
                    fn(z0).block_until_ready()
                    times[name].append((time.perf_counter() - t) / steps * 1e6)
            kl = np.median(times["KL"])
            for name in fns:
                us = float(np.median(times[name]))
                rows.append({"B": batch, "K": k, "loss": name, "us_per_step": us,
                             "ratio_vs_kl": us / kl})
                log(f"[2] B={batch:5d} K={k} {name:12s} {us:8.2f} us/step  x{us / kl:.2f} KL")
    results["loss_alone"] = rows


#: bf16 dense peak of an H200 / H100 SXM (spec) and what the device tool's
#: notes measured there (bench/device: "about 790 TFLOP/s").
PEAK_FLOPS = {"spec": 989e12, "measured": 790e12}


def bert_config(tiny):
    if tiny:
        return dict(vocabulary_size=200, num_layers=1, num_heads=2, hidden_dim=32,
                    intermediate_dim=64, max_sequence_length=128)
    return dict(vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
                intermediate_dim=3072, max_sequence_length=512)


def training_flops_per_example(cfg, seq):
    """Model FLOPs of one training example (forward + backward = 3 x
    forward): per token and layer 2 x the layer's weights (4 H^2 + 2 H I)
    plus 4 S H for the attention scores and their weighted sum."""
    h, i, layers = cfg["hidden_dim"], cfg["intermediate_dim"], cfg["num_layers"]
    forward_per_token = layers * (2 * (4 * h * h + 2 * h * i) + 4 * seq * h)
    return 3 * forward_per_token * seq


def bert_throughput(results, tiny, batch_sizes):
    results["bert"] = []
    for batch in batch_sizes:
        results["bert"].append(_bert_throughput(tiny, batch))


def _bert_throughput(tiny, batch):
    keras.config.set_dtype_policy("mixed_bfloat16")
    cfg = bert_config(tiny)
    seq, steps, rounds = (32, 4, 2) if tiny else (128, 40, 3)
    n = batch * steps
    k = 3
    rng = np.random.default_rng(2)
    lengths = rng.integers(seq // 4, seq + 1, size=n)
    mask = (np.arange(seq)[None, :] < lengths[:, None])
    x = {
        "token_ids": np.where(mask, rng.integers(5, cfg["vocabulary_size"], size=(n, seq)), 0).astype("int32"),
        "segment_ids": np.zeros((n, seq), "int32"),
        "padding_mask": mask.astype("int32"),
    }
    labels = rng.integers(0, k, size=n).astype("int32")
    teacher = rng.dirichlet(np.ones(k), size=n).astype("float32")
    eta = ptloss_tf.Coefficients(rng.uniform(0, 2, size=(5, k)))

    def student():
        keras.utils.set_random_seed(0)
        backbone = keras_hub.models.BertBackbone(**cfg)
        inputs = {name: keras.Input((seq,), dtype="int32", name=name) for name in x}
        pooled = backbone(inputs)["pooled_output"]
        logits = keras.layers.Dense(k, dtype="float32", name="logits")(pooled)
        return keras.Model(inputs, logits)

    def optimizer():
        return keras.optimizers.AdamW(2e-5)

    runs = {}
    m = student()
    m.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    runs["plain CE on labels"] = (m, labels)
    m = student()
    m.compile(optimizer(), ptloss_tf.KLDivergence(from_logits=True), jit_compile=True)
    runs["compile(loss=KL)"] = (m, teacher)
    m = student()
    m.compile(optimizer(), ptloss_tf.PTLoss(eta, from_logits=True), jit_compile=True)
    runs["compile(loss=PTLoss M=5)"] = (m, teacher)
    d = ptloss_tf.Distiller(student())
    d.compile(optimizer(), distillation_loss=ptloss_tf.PTLoss(eta, from_logits=True), jit_compile=True)
    runs["Distiller + PTLoss M=5"] = (d, {"teacher_probs": teacher, "labels": labels})
    for name, (model, y) in runs.items():
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        log(f"[3] warm-up (compile) {name}: {time.perf_counter() - t:.1f} s")
    speeds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (model, y) in runs.items():
            t = time.perf_counter()
            history = model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
            speeds[name].append(n / (time.perf_counter() - t))
            assert np.isfinite(history.history["loss"]).all(), name
    base = np.median(speeds["plain CE on labels"])
    flops = training_flops_per_example(cfg, seq)
    rows = []
    for name, s in speeds.items():
        speed = float(np.median(s))
        mfu = {k: speed * flops / peak for k, peak in PEAK_FLOPS.items()}
        rows.append({"run": name, "examples_per_s": speed, "ratio_vs_plain": speed / base,
                     "mfu": mfu, "all_rounds": [float(v) for v in s]})
        log(f"[3] batch {batch} {name:28s} {speed:9.1f} ex/s  x{speed / base:.3f} plain  "
            f"MFU {100 * mfu['spec']:.1f}% of spec ({100 * mfu['measured']:.1f}% of measured) peak")
    logs = runs["Distiller + PTLoss M=5"][0].evaluate(
        x, {"teacher_probs": teacher, "labels": labels}, batch_size=batch, verbose=0, return_dict=True)
    log(f"[3] Distiller evaluate: {json.dumps({k2: round(float(v), 4) for k2, v in logs.items()})}")
    return {"config": cfg, "seq": seq, "batch": batch, "flops_per_example": flops, "rows": rows}


def bucketing_speed(results, tiny, lengths_path, batch):
    """[4] What a user sees on real sentence lengths: the project's
    length-bucketed input (`PreparedBatches`, buckets from the SST-2 token
    counts) with the Distiller + PTLoss, against a plain fit of the same
    student on the same examples padded to 128 (keras-hub's fixed-length
    preprocessing); alternating epochs, examples/s."""
    from ptloss_tf.training.data.prepared_batches import PreparedBatches

    keras.config.set_dtype_policy("mixed_bfloat16")
    cfg = bert_config(tiny)
    seq = 128
    all_lengths = np.load(lengths_path).astype(np.int64)
    n = 256 if tiny else 64 * batch
    rng = np.random.default_rng(3)
    lengths = rng.choice(all_lengths, size=n)
    mask = np.arange(seq)[None, :] < lengths[:, None]
    x = {"token_ids": np.where(mask, rng.integers(5, cfg["vocabulary_size"], size=(n, seq)),
                               0).astype("int32"),
         "segment_ids": np.zeros((n, seq), "int32"), "padding_mask": mask.astype("int32")}
    labels = rng.integers(0, 2, size=n).astype("int32")
    teacher = rng.dirichlet(np.ones(2), size=n).astype("float32")
    targets = {"teacher_probs": teacher, "labels": labels}

    def student():
        keras.utils.set_random_seed(0)
        backbone = keras_hub.models.BertBackbone(**cfg)
        inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in x}
        logits = keras.layers.Dense(2, dtype="float32")(backbone(inputs)["pooled_output"])
        return keras.Model(inputs, logits)

    # drop_remainder: one compiled program per bucket (partial batches would add one each).
    bucketed = PreparedBatches(x, targets, batch, shuffle=True, bucket_boundaries="auto",
                               drop_remainder=True)
    d = ptloss_tf.Distiller(student())
    d.compile(keras.optimizers.AdamW(2e-5), jit_compile=True,
              distillation_loss=ptloss_tf.PTLoss(np.ones((5, 2)), from_logits=True))
    plain = student()
    plain.compile(keras.optimizers.AdamW(2e-5), jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    runs = {"project: Distiller + PTLoss, length buckets": lambda: d.fit(bucketed, epochs=1, verbose=0),
            "plain keras-hub fit, padded to 128": lambda: plain.fit(
                x, labels, batch_size=batch, epochs=1, verbose=0, shuffle=True)}
    for name, fit in runs.items():
        t = time.perf_counter()
        fit()
        log(f"[4] warm-up (compile every bucket) {name}: {time.perf_counter() - t:.1f} s")
    speeds = {name: [] for name in runs}
    for _ in range(2 if tiny else 3):
        for name, fit in runs.items():
            t = time.perf_counter()
            fit()
            speeds[name].append(n / (time.perf_counter() - t))
    base = np.median(speeds["plain keras-hub fit, padded to 128"])
    rows = []
    for name, s in speeds.items():
        rows.append({"run": name, "examples_per_s": float(np.median(s)),
                     "ratio_vs_plain_padded": float(np.median(s) / base)})
        log(f"[4] batch {batch} {name:48s} {np.median(s):9.1f} ex/s  x{np.median(s) / base:.2f}")
    results["bucketing"] = {"batch": batch, "examples": n, "boundaries": bucketed.boundaries,
                            "median_length": float(np.median(lengths)), "rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--sst2-lengths", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "carry", "sst2_lengths.npy"),
        help="MiniLM token counts of SST-2 (bench/device/carry.py teacher-tokens)")
    args = parser.parse_args()
    results = {"backend": keras.backend.backend(), "keras": keras.__version__,
               "keras_hub": keras_hub.__version__}
    if keras.backend.backend() == "jax":
        import jax

        results["devices"] = [str(d) for d in jax.devices()]
        log(f"devices: {results['devices']}")
    check_values(results)
    loss_alone(results, steps=10 if args.tiny else 1000)
    bert_throughput(results, args.tiny, [8] if args.tiny else args.batch_sizes)
    if os.path.exists(args.sst2_lengths):
        bucketing_speed(results, args.tiny, args.sst2_lengths, 8 if args.tiny else 128)
    else:
        log(f"[4] skipped: no {args.sst2_lengths}")
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "jax_bert_check.json"), "w") as f:
            json.dump(results, f, indent=1)
    log("DONE")


if __name__ == "__main__":
    main()
