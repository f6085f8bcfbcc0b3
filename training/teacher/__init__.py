"""The teacher stage of `ptloss-distill`: everything that makes, stores and
reads a teacher's outputs.

- `run`: `ptloss-distill teacher` (fine-tune, predict every split, resume).
- `options`: its `TeacherConfig` and argument parser.
- `fine_tune`: fine-tuning a keras-hub teacher, `teacher.keras`.
- `predict`: the teacher's forward pass over a split (`predict_logits`).
- `run_state`: the run's resume state (`teacher_state.json`, epoch backups).
- `outputs`: the teacher-outputs file format (`TeacherOutputs`).
- `fingerprints`: the per-row content fingerprints of that format.
- `join`: outputs aligned to a run's examples (`join`, `load_splits`).
- `table_import`: `ptloss-distill import-teacher` (an external teacher's table).
- `shards`: the teacher pass in shards (`--shard I/N`, `ptloss-distill teacher merge`).

Nothing is imported here: `outputs` and `join` are read without TensorFlow
or Keras (`ptloss-distill --prepared-data`, `ptloss-export`).
"""
