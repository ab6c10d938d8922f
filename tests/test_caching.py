"""The code fingerprint reads what the code does: docstrings, comments and layout are not code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prefect import flow, task

import tasks.core.caching as caching
from tasks.core.caching import BY_CONTENT, TASK_CODE, code_fingerprint, modules_fingerprint

HASHING = '''"""Content identities."""

import hashlib


def short_key(*parts: str) -> str:
    """A 16-hex-character key."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
'''


@pytest.fixture
def tasks_copy(tmp_path: Path) -> Path:
    """A temporary copy of tasks/ (the real files are never edited)."""
    copy = tmp_path / "tasks"
    shutil.copytree(caching.TASKS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_docstring_comment_and_layout_edits_keep_the_fingerprint(tasks_copy):
    before = modules_fingerprint(tasks_copy)
    assert before == code_fingerprint()  # the copy is the code
    hashing = tasks_copy / "core" / "hashing.py"
    _edit(hashing, '"""A 16-hex-character key naming', '"""A short key (16 hex characters) naming')
    _edit(hashing, "import hashlib\n", "import hashlib  # the standard library's\n\n")
    _edit(hashing, '"|".join(parts)', '"|".join(\n        parts\n    )')
    _edit(hashing, "def frame_sha256(frame: pd.DataFrame) -> str:\n    \"\"\"",
          "def frame_sha256(frame: pd.DataFrame) -> str:\n    # rows in order\n    \"\"\"")
    assert modules_fingerprint(tasks_copy) == before


@pytest.mark.parametrize("old, new", [
    ("[:SHORT]", "[:SHORT - 1]"),  # a logic edit
    ("SHORT = 16", "SHORT = 17"),  # a constant
    ("def short_key(", "def short_key_(")  # a name
])
def test_a_code_edit_changes_the_fingerprint(tasks_copy, old, new):
    before = modules_fingerprint(tasks_copy)
    _edit(tasks_copy / "core" / "hashing.py", old, new)
    assert modules_fingerprint(tasks_copy) != before


def test_a_new_module_or_a_docstring_only_body_is_code(tasks_copy):
    before = modules_fingerprint(tasks_copy)
    (tasks_copy / "extra.py").write_text(HASHING)
    with_extra = modules_fingerprint(tasks_copy)
    assert with_extra != before
    # A function whose body is only its docstring still differs from one that returns a value.
    (tasks_copy / "extra.py").write_text('def f():\n    """Doc."""\n')
    assert modules_fingerprint(tasks_copy) not in (before, with_extra)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_docstring_edit_keeps_the_cache_and_a_logic_edit_does_not(tasks_copy, monkeypatch):
    """A real task cached on BY_CONTENT (as every training step is): Cached, then Completed.
    Its input is this test's own directory, so no earlier session's cache answers."""
    monkeypatch.setattr(caching, "TASKS_DIR", tasks_copy)
    calls = []

    @task(cache_policy=BY_CONTENT, persist_result=True)
    def step(where: str) -> int:
        calls.append(where)
        return len(where)

    @flow
    def run(where: str):
        return step(where, return_state=True)

    def state_now():
        code_fingerprint.cache_clear()  # the fingerprint is read once per process
        return run(str(tasks_copy))

    try:
        first = state_now()
        hashing = tasks_copy / "core" / "hashing.py"
        _edit(hashing, '"""Content identities:', '"""Content identities (docstring edited):')
        _edit(hashing, "SHORT = 16  #", "SHORT = 16  # edited comment;")
        after_docstring = state_now()
        _edit(hashing, "[:SHORT]", "[:SHORT - 1]")
        after_logic = state_now()
    finally:
        code_fingerprint.cache_clear()
    assert first.name == "Completed"
    assert after_docstring.name == "Cached" and after_docstring.result() == len(str(tasks_copy))
    assert after_logic.name == "Completed" and after_logic.result() == len(str(tasks_copy))
    assert calls == [str(tasks_copy)] * 2


TASK_MODULE = '''
from prefect import task


@task(name="double")
def double(x: int) -> int:
    """Twice x."""
    return 2 * x  # the whole of it
'''


def _task_key(tmp_path: Path, name: str, source: str) -> str:
    """TASK_CODE's key of the ``double`` task defined in a module file written from ``source``."""
    import importlib.util
    from types import SimpleNamespace

    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return TASK_CODE.compute_key(SimpleNamespace(task=module.double), {}, {})


def test_a_task_s_own_docstring_and_comments_are_not_its_code(tmp_path):
    key = _task_key(tmp_path, "original", TASK_MODULE)
    assert _task_key(tmp_path, "reworded", TASK_MODULE.replace('"""Twice x."""',
                                                                '"""Two times x, doubled."""')
                     .replace("# the whole of it", "# all")) == key
    assert _task_key(tmp_path, "changed", TASK_MODULE.replace("2 * x", "3 * x")) != key
    assert _task_key(tmp_path, "renamed", TASK_MODULE.replace('name="double"',
                                                               'name="twice"')) != key
