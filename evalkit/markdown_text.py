"""The one Markdown escaper, one floor below its users: report.md (``evalkit.report``) and the gate's
verdict and step summary (``evalkit.gate``) both render untrusted text with it."""

from __future__ import annotations

from typing import Any

__all__ = ["md_escape"]


def md_escape(text: Any) -> str:
    """The one Markdown escaper: ``text`` made inert in report.md, the gate verdict and step summary.

    Untrusted text (labels, task and metric names, messages) may appear in a table cell, a list item
    or a heading; after escaping it renders as the same characters and nothing else: no HTML, no
    links or images (also no bare-URL autolinks), no emphasis, code, math or strikethrough, no
    pipes that would split a table cell, no newlines that would end a row, no @-mentions.

    >>> md_escape("a|b <script> [x](y) @team")
    'a\\\\|b &lt;script&gt; \\\\[x\\\\](y) @\\u200bteam'
    >>> md_escape("![i](https://e.vil/x.png)")
    '\\\\!\\\\[i\\\\](https:\\u200b//e.vil/x.png)'
    """
    if text is None:
        return ""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = out.replace("\\", "\\\\")  # first, so the escapes added below stay single
    for char in "|[]`*_~$#!":
        out = out.replace(char, "\\" + char)
    out = out.replace("@", "@\u200b")  # no notifications from a label
    # GitHub links bare URLs and www. names by itself; a zero-width space keeps them plain text.
    out = out.replace("://", ":\u200b//").replace("www.", "www\u200b.")
    return " ".join(out.split())  # newlines would end the table row
