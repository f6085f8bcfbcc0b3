"""The two serving signatures of an exported student, as `tf.function`s.

* `serving_default`: raw text in (`text`, or `text_a` and `text_b` for
  sentence-pair tasks), tokenised in the graph by the student's keras-hub
  preprocessor (TF Text ops).
* `predict_token_ids`: `token_ids`, `segment_ids`, `padding_mask` (int32,
  `[batch, length]`, mask 1 for real tokens) in, for clients that tokenise
  themselves or servers built without TF Text's ops.

Both return `probabilities [B, K]` and `logits [B, K]` (float32, whatever
the student's compute dtype), `label_id [B]` (int32) and `label [B]` (the
class name, string). Both run the classifier on the batch trimmed to its
longest row (`_trim_padding`), not on the full padded sequence length.
"""

import tensorflow as tf

SERVING_DEFAULT = "serving_default"
PREDICT_TOKEN_IDS = "predict_token_ids"
TOKEN_INPUTS = ("token_ids", "segment_ids", "padding_mask")
OUTPUTS = {"probabilities": tf.float32, "logits": tf.float32,
           "label_id": tf.int32, "label": tf.string}


def text_input_names(num_segments):
    """`("text",)` for single-sentence tasks, `("text_a", "text_b")` for pairs."""
    if num_segments == 1:
        return ("text",)
    if num_segments == 2:
        return ("text_a", "text_b")
    raise ValueError(f"a text classifier takes 1 or 2 segments, got {num_segments}.")


def _outputs(logits, class_names):
    logits = tf.cast(logits, tf.float32)
    label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return {
        "probabilities": tf.nn.softmax(logits, axis=-1),
        "logits": logits,
        "label_id": label_id,
        "label": tf.gather(class_names, label_id),
    }


def _trim_padding(token_ids, segment_ids, padding_mask):
    """Drops the trailing columns that are padding in every row.

    The preprocessor pads each request to the full sequence length; BERT's
    outputs do not depend on masked positions, but its cost grows with the
    length, so a batch of short sentences runs several times faster trimmed
    to its longest row (at least 1 column).
    """
    positions = tf.range(1, tf.shape(padding_mask)[1] + 1)
    used = tf.where(tf.cast(padding_mask, tf.bool), positions[tf.newaxis, :],
                    tf.zeros_like(positions)[tf.newaxis, :])
    length = tf.maximum(tf.reduce_max(used), 1)
    return token_ids[:, :length], segment_ids[:, :length], padding_mask[:, :length]


def make_signatures(classifier, preprocessor, class_names, num_segments):
    """`{name: (function, input_signature)}` for `keras.export.ExportArchive`.

    Args:
        classifier: a keras-hub `TextClassifier` taking token-id dicts.
        preprocessor: its `TextClassifierPreprocessor` (tokenizer, length).
        class_names: the `K` class names, in logit order.
        num_segments: 1 (single sentence) or 2 (sentence pairs).

    Example:
    >>> import keras_hub
    >>> from ptloss_tf.training.student import build_classifier
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]
    >>> model, pre = build_classifier(2, sequence_length=8, vocabulary=vocab,
    ...     num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16)
    >>> sigs = make_signatures(model, pre, ["neg", "pos"], num_segments=1)
    >>> function, input_signature = sigs["serving_default"]
    >>> [spec.name for spec in input_signature]
    ['text']
    >>> out = function(tf.constant(["good", "bad bad"]))
    >>> sorted(out), out["label"].shape.as_list()
    (['label', 'label_id', 'logits', 'probabilities'], [2])
    """
    from ptloss_tf.training.data.tokenization import preprocess

    names = tf.constant([str(c) for c in class_names])
    text_names = text_input_names(num_segments)

    def from_tokens(token_ids, segment_ids, padding_mask):
        token_ids, segment_ids, padding_mask = _trim_padding(
            token_ids, segment_ids, padding_mask)
        logits = classifier(
            {"token_ids": token_ids, "segment_ids": segment_ids,
             "padding_mask": tf.cast(padding_mask, tf.bool)},
            training=False,
        )
        return _outputs(logits, names)

    # Tokenised exactly as in training (`preprocess`: int32 features; a
    # sentence pair passed so that keras-hub does not read it as `(x, y)`).
    # Named arguments (not *args): signature input keys are argument names.
    def from_text(text):
        return from_tokens(**preprocess(preprocessor, (text,)))

    def from_text_pair(text_a, text_b):
        return from_tokens(**preprocess(preprocessor, (text_a, text_b)))

    text_spec = [tf.TensorSpec([None], tf.string, name=n) for n in text_names]
    token_spec = [tf.TensorSpec([None, None], tf.int32, name=n) for n in TOKEN_INPUTS]
    return {
        SERVING_DEFAULT: (from_text if num_segments == 1 else from_text_pair, text_spec),
        PREDICT_TOKEN_IDS: (from_tokens, token_spec),
    }
