"""Generated README sections: the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
is replaced by a script's output, so README tables come from scripts, never from copying."""

from pathlib import Path


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
