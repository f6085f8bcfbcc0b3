"""`export`: TF-Serving SavedModels of a distilled keras-hub student.

`ptloss-export STUDENT --base-path DIR --name NAME` (also `python -m ptloss_tf.export`)
writes `DIR/NAME/<version>/`, a SavedModel that takes raw text (tokenised in
the graph by TF Text ops) or token ids, with warmup requests, a metadata
asset, and `DIR/NAME/models.config` for `tensorflow_model_server`.
`ptloss-export verify` loads it the way the server does: in a fresh process
with TensorFlow and TF Text's kernels only. `ptloss-export predict` scores a
file offline.

Python API: `ptloss_tf.export.saved_model.export_student`, `ptloss_tf.export.verify.verify_export`,
`ptloss_tf.export.predict.predict_file`.
"""
