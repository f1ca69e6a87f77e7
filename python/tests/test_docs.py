"""scripts/check_docs.py (run by `make test` on the repository's pages) finds what it is for: a
link to a missing file or heading, and a --flag a command does not have."""

import subprocess
import sys

from conftest import BIN_DIR, ROOT, binary

CHECK = ROOT / "scripts" / "check_docs.py"


def run(*pages):
    binary("zsc"), binary("zsc-export")
    return subprocess.run([sys.executable, CHECK, "--bin", BIN_DIR, *pages], capture_output=True, text=True)


def test_a_broken_link_anchor_and_flag_are_each_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Real heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n[ok](other.md#real-heading) [gone](missing.md) [bad](other.md#nowhere) [web](https://example.org)\n"
        "```bash\nzsc classify --model B --label a \\\n    --no-such-flag x\nzsc-export --checkpoint C --out D --quantize int8\n```\n"
        "and inline `zsc eval --model B --wrong` too\n"
    )
    done = run(page)
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    assert any("page.md:2: link to missing.md: no such file" in l for l in lines), lines
    assert any("no heading #nowhere in other.md" in l for l in lines), lines
    assert any("page.md:4: `zsc classify --no-such-flag` is not in its --help" in l for l in lines), lines
    assert any("`zsc eval --wrong`" in l for l in lines), lines
    assert "3 problems" not in done.stdout and "4 problems" in done.stdout, done.stdout


def test_the_repository_pages_pass():
    binary("zsc"), binary("zsc-export"), binary("trainer")
    done = subprocess.run([sys.executable, CHECK, "--bin", BIN_DIR, ROOT / "README.md", ROOT / "docs" / "corpus.md",
                           ROOT / "docs" / "usage.md"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
