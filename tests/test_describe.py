"""`dferbench describe` against a local fake OpenAI-compatible server (no network)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner

from dferbench_plugins.textsets import describe
from dferbench.run import runner
from dferbench.cli import cli

ANSWERS = {
    "happiness": "A: Some useful visual features for facial expressions of happiness include:\n"
                 "1. Raised cheeks\n2. Lip corners pulled up\n3. Crinkled eyes\n4. Visible teeth\n5. Happiness glow",
    "anger": "lowered eyebrows, glaring eyes, pressed lips, and a tense jaw.",
}


@pytest.fixture
def fake_llm():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            prompt = body["messages"][0]["content"]
            cls = next(c for c in ANSWERS if f"expression of {c}?" in prompt)
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": ANSWERS[cls]}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", seen
    server.shutdown()


def test_describe_writes_a_usable_descriptor_file(fake_llm, tmp_path):
    endpoint, seen = fake_llm
    out = tmp_path / "d.toml"
    res = CliRunner().invoke(cli, ["describe", "--classes", "happiness,anger", "--endpoint", endpoint,
                                   "--model", "fake-llm", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert seen[0][0] == "/v1/chat/completions" and seen[0][1]["model"] == "fake-llm"
    prompt = seen[0][1]["messages"][0]["content"]
    assert prompt == ("Q: What are useful visual features for the facial expression of happiness?\n"
                      "A: Some useful visual features for facial expressions of happiness include:")
    texts = runner.text_lookup(f"file:{out}", ["happiness", "anger"])
    assert texts == [["raised cheeks, lip corners pulled up, crinkled eyes, and visible teeth."],
                     ["lowered eyebrows, glaring eyes, pressed lips, and a tense jaw."]]


def test_unreachable_endpoint_is_a_clear_error():
    res = CliRunner().invoke(cli, ["describe", "--classes", "fear", "--endpoint", "http://127.0.0.1:9/v1",
                                   "--model", "x"])
    assert res.exit_code == 2 and "could not reach http://127.0.0.1:9/v1/chat/completions" in res.output


def test_cues_never_contain_the_class_name():
    assert describe.cues_from_answer("- a fearful look\n- wide eyes\n- raised brows", "fear") == ["wide eyes", "raised brows"]
