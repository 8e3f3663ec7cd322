"""The README's promises: its Python snippets run, and CI runs its test command."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_snippets_run():
    code = "\n".join(re.findall(r"```python\n(.*?)```", README, re.S))
    assert "torchsim" in code
    exec(compile(code, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_cmd = next(line for b in blocks for line in b.splitlines() if "pytest" in line)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.strip() in ci.splitlines()
