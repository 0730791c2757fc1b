"""A MkDocs hook: links from the docs to the repository's source files.

``architecture.md`` and ``wire-contract.md`` link to source files
(``../voiceapi_async/_protocol.py``), which works when they are read in the
repository but points outside the site. This hook rewrites such links to the file
in the repository when ``repo_url`` is set in ``mkdocs.yml``, and to the link's
text as code otherwise, so the pages keep one source and the site has no broken link.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<target>\.\./[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")


def on_page_markdown(markdown: str, *, page: Any, config: Any, **kwargs: Any) -> str:
    """Rewrite the page's links that leave the docs folder for the repository."""
    docs_dir = Path(config["docs_dir"]).resolve()
    root = docs_dir.parent
    page_dir = posixpath.dirname(page.file.src_uri)
    repo_url = (config.get("repo_url") or "").rstrip("/")

    def rewrite(match: re.Match[str]) -> str:
        target = (docs_dir / page_dir / match["target"]).resolve()
        if docs_dir in target.parents or not target.exists():
            return match[0]  # a page of the site, or a broken link mkdocs reports
        path = target.relative_to(root).as_posix()
        text = match["text"]
        if repo_url:
            kind = "tree" if target.is_dir() else "blob"
            return f"[{text}]({repo_url}/{kind}/main/{path}{match['anchor'] or ''})"
        return text if text.startswith("`") else f"`{text}`"

    return _LINK.sub(rewrite, markdown)
