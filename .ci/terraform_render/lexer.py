"""Lexing HCL's native syntax: strings, templates, heredocs and comments included, so that a
reference is only ever found where HCL would evaluate one."""

from __future__ import annotations

import re
from dataclasses import dataclass


class RenderError(Exception):
    """The module cannot be rendered; the message says where and why."""


IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
HEREDOC_RE = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\r?\n")
PUNCTS = ["...", "==", "!=", "<=", ">=", "&&", "||", "=>", "::", "+", "-", "*", "/", "%", "<",
          ">", "=", "!", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}", "~"]
OPENERS = {"(", "[", "{"}
CLOSERS = {")", "]", "}"}


@dataclass
class Tok:
    kind: str  # ident number punct nl lit qopen qclose hopen hclose iopen iclose eof
    text: str
    start: int
    end: int

    def is_punct(self, *texts: str) -> bool:
        return self.kind == "punct" and self.text in texts

    def opens(self) -> bool:
        return self.kind in ("qopen", "hopen", "iopen") or (self.kind == "punct" and self.text in OPENERS)

    def closes(self) -> bool:
        return self.kind in ("qclose", "hclose", "iclose") or (self.kind == "punct" and self.text in CLOSERS)


class Source:
    """One file (or one --expr): its text and tokens."""

    def __init__(self, name: str, text: str):
        self.name = name
        self.text = text
        self.toks: list[Tok] = []
        self.i = 0
        self._expr(interp=False)
        self.toks.append(Tok("eof", "", len(text), len(text)))

    def line(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1

    def where(self, offset: int) -> str:
        return f"{self.name}:{self.line(offset)}"

    def fail(self, message: str, offset: int):
        raise RenderError(f"{self.where(offset)}: {message}")

    def _emit(self, kind: str, start: int, end: int):
        self.toks.append(Tok(kind, self.text[start:end], start, end))

    def _expr(self, interp: bool):
        s, n = self.text, len(self.text)
        depth = 0
        start = self.i
        while self.i < n:
            i = self.i
            c = s[i]
            if c in " \t\r":
                self.i += 1
            elif c == "\n":
                self._emit("nl", i, i + 1)
                self.i += 1
            elif c == "#" or s.startswith("//", i):
                end = s.find("\n", i)
                self.i = n if end < 0 else end
            elif s.startswith("/*", i):
                end = s.find("*/", i + 2)
                if end < 0:
                    self.fail("unterminated /* comment", i)
                self.i = end + 2
            elif c == '"':
                self._quoted()
            elif (m := HEREDOC_RE.match(s, i)) is not None:
                self._heredoc(m)
            elif (m := IDENT_RE.match(s, i)) is not None:
                self._emit("ident", i, m.end())
                self.i = m.end()
            elif (m := NUMBER_RE.match(s, i)) is not None:
                self._emit("number", i, m.end())
                self.i = m.end()
            elif interp and c == "}" and depth == 0:
                self._emit("iclose", i, i + 1)
                self.i += 1
                return
            else:
                for p in PUNCTS:
                    if s.startswith(p, i):
                        if p == "{":
                            depth += 1
                        elif p == "}":
                            depth -= 1
                        self._emit("punct", i, i + len(p))
                        self.i += len(p)
                        break
                else:
                    self.fail(f"unexpected character {c!r}", i)
        if interp:
            self.fail("unterminated template interpolation", start)

    def _template(self, end: int, quoted: bool):
        """Template text from self.i up to end (heredoc) or the closing quote (quoted)."""
        s = self.text
        lit = self.i
        while True:
            i = self.i
            if i >= end or (quoted and s[i] == "\n"):
                self.fail("unterminated string", lit)
            c = s[i]
            if quoted and c == "\\":
                self.i += 2
            elif s.startswith("$${", i) or s.startswith("%%{", i):
                self.i += 3
            elif s.startswith("${", i) or s.startswith("%{", i):
                if i > lit:
                    self._emit("lit", lit, i)
                self._emit("iopen", i, i + 2)
                self.i += 2
                self._expr(interp=True)
                if self.i > end:
                    self.fail("template interpolation runs past the end of its heredoc", i)
                lit = self.i
            elif quoted and c == '"':
                if i > lit:
                    self._emit("lit", lit, i)
                self._emit("qclose", i, i + 1)
                self.i += 1
                return
            elif not quoted and i == end:
                return
            else:
                self.i += 1
            if not quoted and self.i >= end:
                if self.i > lit:
                    self._emit("lit", lit, end)
                return

    def _quoted(self):
        self._emit("qopen", self.i, self.i + 1)
        self.i += 1
        self._template(len(self.text), quoted=True)

    def _heredoc(self, m: re.Match):
        s = self.text
        marker = m.group(2)
        self._emit("hopen", m.start(), m.end())
        pos = m.end()
        while True:
            if pos >= len(s):
                self.fail(f"heredoc <<{marker} is not terminated", m.start())
            eol = s.find("\n", pos)
            eol = len(s) if eol < 0 else eol
            if s[pos:eol].strip() == marker:
                break
            pos = eol + 1
        self.i = m.end()
        if pos > self.i:
            self._template(pos, quoted=False)
        close_start = pos + (len(s[pos:]) - len(s[pos:].lstrip(" \t")))
        self._emit("hclose", close_start, close_start + len(marker))
        self.i = close_start + len(marker)

