"""Building the keras-hub BERT student (and teacher) and its preprocessor.

Three ways to get a backbone:

* `preset`: a keras-hub preset name (`"bert_base_en_uncased"`, downloads from
  Kaggle: users with internet) or a local folder in keras-hub or HuggingFace
  layout (`config.json`, `model.safetensors`, `vocab.txt`), e.g. the offline
  all-MiniLM-L6-v2 folder of `../shared/docs/DATA.md`.
* a custom size (`num_layers`, `hidden_dim`, `num_heads`, `intermediate_dim`)
  from scratch, with a given vocabulary (a list of wordpieces or a
  `vocab.txt` path) or the preset's.
* `init_from_layers=N` with a preset: a new N-layer backbone of the preset's
  width initialised from the preset's embeddings and its first N transformer
  layers (DistilBERT-style).
"""

import keras
import keras_hub

from ptloss_tf.training.data.tokenization import SPECIAL_TOKENS  # noqa: F401  (re-exported)
from ptloss_tf.training.data.tokenization import load_vocabulary
from ptloss_tf.training.data.tokenization import make_preprocessor
from ptloss_tf.validation import check_positive

def _copy_first_layers(source, target, num_layers):
    for name in (
        "token_embedding", "position_embedding", "segment_embedding",
        "embeddings_layer_norm", "pooled_dense",
    ):
        getattr(target, name).set_weights(getattr(source, name).get_weights())
    for i in range(num_layers):
        target.transformer_layers[i].set_weights(
            source.transformer_layers[i].get_weights()
        )


def build_classifier(
    num_classes,
    sequence_length=128,
    preset=None,
    vocabulary=None,
    num_layers=2,
    hidden_dim=64,
    num_heads=2,
    intermediate_dim=128,
    dropout=0.1,
    init_from_layers=None,
    seed=0,
    with_preprocessor=True,
):
    """Returns `(classifier, preprocessor)`: a `BertTextClassifier` emitting
    logits (its `preprocessor=None`: tokenisation runs in tf.data) and the
    matching `BertTextClassifierPreprocessor`.

    `with_preprocessor=False` builds no preprocessor (returns None for it):
    keras-hub tokenizers need TensorFlow, and training from prepared tokens
    (`training/prepared_data.py`) does not.

    Example:
    >>> vocab = list(SPECIAL_TOKENS) + ["good", "bad"]
    >>> model, pre = build_classifier(2, sequence_length=8, vocabulary=vocab,
    ...                               num_layers=1, hidden_dim=8, num_heads=2,
    ...                               intermediate_dim=16)
    >>> model.backbone.num_layers, pre.sequence_length
    (1, 8)
    """
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    check_positive(sequence_length, "sequence_length")
    keras.utils.set_random_seed(seed)
    preprocessor = None
    if preset is not None:
        if with_preprocessor:
            preprocessor = make_preprocessor(sequence_length, preset=preset)
        pretrained = keras_hub.models.BertBackbone.from_preset(preset)
        if init_from_layers:
            n = int(init_from_layers)
            if not 1 <= n <= pretrained.num_layers:
                raise ValueError(
                    f"`init_from_layers` must lie in [1, {pretrained.num_layers}] "
                    f"for preset {preset}, got {n}."
                )
            backbone = keras_hub.models.BertBackbone(
                vocabulary_size=pretrained.vocabulary_size,
                num_layers=n,
                num_heads=pretrained.num_heads,
                hidden_dim=pretrained.hidden_dim,
                intermediate_dim=pretrained.intermediate_dim,
                dropout=dropout,
                max_sequence_length=pretrained.max_sequence_length,
                num_segments=pretrained.num_segments,
            )
            _copy_first_layers(pretrained, backbone, n)
        else:
            backbone = pretrained
    else:
        if init_from_layers:
            raise ValueError("`init_from_layers` needs a pretrained `preset`.")
        if with_preprocessor:
            preprocessor = make_preprocessor(sequence_length, vocabulary=vocabulary)
            vocabulary_size = preprocessor.tokenizer.vocabulary_size()
        else:
            vocabulary_size = len(load_vocabulary(vocabulary))
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=vocabulary_size,
            num_layers=int(num_layers),
            num_heads=int(num_heads),
            hidden_dim=int(hidden_dim),
            intermediate_dim=int(intermediate_dim),
            dropout=dropout,
            max_sequence_length=max(int(sequence_length), 8),
        )
    classifier = keras_hub.models.BertTextClassifier(
        backbone, num_classes=num_classes, preprocessor=None, dropout=dropout
    )
    return classifier, preprocessor
