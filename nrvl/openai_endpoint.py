"""Where an OpenAI-compatible endpoint is and which key it takes: arguments, environment, ``.env``.

Shared by the judge (``nrvl.judge``) and the API model adapter (``nrvl.models.api``), so
neither imports the other. Nothing here prints or stores the key.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Optional, Union

__all__ = ["DEFAULT_BASE_URL", "EndpointConfigError", "read_dotenv", "normalize_base_url", "redact_url",
           "resolve_endpoint"]

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
