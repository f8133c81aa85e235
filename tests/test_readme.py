"""The README's test snippets run as written under pytest (in a directory of their own)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_files() -> dict[str, str]:
    """``# test_*.py`` python blocks of the README, by file name."""
    text = (ROOT / "README.md").read_text()
    files = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        first = block.splitlines()[0]
        if first.startswith("# test_") and first.endswith(".py"):
            files[first[2:]] = block
    return files


def test_the_readme_testing_snippets_pass_under_pytest(tmp_path: Path) -> None:
    files = readme_test_files()
    assert {"test_my_handler.py", "test_contract_kit.py"} <= set(files)
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    # a bare directory: pytest-asyncio's defaults (strict mode), none of our configuration
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
