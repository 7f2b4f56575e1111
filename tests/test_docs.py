"""Every fenced code block of the docs is either run by a test or marked as not runnable.

The line just before each block's opening fence is an HTML comment (invisible once rendered):

- ``<!-- doc: run -->``: a Python block this module executes in a fresh namespace, with
  ``sockjet.run`` and ``sockjet.serve`` replaced by stubs that only record their arguments.
  Top-level ``await`` is allowed (the block then runs on the test's event loop); other blocks
  run in a worker thread, so that blocking calls (``sockjet.Client``, ``asyncio.run``) work.
  A block that creates a client (``Client(``) gets a server run by this test
  (:func:`doc_server`), and its ``localhost:3000``, ``127.0.0.1:3000`` and
  ``api.example.com`` URLs are rewritten to it.
- ``<!-- doc: example examples/NAME.py -->``: the block's non-blank lines are, in order and
  contiguous, non-blank lines of that example file, which tests/test_examples.py exercises.
- ``<!-- doc: not runnable (REASON) -->``: shell commands, browser JavaScript, configuration
  of other programs, fragments, blocking calls...
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from conftest import serve

import sockjet
from sockjet.bindings import process

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
EXAMPLE_TESTS = Path(__file__).with_name("test_examples.py")

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
MARKER = re.compile(r"^<!-- doc: (?:(?P<run>run)|example (?P<example>\S+)"
                    r"|not runnable \((?P<reason>.*\S.*)\)) -->$")
#: the URLs a block with a client is pointed away from, to the server of this test
SERVER_URL = re.compile(r"https?://(?:localhost:3000|127\.0\.0\.1:3000|api\.example\.com)")
TIMEOUT = 30
UVICORN_CONFIG = inspect.signature(uvicorn.Config)


def relative(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str  # what follows the opening fence: the language
    marker: str  # the line before the opening fence, stripped
    code: str  # the content, without the fence's indentation

    @property
    def where(self) -> str:
        return f"{relative(self.path)}:{self.line}"

    @property
    def kind(self) -> str | None:
        match = MARKER.match(self.marker)
        if match is None:
            return None
        return next(k for k in ("run", "example", "reason") if match[k] is not None)


def parse(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (CommonMark fences, indented ones included)."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        start, body = i, []
        i += 1
        while True:
            if i == len(lines):
                raise AssertionError(f"{relative(path)}:{start + 1}: unclosed code block")
            stripped = lines[i].strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                break
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            i += 1
        marker = lines[start - 1].strip() if start > 0 else ""
        blocks.append(Block(path, start + 1, opening["info"].strip(), marker,
                            "\n".join(body) + "\n"))
        i += 1
    return blocks


BLOCKS = [block for path in DOCS for block in parse(path)]
RUN = [block for block in BLOCKS if block.kind == "run"]
EXAMPLE = [block for block in BLOCKS if block.kind == "example"]


def non_blank(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def contained(needle: list[str], haystack: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def marker_problem(block: Block) -> str | None:
    """Why the block's marker is not valid, or ``None``."""
    match = MARKER.match(block.marker)
    if match is None:
        return (f"no valid marker on the line before the block (found {block.marker!r}); "
                "expected <!-- doc: run -->, <!-- doc: example examples/NAME.py --> or "
                "<!-- doc: not runnable (REASON) -->")
    if match["run"] and block.info.split()[:1] != ["python"]:
        return f"a run marker on a {block.info or 'plain'!r} block: only python blocks run"
    if match["example"]:
        name = match["example"]
        example = ROOT / name
        if not name.startswith("examples/") or not name.endswith(".py") or not example.is_file():
            return f"{name!r} is not a file examples/NAME.py"
        if not contained(non_blank(block.code), non_blank(example.read_text(encoding="utf-8"))):
            return f"the block's code is not in {name} (compare their non-blank lines)"
        if f'"{name.removeprefix("examples/")}"' not in EXAMPLE_TESTS.read_text(encoding="utf-8"):
            return f"{name} is not exercised by tests/test_examples.py"
    return None


def test_the_docs_have_code_blocks() -> None:
    assert len(BLOCKS) >= 30 and len(RUN) >= 10 and EXAMPLE
    assert {ROOT / "README.md", ROOT / "bench" / "README.md"} <= {block.path for block in BLOCKS}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_block_is_marked(block: Block) -> None:
    problem = marker_problem(block)
    assert problem is None, f"{block.where}: {problem}"


def test_a_bad_marker_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```sh\nls\n```\n\n<!-- doc: run -->\n```js\nx\n```\n\n"
                    "<!-- doc: example examples/engine_echo.py -->\n```python\nnot there\n```\n"
                    "\n<!-- doc: not runnable () -->\n```\n$ x\n```\n")
    blocks = parse(page)
    problems = [marker_problem(block) for block in blocks]
    assert [block.line for block in blocks] == [3, 8, 13, 18]
    assert all(problems)
    assert "no valid marker" in problems[0] and "only python" in problems[1]
    assert "not in examples/engine_echo.py" in problems[2] and "no valid marker" in problems[3]
    assert blocks[0].where.endswith("page.md:3")
    (tmp_path / "open.md").write_text("<!-- doc: run -->\n```python\nx = 1\n")
    with pytest.raises(AssertionError, match=r"open\.md:2: unclosed"):
        parse(tmp_path / "open.md")


# -- run blocks ---------------------------------------------------------------------------------


def doc_server() -> sockjet.Server:
    """What the client examples of the docs talk to."""
    io = sockjet.Server(cookie=True)

    @io.on("connection")
    def connection(socket: sockjet.Socket) -> None:
        socket.emit("news", "welcome")

        @socket.on("chat")
        def chat(text: str) -> str:
            if socket.handshake.headers.get("my-custom-header"):
                # docs/client.md's CORS-page client waits until it is disconnected for good
                asyncio.get_running_loop().call_soon(socket.disconnect, True)
            return "stored"

        socket.on("sum", lambda a, b: a + b)
        socket.on("upload", lambda data: len(data))
        socket.on("bye", lambda: None)

    io.of("/admin").on("connection", lambda socket: socket.emit("news", "admins only"))
    return io


class Recorder:
    """Stands in for ``sockjet.run`` / ``sockjet.serve``: records the call, serves nothing."""

    def __init__(self, real: Any) -> None:
        self.signature = inspect.signature(real)
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def record(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        bound = self.signature.bind(*args, **kwargs)  # a call the real function accepts
        process.resolve(bound.arguments["target"])  # something it can serve
        UVICORN_CONFIG.bind(None, **bound.arguments.get("uvicorn_options", {}))
        self.calls.append((args, kwargs))


async def execute(block: Block, code: str) -> None:
    compiled = compile(code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                       dont_inherit=True)
    namespace: dict[str, Any] = {"__name__": "__doc_block__"}
    if compiled.co_flags & inspect.CO_COROUTINE:
        await asyncio.wait_for(eval(compiled, namespace), TIMEOUT)
    else:
        await asyncio.wait_for(asyncio.to_thread(exec, compiled, namespace), TIMEOUT)


@pytest.mark.parametrize("block", RUN, ids=[block.where for block in RUN])
async def test_run_block(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    run, serve_ = Recorder(sockjet.run), Recorder(sockjet.serve)

    def fake_run(*args: Any, **kwargs: Any) -> None:
        run.record(args, kwargs)

    async def fake_serve(*args: Any, **kwargs: Any) -> None:
        serve_.record(args, kwargs)

    monkeypatch.setattr(sockjet, "run", fake_run)
    monkeypatch.setattr(sockjet, "serve", fake_serve)
    async with contextlib.AsyncExitStack() as stack:
        code = block.code
        if "Client(" in code:
            url = await stack.enter_async_context(serve(doc_server()))
            code = SERVER_URL.sub(url, code)
        try:
            await execute(block, code)
        except Exception as exc:
            raise AssertionError(f"{block.where}: the block raised {exc!r}") from exc
