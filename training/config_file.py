"""The `--config` file of `ptloss-distill`: a YAML or JSON mapping of option
names (flag names with `_` or `-`) to values.

Example:
>>> import json, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run.json")
>>> with open(path, "w") as f:
...     json.dump({"epochs": 3, "loss": ["kl"]}, f)
>>> load_config_file(path)
{'epochs': 3, 'loss': ['kl']}
"""

import json
import os


def load_config_file(path):
    """The mapping in `path` (`.yaml`/`.yml`: YAML, else JSON); ValueError
    naming the file when it is missing, unparsable or not a mapping."""
    if not os.path.exists(path):
        raise ValueError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path} is not valid JSON: {e}")
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value.")
    return values
