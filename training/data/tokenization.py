"""BERT tokenisation shared by training and export: the special tokens, the
vocabulary file, the keras-hub preprocessor and the call that turns texts
into the classifier's int32 inputs.

`ptloss_tf.export` tokenises served requests with the same `preprocess` as
training's `tf.data` pipeline, so a served model sees exactly the token ids
its student was trained on.

Example:
>>> vocab = list(SPECIAL_TOKENS) + ["good", "film"]
>>> pre = make_preprocessor(6, vocabulary=vocab)
>>> import tensorflow as tf
>>> preprocess(pre, [tf.constant(["good film"])])["token_ids"].numpy().tolist()
[[2, 5, 6, 3, 0, 0]]
"""

import os

#: BERT's special wordpieces; a vocabulary needs the first four.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: The classifier's inputs, in the order keras-hub's backbone names them.
INPUT_KEYS = ("token_ids", "segment_ids", "padding_mask")


def load_vocabulary(vocabulary):
    """A wordpiece list from a list or a `vocab.txt` path (one token per line,
    or a folder holding `vocab.txt`).

    Example:
    >>> load_vocabulary(["[PAD]", "a"])
    ['[PAD]', 'a']
    """
    if isinstance(vocabulary, (list, tuple)):
        return list(vocabulary)
    path = str(vocabulary)
    if os.path.isdir(path):
        path = os.path.join(path, "vocab.txt")
    if not os.path.exists(path):
        raise ValueError(f"vocabulary file not found: {path}")
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f if line.strip()]
    missing = [t for t in SPECIAL_TOKENS[:4] if t not in tokens]
    if missing:
        raise ValueError(f"vocabulary {path} lacks the special tokens {missing}.")
    return tokens


def make_preprocessor(sequence_length, vocabulary=None, preset=None):
    """A keras-hub `BertTextClassifierPreprocessor` from a vocabulary (list
    or `vocab.txt`) or a preset (name or local folder)."""
    import keras_hub

    if preset is not None:
        tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
    elif vocabulary is not None:
        tokenizer = keras_hub.models.BertTokenizer(
            vocabulary=load_vocabulary(vocabulary), lowercase=True
        )
    else:
        raise ValueError("a preprocessor needs a `vocabulary` or a `preset`.")
    return keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=int(sequence_length)
    )


def preprocess(preprocessor, texts):
    """Calls a keras-hub preprocessor on 1 or 2 string tensors -> int32 dict
    of `INPUT_KEYS`.

    Sentence pairs go in as `x=(first, second)` with an explicit `y=None`:
    keras-hub 0.32 unpacks a lone 2-tuple argument as `(x, y)`, which would
    silently drop the second segment. The bool `padding_mask` is cast to
    int32: `fit` under `MirroredStrategy` has no bool `AddN` kernel.
    """
    import tensorflow as tf

    texts = tuple(texts)
    out = preprocessor(texts[0] if len(texts) == 1 else texts, y=None)
    if isinstance(out, tuple):  # (x, y, sw) from a preprocessor given labels
        out = out[0]
    missing = [k for k in INPUT_KEYS if k not in out]
    if missing:
        raise ValueError(
            f"the preprocessor's output lacks {missing} (keys: {sorted(out)}); "
            "use a keras_hub BertTextClassifierPreprocessor-style preprocessor."
        )
    return {k: tf.cast(out[k], tf.int32) for k in INPUT_KEYS}
