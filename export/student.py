"""Loading the student to export, checking that it is exportable, and its
reference outputs (tokens and Keras logits) that the export is verified
against."""

import os
import zipfile

import numpy as np


def load_student(path, vocabulary=None, sequence_length=None):
    """`(classifier, preprocessor)` from a `student.keras` file.

    The training application saves students with their keras-hub
    preprocessor attached. A classifier saved without one needs
    `vocabulary` (a `vocab.txt`) and `sequence_length`, which for a student
    trained from prepared data its run's report.json records.

    Args:
        path: the `.keras` file of a keras-hub `TextClassifier`.
        vocabulary: `vocab.txt` for a student saved without preprocessor;
            with one, it must equal the saved tokenizer's vocabulary.
        sequence_length: overrides / supplies the preprocessor's length.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a `.keras` archive, not a keras-hub text classifier,
            no preprocessor and no vocabulary, or a vocabulary whose size
            differs from the backbone's embedding table.
    """
    import keras
    import keras_hub

    from ptloss_tf.training.data.tokenization import load_vocabulary, make_preprocessor

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"student file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .keras model archive.")
    try:
        classifier = keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad archive
        raise ValueError(f"cannot load {path} as a Keras model: {' '.join(str(e).split())[:300]}")
    if not isinstance(classifier, keras_hub.models.TextClassifier):
        raise ValueError(
            f"{path} holds a {type(classifier).__name__}, not a keras-hub text "
            "classifier (e.g. BertTextClassifier); only classifiers can be exported."
        )
    preprocessor = classifier.preprocessor
    if preprocessor is None and vocabulary is None:
        # Trained from prepared data: the run's report.json records the tokenizer.
        from ptloss_tf.export.metadata import recorded_tokenizer

        vocabulary, recorded_length = recorded_tokenizer(path)
        sequence_length = sequence_length or recorded_length
    if vocabulary is not None:
        tokens = load_vocabulary(vocabulary)
        if preprocessor is not None and preprocessor.tokenizer.get_vocabulary() != tokens:
            raise ValueError(
                f"`vocabulary` {vocabulary} differs from the vocabulary saved in {path}."
            )
        if preprocessor is None:
            if not sequence_length:
                raise ValueError("a student without preprocessor needs `sequence_length`.")
            preprocessor = make_preprocessor(sequence_length, vocabulary=tokens)
    if preprocessor is None:
        raise ValueError(
            f"{path} was saved without a preprocessor; pass `vocabulary` (a vocab.txt) "
            "and `sequence_length` (the ones it was trained with)."
        )
    if sequence_length and int(sequence_length) != preprocessor.sequence_length:
        preprocessor.sequence_length = int(sequence_length)
    check_compatible(classifier, preprocessor)
    return classifier, preprocessor


def check_compatible(classifier, preprocessor):
    """Raises ValueError if the tokenizer cannot feed the backbone."""
    backbone = classifier.backbone
    vocab_size = preprocessor.tokenizer.vocabulary_size()
    if vocab_size != backbone.vocabulary_size:
        raise ValueError(
            f"the tokenizer has {vocab_size} tokens but the student's embedding "
            f"table has {backbone.vocabulary_size}: mismatched vocabulary."
        )
    max_length = getattr(backbone, "max_sequence_length", None)
    if max_length and preprocessor.sequence_length > max_length:
        raise ValueError(
            f"sequence length {preprocessor.sequence_length} exceeds the student's "
            f"{max_length} position embeddings."
        )


def tokenize(preprocessor, texts):
    """`{input: int32 [N, L]}` of `{text input name: [N] str}` (as training tokenises)."""
    import tensorflow as tf

    from ptloss_tf.training.data.tokenization import preprocess

    features = preprocess(preprocessor, [tf.constant(list(c)) for c in texts.values()])
    return {k: np.asarray(v, np.int32) for k, v in features.items()}


def keras_logits(classifier, tokens, batch_size=64):
    """float64 `[N, K]` logits of the Keras classifier on tokenised inputs."""
    # Called directly: `Task.predict` would run the attached preprocessor
    # on these already tokenised features.
    features = dict(tokens, padding_mask=tokens["padding_mask"].astype(bool))
    size = len(features["token_ids"])
    chunks = [classifier({k: v[i:i + batch_size] for k, v in features.items()}, training=False)
              for i in range(0, size, batch_size)]
    return np.concatenate([np.asarray(c, np.float64) for c in chunks])
