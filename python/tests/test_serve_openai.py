"""`zsc serve` with API keys and two models, spoken to by the official `openai` client."""

import base64
import os
import subprocess

import numpy as np
import pytest

import zsc
from conftest import binary

openai = pytest.importorskip("openai", reason="the openai client (make setup installs it)")


@pytest.fixture(scope="module")
def server(bundles, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("# one key per line\nfile-key\n")
    env = dict(os.environ, ZSC_API_KEYS="env-key-1,env-key-2", NO_COLOR="1")
    proc = subprocess.Popen(
        [str(binary("zsc")), "serve", "--model", f"bi={bundles['bi_encoder']}", "--model", f"colbert={bundles['colbert']}",
         "--port", "0", "--workers", "1", "--api-key-file", str(keys)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        pytest.fail(f"zsc serve did not start: {line}{proc.stderr.read()}")
    yield line.split()[-1]
    proc.terminate()
    proc.wait(timeout=30)


def client(url, key):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("model, arch", [("bi", "bi_encoder"), ("colbert", "colbert")])
def test_openai_embeddings_equal_embed(server, classifiers, model, arch):
    texts = ["wake me up at 7", "will it rain tomorrow?"]
    expected = classifiers[arch].embed(texts)
    # unasked, the client requests base64 and decodes it itself; asked, it returns what came
    for encoding in (None, "float", "base64"):
        extra = {} if encoding is None else {"encoding_format": encoding}
        got = client(server, "env-key-1").embeddings.create(model=model, input=texts, **extra)
        assert got.model == model and [d.index for d in got.data] == [0, 1]
        vectors = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") if encoding == "base64" else d.embedding
                   for d in got.data]
        np.testing.assert_allclose(np.array(vectors), expected, atol=1e-5)
        assert got.usage.prompt_tokens == got.usage.total_tokens > len(texts)
    one = client(server, "file-key").embeddings.create(model=model, input="wake me up at 7")
    np.testing.assert_allclose(one.data[0].embedding, expected[0], atol=1e-5)


def test_models_and_keys(server):
    assert [m.id for m in client(server, "env-key-2").models.list()] == ["bi", "colbert"]
    with pytest.raises(openai.AuthenticationError):
        client(server, "wrong-key").embeddings.create(model="bi", input="x")
    with pytest.raises(openai.NotFoundError):
        client(server, "file-key").embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError):
        client(server, "file-key").embeddings.create(model="bi", input="x", dimensions=8)


def test_blank_keys_do_not_start_an_open_server(bundles):
    env = dict(os.environ, ZSC_API_KEYS=",")
    done = subprocess.run([str(binary("zsc")), "serve", "--model", str(bundles["bi_encoder"]), "--port", "0"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "API key" in done.stderr and "blank" in done.stderr
