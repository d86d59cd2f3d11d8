"""``nrvl._text.one_line``: the shared rule of one-line error messages."""
import pytest

from nrvl._text import one_line


@pytest.mark.parametrize("text, limit, expected", [
    ("a\n  b\tc ", None, "a b c"),
    (ValueError("bad\nvalue"), None, "bad value"),
    (KeyError(), None, "KeyError"),           # an exception with no message names its type
    ("", None, ""),                            # plain empty text stays empty
    ("x" * 10, 10, "x" * 10),
    ("x" * 11, 10, "xxxxxxx..."),
    (3.5, None, "3.5"),
])
def test_one_line(text, limit, expected):
    assert one_line(text, limit) == expected
