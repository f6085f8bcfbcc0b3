import numpy as np
import pytest

from tests.helpers.hf_bert import write_tiny_hf_bert
from ptloss_tf.training.student import build_classifier
from tests.helpers import vocabulary

VOCAB = vocabulary(f"w{i}" for i in range(40))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf_bert")
    tensors = write_tiny_hf_bert(str(path), VOCAB, layers=2)
    return str(path), tensors


def test_loads_a_local_huggingface_folder(hf_folder):
    path, tensors = hf_folder
    model, preprocessor = build_classifier(3, sequence_length=16, preset=path)
    assert model.backbone.num_layers == 2
    np.testing.assert_allclose(
        model.backbone.token_embedding.embeddings.numpy(),
        tensors["embeddings.word_embeddings.weight"], atol=1e-7,
    )
    out = preprocessor(["w1 w2 w3"])
    assert int(out["token_ids"][0, 0]) == VOCAB.index("[CLS]")
    assert int(out["token_ids"][0, 1]) == VOCAB.index("w1")


def test_init_from_first_layers_copies_embeddings_and_layers(hf_folder):
    path, tensors = hf_folder
    full, _ = build_classifier(2, sequence_length=16, preset=path)
    small, _ = build_classifier(2, sequence_length=16, preset=path, init_from_layers=1)
    assert small.backbone.num_layers == 1
    for a, b in zip(small.backbone.transformer_layers[0].weights,
                    full.backbone.transformer_layers[0].weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The query kernel is HF's [out, in] weight transposed, split into heads.
    query = small.backbone.transformer_layers[0]._self_attention_layer.query_dense.kernel
    np.testing.assert_allclose(
        query.numpy().reshape(16, 16),
        tensors["encoder.layer.0.attention.self.query.weight"].T, atol=1e-7,
    )
    with pytest.raises(ValueError, match=r"\[1, 2\]"):
        build_classifier(2, preset=path, init_from_layers=3)


def test_custom_size_and_bad_arguments(tmp_path):
    model, pre = build_classifier(4, sequence_length=12, vocabulary=VOCAB, num_layers=1,
                                  hidden_dim=8, num_heads=2, intermediate_dim=16)
    assert model.backbone.hidden_dim == 8 and pre.sequence_length == 12
    logits = model(pre(["w1 w2"]))
    assert logits.shape == (1, 4)
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier(1, vocabulary=VOCAB)
    with pytest.raises(ValueError, match="needs a pretrained"):
        build_classifier(2, vocabulary=VOCAB, init_from_layers=1)
    with pytest.raises(ValueError, match="not found"):
        build_classifier(2, vocabulary=str(tmp_path / "missing.txt"))
