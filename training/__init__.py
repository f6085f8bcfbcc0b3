"""The distillation application: data -> teacher outputs -> coefficients ->
distilled keras-hub BERT student -> report. Entry point: `ptloss-distill`
(also `python -m ptloss_tf.training`)."""
