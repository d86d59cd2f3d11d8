"""Where an OpenAI-compatible endpoint is and which key it takes: arguments, environment, ``.env``.

Shared by the judge (``nrvl.judge``) and the API model adapter (``nrvl.models.api``), so
neither imports the other. Nothing here prints or stores the key.
"""
from __future__ import annotations

import numbers
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from nrvl._text import one_line

__all__ = ["DEFAULT_BASE_URL", "EndpointConfigError", "MalformedReply", "read_dotenv", "normalize_base_url",
           "redact_url", "reply_text", "resolve_endpoint"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class EndpointConfigError(ValueError):
    """The endpoint's URL is unusable; the one-line message never contains the key."""


def read_dotenv(path: Union[str, Path]) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``export`` prefixes, quotes, ``#`` comments.

    Only reads; the process environment is not changed. A missing file gives ``{}``.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            continue
        if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        out[key] = value
    return out


def normalize_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    # VLMEvalKit's OPENAI_API_BASE is the full chat-completions URL; the client wants its prefix.
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")].rstrip("/")
    return url


def redact_url(url: str) -> str:
    """The URL with any embedded credentials (``http://user:secret@host``) hidden."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def resolve_endpoint(
    base_url: Optional[str] = None,
    api_key: Optional[str] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    dotenv_path: Optional[Union[str, Path]] = None,
    what: str = "base URL",
) -> tuple[str, Optional[str]]:
    """Pick the base URL and key; nothing is printed.

    Precedence, first non-empty wins: the arguments; the process environment; the
    ``.env`` file (default ``./.env``). For the URL, ``OPENAI_BASE_URL`` (the openai
    client's variable, e.g. ``http://host:8000/v1``) comes before ``OPENAI_API_BASE``
    (VLMEvalKit's, the full ``.../chat/completions`` URL); either form is accepted
    anywhere and reduced to the prefix the client wants. The default is
    ``https://api.openai.com/v1``.

    Returns:
        ``(base_url, api_key)``; the key is None when none was found.

    Raises:
        EndpointConfigError: the URL is not ``http://`` or ``https://`` (``what`` names it).
    """
    env = os.environ if env is None else env
    dotenv = read_dotenv(Path.cwd() / ".env" if dotenv_path is None else dotenv_path)
    sources = ({"": base_url or ""}, env, dotenv)

    url = ""
    for src in sources:
        for name in ("", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
            if name in src and (src.get(name) or "").strip():
                url = src[name]
                break
        if url:
            break
    url = normalize_base_url(url or DEFAULT_BASE_URL)
    if not re.match(r"^https?://", url):
        raise EndpointConfigError(f"{what} must start with http:// or https://, got {redact_url(url)!r}")

    key = (api_key or "").strip() or (env.get("OPENAI_API_KEY") or "").strip() \
        or (dotenv.get("OPENAI_API_KEY") or "").strip()
    return url, (key or None)


# ----------------------------------------------------------------------------- replies

#: Values that have no named fields (a JSON scalar or array), as opposed to an object or a mapping.
_PLAIN = (str, bytes, bytearray, numbers.Number, list, tuple, type(None))


def kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, (str, bytes, bytearray)):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` of a mapping or ``obj.name`` of an object; None if absent or ``obj`` is a plain value."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    if isinstance(obj, _PLAIN):
        return None
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a property that raises is a missing field here
        return None


class MalformedReply(ValueError):
    """A 2xx chat-completion response that holds no reply text in any shape we read."""


def reply_text(response: Any, redact: Callable[[Any], str] = str) -> str:
    """``choices[0].message.content`` as text (``''`` when it is null).

    A list of content parts gives its text parts joined. Any other shape raises
    :class:`MalformedReply` saying what is wrong (``redact`` cleans a non-JSON body's text first).
    """
    if isinstance(response, (str, bytes, bytearray)):  # the client hands back the text of a non-JSON body
        text = response if isinstance(response, str) else bytes(response).decode("utf-8", "replace")
        raise MalformedReply(f"the body is not JSON: {one_line(redact(text))[:60]!r}")
    if isinstance(response, _PLAIN):
        raise MalformedReply(f"the body is a JSON {kind(response)}, not a chat completion")
    choices = field(response, "choices")
    if not isinstance(choices, (list, tuple)):
        raise MalformedReply("no 'choices'" if choices is None else f"'choices' is a {kind(choices)}, not a list")
    if not choices:
        raise MalformedReply("'choices' is empty")
    message = field(choices[0], "message")
    if message is None or isinstance(message, _PLAIN):
        raise MalformedReply(f"choices[0] has no message object (got a {kind(message if message is not None else choices[0])})")
    content = field(message, "content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        texts = [field(part, "text") for part in content if field(part, "type") in ("text", None)]
        texts = [t for t in texts if isinstance(t, str)]
        if texts:
            return "".join(texts)
        raise MalformedReply("the message content is a list with no text part")
    raise MalformedReply(f"the message content is a {kind(content)}, not text")
