"""Class descriptors from a language model, the way the DFER-CLIP paper made them.

For each class the model is asked "Q: What are useful visual features for the facial
expression of {class}?" with the answer primed as "A: Some useful visual features for
facial expressions of {class} include:". The cues of the answer are combined into one
sentence ("A, B, C, and D."), with the class name kept out of it. Any OpenAI-compatible
chat endpoint works (a local server included).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

from dferbench import DferbenchError

QUESTION = "Q: What are useful visual features for the facial expression of {c}?"
PRIMER = "A: Some useful visual features for facial expressions of {c} include:"


def ask(endpoint: str, model: str, prompt: str, *, api_key: str | None = None, timeout: float = 60.0) -> str:
    url = endpoint.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0})
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        return payload["choices"][0]["message"]["content"]
    except (urllib.error.URLError, OSError) as exc:
        raise DferbenchError(f"could not reach {url}: {exc}. Is the endpoint an OpenAI-compatible API base URL?") from exc
    except (KeyError, IndexError, json.JSONDecodeError) as exc:
        raise DferbenchError(f"{url} did not answer like an OpenAI chat completion ({exc})") from exc


def cues_from_answer(answer: str, class_name: str, max_cues: int = 4) -> list[str]:
    """Visual cues from a free-text answer: bullets, numbered items or comma lists."""
    text = answer.split(":", 1)[1] if answer.lower().startswith("a: some useful") else answer
    parts = re.split(r"\n|;|,(?![^()]*\))", text)
    cues = []
    for part in parts:
        cue = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", part).strip().strip(".").strip()
        cue = re.sub(r"^(?:and|or)\s+", "", cue)
        cue = re.sub(r"\s+", " ", cue)
        if not cue or class_name.lower() in cue.lower() or len(cue.split()) > 8:
            continue
        cue = cue[0].lower() + cue[1:]
        if cue not in cues:
            cues.append(cue)
    return cues[:max_cues]


def sentence(cues: list[str]) -> str:
    if len(cues) == 1:
        return cues[0] + "."
    return ", ".join(cues[:-1]) + ", and " + cues[-1] + "."


def describe(classes: list[str], endpoint: str, model: str, *, api_key: str | None = None) -> dict[str, str]:
    found = {}
    for c in classes:
        answer = ask(endpoint, model, QUESTION.format(c=c) + "\n" + PRIMER.format(c=c), api_key=api_key)
        cues = cues_from_answer(answer, c)
        if not cues:
            raise DferbenchError(f"the model's answer for {c!r} held no usable visual cue: {answer[:200]!r}")
        found[c] = sentence(cues)
    return found


def write_descriptor_file(path: Path, descriptors: dict[str, str], *, endpoint: str, model: str) -> None:
    lines = [
        "# Class descriptors written by `dferbench describe`.",
        f"# Model {model!r} at {endpoint}, {date.today().isoformat()}, asked per class:",
        f"#   {QUESTION}",
        f"#   {PRIMER}",
        "# and the cues of each answer combined into one sentence.",
        "[descriptors]",
    ]
    lines += [f"{json.dumps(c)} = {json.dumps(s)}" for c, s in descriptors.items()]
    Path(path).write_text("\n".join(lines) + "\n")
