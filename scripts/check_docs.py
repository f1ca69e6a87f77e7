"""Docs that stay true (`make test`): every relative link in README.md and the user pages resolves
(files, and `#anchors` to a heading of the linked page), and every `--flag` a page shows for
`zsc`, `zsc-export` or `trainer` exists in that command's `--help`.

  python3 scripts/check_docs.py [--bin target/debug] [PAGE...]     # default: the pages below

Pages: README.md, docs/*.md and the crates' READMEs. docs/experiments/ is left out of the flag
check: experiment logs keep the commands as they were run then (their links are checked).
Exit 1 with one line per problem (`FILE:LINE: ...`).
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/**/*.md", "runtime/README.md", "python/README.md", "datagen/README.md",
         "data/README.md", "scripts/README.md", "results/*/README.md", "CONTRIBUTING.md", "CHANGELOG.md"]
COMMANDS = {"zsc": ["classify", "eval", "calibrate", "serve"],
            "zsc-export": [],
            "trainer": ["train", "eval", "export", "push", "pull", "devices"]}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"(?:^|(?<=[\s/$`(]))(zsc-export|zsc|trainer)(?=\s|$)")


def pages():
    seen = set()
    for pattern in PAGES:
        for p in sorted(ROOT.glob(pattern)):
            if p not in seen and "target" not in p.parts:
                seen.add(p)
                yield p


def slug(heading):
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        cache[path] = {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), re.M)}
    return cache[path]


def shown(page):
    try:
        return page.relative_to(ROOT)
    except ValueError:
        return page


def check_links(page, problems):
    for n, line in enumerate(page.read_text().splitlines(), 1):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                problems.append(f"{shown(page)}:{n}: link to {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{shown(page)}:{n}: link to {target}: no heading #{anchor} in {file or 'this page'}")


def help_flags(bin_dir, command, sub, cache={}):
    key = (command, sub)
    if key not in cache:
        args = [str(bin_dir / command)] + ([sub] if sub else []) + ["--help"]
        out = subprocess.run(args, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"check_docs: `{' '.join(args)}` failed: {out.stderr.strip()}")
        cache[key] = set(FLAG.findall(out.stdout)) | {"--help", "--version"}
    return cache[key]


def logical_lines(text):
    """Code lines (fenced blocks, continuation lines joined) and inline code spans, with line numbers."""
    fenced, pending, start = False, "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced, pending = not fenced, ""
            continue
        if fenced:
            if not pending:
                start = n
            pending += " " + line.rstrip().rstrip("\\")
            if not line.rstrip().endswith("\\"):
                yield start, pending
                pending = ""
        else:
            for span in re.findall(r"`([^`]+)`", line):
                yield n, span


def invocations(code):
    """(command, subcommand, flags) of each zsc / zsc-export / trainer call on a line."""
    cargo = re.search(r"cargo run\b.*?--bin\s+(\S+).*?\s--\s(.*)$", code)
    if cargo:
        code = f"{cargo.group(1)} {cargo.group(2)}"
    elif re.search(r"\bcargo\b", code):
        return
    for part in re.split(r"\||;|&&|\s#\s", code):
        matches = list(COMMAND.finditer(part))
        for i, m in enumerate(matches):
            before = part[: m.start()].split()
            if before and before[-1] in ("-p", "--bin", "--example", "install"):
                continue
            rest = part[m.end(): matches[i + 1].start() if i + 1 < len(matches) else len(part)]
            words = rest.split()
            sub = next((w for w in words if not w.startswith("-") and w in COMMANDS[m.group(1)]), None)
            if COMMANDS[m.group(1)] and sub is None:
                continue  # a mention, not a call
            yield m.group(1), sub, FLAG.findall(rest)


def check_flags(page, bin_dir, problems):
    if "experiments" in Path(shown(page)).parts:
        return
    for n, code in logical_lines(page.read_text()):
        for command, sub, flags in invocations(code):
            known = help_flags(bin_dir, command, sub) | (help_flags(bin_dir, command, None) if sub else set())
            for flag in flags:
                if flag not in known:
                    problems.append(f"{shown(page)}:{n}: `{command}{' ' + sub if sub else ''} {flag}` is not in its --help")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "debug", help="folder of the zsc, zsc-export and trainer binaries")
    ap.add_argument("pages", nargs="*", type=Path, help="pages to check instead of the default set")
    args = ap.parse_args()
    problems = []
    checked = 0
    for page in [p.resolve() for p in args.pages] or pages():
        check_links(page, problems)
        check_flags(page, args.bin, problems)
        checked += 1
    for p in problems:
        print(p)
    print(f"check_docs: {checked} pages, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
