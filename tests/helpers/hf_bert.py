"""Writes a tiny BERT folder in HuggingFace layout (random weights).

Tensor names and shapes follow HF `BertModel` (Linear weights are
[out, in]); keras-hub's converter (`convert_bert.py`) reads exactly these.
"""

import json
import os

import numpy as np
from safetensors.numpy import save_file


def write_tiny_hf_bert(path, vocabulary, hidden=16, layers=2, heads=2,
                       intermediate=32, max_positions=64, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)

    def w(*shape):
        return (rng.normal(size=shape) * 0.05).astype(np.float32)

    tensors = {
        "embeddings.word_embeddings.weight": w(len(vocabulary), hidden),
        "embeddings.position_embeddings.weight": w(max_positions, hidden),
        "embeddings.token_type_embeddings.weight": w(2, hidden),
        "embeddings.LayerNorm.weight": 1 + w(hidden),
        "embeddings.LayerNorm.bias": w(hidden),
        "pooler.dense.weight": w(hidden, hidden),
        "pooler.dense.bias": w(hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            tensors[p + f"attention.self.{name}.weight"] = w(hidden, hidden)
            tensors[p + f"attention.self.{name}.bias"] = w(hidden)
        tensors[p + "attention.output.dense.weight"] = w(hidden, hidden)
        tensors[p + "attention.output.dense.bias"] = w(hidden)
        tensors[p + "attention.output.LayerNorm.weight"] = 1 + w(hidden)
        tensors[p + "attention.output.LayerNorm.bias"] = w(hidden)
        tensors[p + "intermediate.dense.weight"] = w(intermediate, hidden)
        tensors[p + "intermediate.dense.bias"] = w(intermediate)
        tensors[p + "output.dense.weight"] = w(hidden, intermediate)
        tensors[p + "output.dense.bias"] = w(hidden)
        tensors[p + "output.LayerNorm.weight"] = 1 + w(hidden)
        tensors[p + "output.LayerNorm.bias"] = w(hidden)
    save_file(tensors, os.path.join(path, "model.safetensors"))
    config = {
        "model_type": "bert", "architectures": ["BertModel"],
        "vocab_size": len(vocabulary), "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": intermediate, "max_position_embeddings": max_positions,
        "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
    }
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(vocabulary) + "\n")
    return tensors
