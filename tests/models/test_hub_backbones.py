"""``hf-hub:`` backbones and the registered pathology foundation models, against a hub on 127.0.0.1.

The Hugging Face hub cannot be reached here, so a small HTTP server plays it: it serves a tiny
timm model saved with timm's own ``save_for_hf`` under the hub's ``/<repo>/resolve/<rev>/<file>``
URLs, and answers "gated" for the gated foundation models. The loading code is the real one
(timm, huggingface_hub); only ``HF_ENDPOINT`` points elsewhere, so each load runs in a
subprocess with that environment.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from timm.models._hub import save_for_hf

from unisal.config import ConfigError
from unisal.models.backbones import HUB_BACKBONES, check_backbone_name

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _handler(repos: dict[str, Path]) -> type[http.server.BaseHTTPRequestHandler]:
    class Hub(http.server.BaseHTTPRequestHandler):
        def _file(self) -> Path | None:
            repo, sep, rest = self.path.partition("/resolve/")
            repo = repo.strip("/")
            if repo.startswith(("MahmoodLab/", "paige-ai/", "bioptimus/")):
                self.send_response(403)
                self.send_header("X-Error-Code", "GatedRepo")
                self.send_header("X-Error-Message", "Access to model is restricted")
                self.end_headers()
                return None
            filename = rest.split("/", 1)[1] if sep else ""
            path = repos[repo] / filename if repo in repos else None
            if path is None or not path.is_file():
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return None
            return path

        def _headers(self, path: Path) -> bytes:
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return body

        def do_HEAD(self) -> None:  # noqa: N802
            path = self._file()
            if path is not None:
                self._headers(path)

        def do_GET(self) -> None:  # noqa: N802
            path = self._file()
            if path is not None:
                self.wfile.write(self._headers(path))

        def log_message(self, *args: object) -> None:
            pass

    return Hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, torch.nn.Module]]]:
    """A local hub with two repos: a tiny ResNet and a tiny ViT that returns tokens."""
    root = tmp_path_factory.mktemp("hub")
    models = {
        "unisal-test/tiny-resnet": timm.create_model("test_resnet", num_classes=0),
        "unisal-test/tiny-vit": timm.create_model("test_vit", num_classes=0, global_pool=""),
    }
    repos = {}
    for repo, model in models.items():
        repos[repo] = root / repo
        save_for_hf(model, str(repos[repo]), safe_serialization=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(repos))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", models
    server.shutdown()


def load_in_subprocess(endpoint: str, tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )


def test_hf_hub_backbone_loads_the_served_weights(hub, tmp_path: Path) -> None:
    endpoint, models = hub
    code = (
        "import torch; from unisal.models.backbones import create_backbone, normalisation\n"
        "m = create_backbone('hf-hub:unisal-test/tiny-resnet', pretrained=True)\n"
        "torch.save(m.state_dict(), 'loaded.pt'); print(normalisation(m))\n"
    )
    result = load_in_subprocess(endpoint, tmp_path, code)
    assert result.returncode == 0, result.stderr
    loaded = torch.load(tmp_path / "loaded.pt", weights_only=True)
    served = models["unisal-test/tiny-resnet"].state_dict()
    assert loaded.keys() == served.keys()
    assert all(torch.equal(loaded[k], served[k]) for k in served)


def test_registered_token_model_is_pooled_to_class_and_mean_token(hub, tmp_path: Path) -> None:
    """As Virchow2 is: the model returns tokens; the backbone gives [class token, mean patch token]."""
    endpoint, models = hub
    code = (
        "import torch\n"
        "from unisal.models import backbones as b\n"
        "b.HUB_BACKBONES['tiny-vit'] = b.HubBackbone('hf-hub:unisal-test/tiny-vit', licence='test', gated=False,\n"
        "    url='local', kwargs=lambda: {'global_pool': ''}, pool=b.ClassAndMeanToken)\n"
        "m = b.create_backbone('tiny-vit', pretrained=True).eval()\n"
        "x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))\n"
        "torch.save({'x': x, 'y': m(x), 'n': m.num_features, 'weights': m.model.state_dict()}, 'out.pt')\n"
    )
    result = load_in_subprocess(endpoint, tmp_path, code)
    assert result.returncode == 0, result.stderr
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    served = models["unisal-test/tiny-vit"].eval()
    assert all(torch.equal(out["weights"][k], v) for k, v in served.state_dict().items())
    with torch.no_grad():
        tokens = served(out["x"])
    prefix = served.num_prefix_tokens
    expected = torch.cat([tokens[:, 0], tokens[:, prefix:].mean(1)], dim=1)
    assert out["n"] == 2 * served.num_features == expected.shape[1]
    torch.testing.assert_close(out["y"], expected)


def test_gated_foundation_models_say_how_to_get_access(hub, tmp_path: Path) -> None:
    endpoint, _ = hub
    code = (  # one process for all of them: each start imports torch and timm again
        "from unisal.models.backbones import create_backbone, WeightsError\n"
        f"for name in {sorted(HUB_BACKBONES)!r}:\n"
        "    try:\n"
        "        create_backbone(name, pretrained=True)\n"
        "    except WeightsError as e:\n"
        "        print('ERROR', name, str(e).replace(chr(10), ' '))\n"
    )
    result = load_in_subprocess(endpoint, tmp_path, code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [["ERROR", name] for name in sorted(HUB_BACKBONES)]
    for line, name in zip(lines, sorted(HUB_BACKBONES), strict=True):
        spec = HUB_BACKBONES[name]
        assert "gated" in line and spec.url in line and "hf auth login" in line


def test_foundation_model_registry_is_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, spec in HUB_BACKBONES.items():
        assert f"`{name}`" in readme and spec.hub_name in readme
        assert spec.licence.split(":")[0] in readme
    assert json.dumps(sorted(HUB_BACKBONES)) == json.dumps(["h-optimus-0", "uni", "virchow2"])


def test_backbone_names_are_checked_without_downloading() -> None:
    check_backbone_name("uni")
    check_backbone_name("hf-hub:org/model-name")
    check_backbone_name("resnet50.a1_in1k")
    with pytest.raises(ConfigError, match="did you mean resnet50"):
        check_backbone_name("resnet5")
    with pytest.raises(ConfigError, match="hf-hub:org/name"):
        check_backbone_name("hf-hub:no-slash")
    with pytest.raises(ConfigError, match="224 px"):
        check_backbone_name("h-optimus-0", image_size=112)
