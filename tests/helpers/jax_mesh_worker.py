"""One epoch of `ptloss_tf.Distiller` on a tiny keras-hub BERT under JAX,
on one device or a `keras.distribution` mesh, in one or several processes.
Process 0 writes the final weights (`.npz`, one array per variable path).

Usage (the parent sets `KERAS_BACKEND=jax` and, for several CPU devices,
`XLA_FLAGS=--xla_force_host_platform_device_count=N`):

    python tests/helpers/jax_mesh_worker.py OUT.npz [--distribution data_parallel]
        [--devices N] [--model-parallel M] [--batch-size B]
        [--coordinator HOST:PORT --num-processes P --process-id I] [--loss kl|dist]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

NUM_ROWS, LENGTH, VOCAB, CLASSES = 37, 12, 60, 3   # 37 rows: a partial last batch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--distribution", default="none")
    parser.add_argument("--devices", type=int)
    parser.add_argument("--model-parallel", type=int)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--loss", default="kl")
    args = parser.parse_args()

    from ptloss_tf.distribution import initialize_processes

    process, processes = initialize_processes(args.coordinator, args.num_processes,
                                              args.process_id)
    import keras
    import keras_hub
    import numpy as np

    import ptloss_tf
    from ptloss_tf.distribution import axis_size
    from ptloss_tf.distribution import check_batch_size
    from ptloss_tf.distribution import check_dimensions
    from ptloss_tf.distribution import check_layout
    from ptloss_tf.distribution import make_distribution
    from ptloss_tf.training.data.prepared_batches import PreparedBatches

    assert keras.backend.backend() == "jax"
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, LENGTH + 1, NUM_ROWS)
    mask = (np.arange(LENGTH)[None] < lengths[:, None]).astype(np.int32)
    tokens = {"token_ids": rng.integers(5, VOCAB, (NUM_ROWS, LENGTH)) * mask,
              "segment_ids": np.zeros((NUM_ROWS, LENGTH), np.int32), "padding_mask": mask}
    teacher = rng.dirichlet(np.ones(CLASSES), NUM_ROWS).astype(np.float32)
    targets = {"teacher_probs": teacher, "labels": rng.integers(0, CLASSES, NUM_ROWS)}

    distribution = None
    pad = 1
    if args.distribution != "none":
        distribution = make_distribution(args.distribution, devices=args.devices,
                                         model_parallel=args.model_parallel,
                                         auto_shard_dataset=False)
        check_batch_size(distribution, args.batch_size)
        check_dimensions(distribution, hidden_dim=16, num_heads=2, intermediate_dim=32)
        pad = axis_size(distribution, "batch")
        keras.distribution.set_distribution(distribution)
    batches = PreparedBatches(tokens, targets, args.batch_size, shuffle=True, seed=3,
                              pad_to_multiple=pad, process_index=process,
                              process_count=processes)
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=LENGTH, dropout=0.0)
    student = keras_hub.models.BertTextClassifier(backbone, num_classes=CLASSES,
                                                  preprocessor=None, activation=None,
                                                  dropout=0.0)
    if distribution is not None:
        check_layout(distribution, student)
    distiller = ptloss_tf.Distiller(student)
    distiller.compile(optimizer=keras.optimizers.AdamW(1e-2),
                      distillation_loss=ptloss_tf.losses.get(
                          args.loss, from_logits=True, reduction="mean_with_sample_weight"),
                      jit_compile=True)
    distiller.fit(batches, epochs=1, verbose=0, shuffle=False)
    if process == 0:
        np.savez(args.out, **{v.path: np.asarray(v.value) for v in student.weights})


if __name__ == "__main__":
    main()
