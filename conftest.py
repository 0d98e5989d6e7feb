"""When pytest runs the notebooks with nbval (``make test-notebooks``), check every exercise both ways.

nbval runs each notebook cell by cell in one kernel, with the committed solutions, so a ``check`` cell
that passes proves the solution passes. Right after it, this hook adds one more item that runs in the
same kernel: the student version of the exercise cell (``tools/student.py`` removes the
``### BEGIN SOLUTION ... ### END SOLUTION`` block), then the check cell, which must raise an
AssertionError whose message names the exercise ("Exercise 2: ..."); then it runs the solved
exercise cell and the check again, so the cells after it see the solved state. Cost: each exercise
and check cell runs three times instead of once (measured: 0.01-0.1 s per exercise), with no
second execution of the notebooks. ``tests/test_exercises.py`` checks the structure without a kernel.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

_spec = importlib.util.spec_from_file_location("course_student_tool", Path(__file__).parent / "tools" / "student.py")
student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student)

EXERCISE_LABEL = re.compile(r"^\s*#\s*(Exercise \d+)\b", re.M)

_BLANK_CHECK = '''\
def _course_blank_check(label, student_code, check_code, solved_code):
    namespace = get_ipython().user_ns
    message = None
    try:
        exec(compile(student_code, f"<{label}, student version>", "exec"), namespace)
        exec(compile(check_code, f"<{label}, check cell>", "exec"), namespace)
    except AssertionError as error:
        message = str(error)
    except Exception as error:
        raise AssertionError(f"{label}: on the blank, the check must fail with an AssertionError "
                             f"that helps the learner; it raised {type(error).__name__}: {error}") from None
    finally:
        exec(compile(solved_code, f"<{label}, solved>", "exec"), namespace)
        exec(compile(check_code, f"<{label}, check cell>", "exec"), namespace)
    assert message is not None, f"{label}: the check passes on the blank exercise cell"
    assert label.lower() in message.lower(), f"{label}: the check's message on the blank must name it; got {message!r}"
    print(f"{label}: fails on the blank ({message[:80]}...) and passes on the solution")


try:
    _course_blank_check(@ARGS@)
finally:
    del _course_blank_check
'''


def blank_check_source(exercise_code: str, check_code: str) -> str | None:
    """Kernel code that runs the student version of an exercise against its check (None: not an exercise)."""
    found = EXERCISE_LABEL.search(exercise_code)
    if not found:
        return None
    args = (found.group(1), student.strip_solution(exercise_code), check_code, exercise_code)
    return _BLANK_CHECK.replace("@ARGS@", ", ".join(repr(a) for a in args))


def pytest_collection_modifyitems(session, config, items):
    try:
        import nbformat
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    result, previous = [], {}
    for item in items:
        result.append(item)
        if not isinstance(item, IPyNbCell):
            continue
        before, previous[item.parent] = previous.get(item.parent), item
        if student.CHECK not in student.tags(item.cell) or before is None:
            continue
        if student.EXERCISE not in student.tags(before.cell):
            continue
        code = blank_check_source(student.source(before.cell), student.source(item.cell))
        if code is None:
            continue
        extra = IPyNbCell.from_parent(item.parent, name=f"{item.name} (exercise on the blank)",
                                      cell_num=item.cell_num, cell=nbformat.v4.new_code_cell(code),
                                      options=item.options)
        result.append(extra)
    items[:] = result
