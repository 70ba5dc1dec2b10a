"""The structure of a module: its blocks and attributes (each attribute a token range of its
source), and the variables, locals, resources, data sources and provider region it declares."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from .lexer import RenderError, Source
from .stubs import STUB_PREFIX


@dataclass
class Attr:
    src: Source
    name: str
    a: int  # first token of the expression
    b: int  # one past its last token

    @property
    def offset(self) -> int:
        return self.src.toks[self.a].start


@dataclass
class Block:
    src: Source
    kind: str
    labels: list[str]
    start: int  # source offsets of the whole block
    end: int
    attrs: dict[str, Attr] = field(default_factory=dict)
    blocks: list["Block"] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.src.line(self.start)

    def nested(self, kind: str) -> list["Block"]:
        return [b for b in self.blocks if b.kind == kind]


def parse_body(src: Source, k: int, top: bool) -> tuple[list[Attr], list[Block], int]:
    toks = src.toks
    attrs: list[Attr] = []
    blocks: list[Block] = []
    while True:
        while toks[k].kind == "nl":
            k += 1
        t = toks[k]
        if t.kind == "eof":
            if not top:
                src.fail("unterminated block", t.start)
            return attrs, blocks, k
        if t.is_punct("}"):
            if top:
                src.fail("unexpected }", t.start)
            return attrs, blocks, k
        if t.kind != "ident":
            src.fail(f"expected an attribute or a block, found {t.text!r}", t.start)
        if toks[k + 1].is_punct("="):
            a = j = k + 2
            depth = 0
            while True:
                u = toks[j]
                if u.kind == "eof" or (depth == 0 and (u.kind == "nl" or u.is_punct("}"))):
                    break
                if u.opens():
                    depth += 1
                elif u.closes():
                    depth -= 1
                j += 1
            if j == a:
                src.fail(f"attribute {t.text} has no value", t.start)
            attrs.append(Attr(src, t.text, a, j))
            k = j
            continue
        labels = []
        j = k + 1
        while True:
            u = toks[j]
            if u.kind == "ident":
                labels.append(u.text)
                j += 1
            elif u.kind == "qopen":
                if toks[j + 1].kind == "lit" and toks[j + 2].kind == "qclose":
                    labels.append(toks[j + 1].text)
                    j += 3
                elif toks[j + 1].kind == "qclose":
                    labels.append("")
                    j += 2
                else:
                    src.fail("a block label must be a literal string", u.start)
            else:
                break
        if not toks[j].is_punct("{"):
            src.fail(f"expected {{ after block {t.text} {labels}", toks[j].start)
        inner_attrs, inner_blocks, close = parse_body(src, j + 1, top=False)
        block = Block(src, t.text, labels, t.start, toks[close].end)
        for attr in inner_attrs:
            if attr.name in block.attrs:
                src.fail(f"attribute {attr.name} is set twice", attr.offset)
            block.attrs[attr.name] = attr
        block.blocks = inner_blocks
        blocks.append(block)
        k = close + 1


class Module:
    def __init__(self, directory: str):
        self.variables: dict[str, Block] = {}
        self.locals: dict[str, Attr] = {}
        self.resources: dict[tuple[str, str], Block] = {}
        self.data: dict[tuple[str, str], Block] = {}
        self.region: Optional[Attr] = None
        names = sorted(f for f in os.listdir(directory) if f.endswith(".tf"))
        if not names:
            raise RenderError(f"no .tf files in {directory}")
        for name in names:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                src = Source(name, f.read())
            _, blocks, _ = parse_body(src, 0, top=True)
            for b in blocks:
                self._add(b)

    def _add(self, b: Block):
        if b.kind == "variable" and len(b.labels) == 1:
            self.variables[b.labels[0]] = b
        elif b.kind == "locals":
            for name, attr in b.attrs.items():
                if name.startswith(STUB_PREFIX):
                    attr.src.fail(f"local.{name}: the prefix {STUB_PREFIX} is the renderer's", attr.offset)
                self.locals[name] = attr
        elif b.kind == "resource" and len(b.labels) == 2:
            self.resources[(b.labels[0], b.labels[1])] = b
        elif b.kind == "data" and len(b.labels) == 2:
            self.data[(b.labels[0], b.labels[1])] = b
        elif b.kind == "provider" and b.labels == ["aws"] and "alias" not in b.attrs:
            self.region = b.attrs.get("region")

    def resource_types(self) -> set[str]:
        return {t for (t, _) in self.resources}



def resource_mode(block: Block) -> str:
    """How a resource (or data source) is instantiated: for_each, count or single."""
    if "for_each" in block.attrs:
        return "for_each"
    if "count" in block.attrs:
        return "count"
    return "single"
