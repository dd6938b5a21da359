"""The README's own-model recipe is the code notebook 06 runs (every profile): the task
definition must be the same text in both."""

from __future__ import annotations

import json
import re

from aquasurf_core import paths


def test_readme_own_model_recipe_is_the_one_notebook_06_runs():
    root = paths.repo_root()
    blocks = re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
    (readme,) = [b for b in blocks if 'Task("digits-mlp"' in b]
    cells = json.loads((root / "notebooks" / "06_your_model.ipynb").read_text())["cells"]
    (cell,) = ["".join(c["source"]) for c in cells if 'Task("digits-mlp"' in "".join(c["source"])]

    def definition(text):
        lines = text.strip().splitlines()
        end = next(i for i, line in enumerate(lines) if line.startswith("task = Task("))
        return lines[:end + 1]

    assert definition(readme) == definition(cell)
    assert "torch.randn" not in readme and "randint" not in readme  # real labels
