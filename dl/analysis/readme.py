"""Generated README sections: the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
is replaced by a script's output, so README tables come from scripts, never from copying."""

import json
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def replace_block(readme: Path, name: str, text: str) -> bool:
    """Replaces the block `name` in `readme` (atomic write); False if the markers are absent."""
    readme = Path(readme)
    s = readme.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    i, j = s.find(begin), s.find(end)
    if i < 0 or j < i:
        return False
    new = s[: i + len(begin)] + "\n" + text.rstrip("\n") + "\n" + s[j:]
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(readme)
    return True


def publish(result: dict, out: Path, text: str, block: str | None = None) -> None:
    """Writes `result` as JSON to `out` (atomic), prints `text` and, with `block`, puts it in
    README.md's block of that name; missing markers exit with one line naming them."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(text)
    if block is not None and not replace_block(README, block, text):
        raise SystemExit(f"README.md: needs one <!-- {block}:begin --> and one :end")
