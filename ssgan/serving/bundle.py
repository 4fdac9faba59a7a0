"""The hand-over bundle: what a platform team needs to run the labelled versions.

``python -m ssgan.promote bundle=DIR`` writes, for the model's labelled versions (the ones
``serving/models.config`` names)::

    DIR/
    ├── README.md             the build, push, apply and query commands, filled in
    ├── provenance.json       model, image, labels, and each version's promote record
    ├── image/                the Docker build context
    │   ├── Dockerfile        deploy/Dockerfile: pinned tensorflow/serving, non-root
    │   └── models/
    │       ├── models.config labels and a specific version policy, base path /models/<name>
    │       └── <name>/<N>/   each labelled version, byte for byte as promote verified it
    └── k8s/
        ├── base/             Deployment, Service, HPA, PDB (+ kustomization.yaml)
        └── mounted/          kustomize overlay: models from a volume instead of the image

The manifests are plain YAML rendered from ``deploy/k8s/`` (``${...}`` placeholders).
The bundle is built in a hidden sibling folder and renamed into place, so ``DIR`` is
complete or absent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shlex
import shutil
import string
from pathlib import Path
from typing import Any

import yaml
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from ssgan.files import remove_abandoned, staged_folder
from ssgan.serving.labels import check_labellable, dangling_labels
from ssgan.serving.models_config import MODELS_CONFIG, to_text, with_labels
from ssgan.serving.repository import PromoteError, ServingFolder
from ssgan.tracking.provenance import git_state

TEMPLATES = Path(__file__).resolve().parents[2] / "deploy"
IMAGE_MODEL_DIR = "/models"  # where the Dockerfile puts the models folder
GRPC_PORT, REST_PORT = 8500, 8501


def app_name(model_name: str) -> str:
    """The Kubernetes name of the model's server: a DNS label derived from the model name."""
    base = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = f"ssgan-{base}".rstrip("-")
    name = f"{base}-serving"
    if len(name) > 56:  # 63, less the "-models" of the volume claim's name
        raise PromoteError(
            f"model_name={model_name} is too long for Kubernetes names ({name}): use at "
            "most 48 characters"
        )
    return name


def image_ref(repository: str, model_name: str, labels: dict[str, int]) -> str:
    """``<repository>:<model>-v<stable>[-canary<N>]``: the tag says which versions it bakes in."""
    tag = f"{app_name(model_name)[: -len('-serving')]}-v{labels['stable']}"
    if "canary" in labels and labels["canary"] != labels["stable"]:
        tag += f"-canary{labels['canary']}"
    return f"{repository}:{tag}"


def render(template: Path, values: dict[str, str]) -> str:
    """A template with its ``${NAME}`` placeholders filled in; every one must be known."""
    text = template.read_text()
    rendered = string.Template(text).substitute(values)
    yaml.safe_load_all(rendered)  # still YAML (a value could have broken it)
    return rendered


def write_bundle(
    target: Path, folder: ServingFolder, labels: dict[str, int], repository: str
) -> dict[str, Any]:
    """Write the hand-over bundle of ``folder``'s labelled versions to ``target`` (a new or
    empty folder), atomically; the image is tagged in ``repository``. Staging folders of
    killed bundles of the same name are removed first (listed under ``removed``)."""
    if "stable" not in labels:
        raise PromoteError(
            f"bundle={target}: model {folder.model_name} has no stable version in "
            f"{folder.models_config}: promote a run first"
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PromoteError(
            f"bundle={target} already exists and is not an empty folder: give a new one "
            "(nothing was written)"
        )
    if target.parent.exists() and not target.parent.is_dir():
        raise PromoteError(f"bundle={target}: {target.parent} is a file, not a folder")
    if not target.parent.is_dir():
        raise PromoteError(f"bundle={target}: folder {target.parent} does not exist")
    dangling = sorted(dangling_labels(folder).items())
    if dangling:
        label, version = dangling[0]
        raise PromoteError(
            f"bundle={target}: {folder.models_config} labels {label} -> version {version}, "
            f"which is not in {folder.root}: point the label at a version first "
            f"(label={label} version=<N>)"
        )
    records = {version: check_labellable(folder.root, version) for version in set(labels.values())}
    image = image_ref(repository, folder.model_name, labels)
    # Written in .NAME.tmp-<hex> beside it, then renamed: what a killed bundle left of
    # its own, the next bundle of the same name removes.
    removed = remove_abandoned(target, "tmp")
    try:
        with staged_folder(target, "tmp") as staging:
            _write_contents(folder, labels, records, image, staging)
    except OSError as err:
        raise PromoteError(
            f"bundle={target}: could not write it ({err.strerror or err}); nothing was left"
        ) from err
    return {
        "removed": [str(path) for path in removed],
        "path": str(target),
        "image": image,
        # Quoted: the lines are pasted into a shell, and a folder may have a space in it.
        "build": shlex.join(["docker", "build", "-t", image, str(target / "image")]),
        "apply": shlex.join(["kubectl", "apply", "-k", str(target / "k8s" / "base")]),
    }


def _write_contents(
    serving: ServingFolder,
    labels: dict[str, int],
    records: dict[int, dict[str, Any]],
    image: str,
    folder: Path,
) -> None:
    name = serving.model_name
    models = folder / "image" / "models"
    models.mkdir(parents=True)
    shutil.copy2(TEMPLATES / "Dockerfile", folder / "image" / "Dockerfile")
    for version, record in sorted(records.items()):
        _copy_verified(serving.root / str(version), models / name / str(version), record["sha256"])
    config = with_labels(ModelServerConfig(), name, f"{IMAGE_MODEL_DIR}/{name}", labels)
    (models / MODELS_CONFIG).write_text(to_text(config))
    values = {
        "APP": app_name(name),
        "MODEL_NAME": name,
        "IMAGE": image,
        "VERSION_LABELS": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
    }
    for template in sorted((TEMPLATES / "k8s").rglob("*.yaml")):
        out = folder / "k8s" / template.relative_to(TEMPLATES / "k8s")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(template, values))
    provenance = {
        "model_name": name,
        "image": image,
        "labels": labels,
        "bundled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "serving_dir": str(serving.serving_dir.resolve()),
        "ssgan_source": git_state(),
        "versions": {str(version): record for version, record in sorted(records.items())},
    }
    (folder / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True))
    (folder / "README.md").write_text(_readme(name, labels, image, values["APP"]))


def _copy_verified(source: Path, destination: Path, hashes: dict[str, str]) -> None:
    """Copy a version's files and check each copy against the SHA-256 promote recorded."""
    shutil.copytree(source, destination)
    for relative, digest in hashes.items():
        if hashlib.sha256((destination / relative).read_bytes()).hexdigest() != digest:
            raise PromoteError(f"bundle: the copy of {source / relative} differs from the original")


def _readme(name: str, labels: dict[str, int], image: str, app: str) -> str:
    shown = ", ".join(f"{label} = version {version}" for label, version in sorted(labels.items()))
    return f"""# {name}: TF Serving hand-over

Labels: {shown}. Image: `{image}`. Provenance of every version: `provenance.json`.

```bash
docker build -t {image} image/
docker push {image}                      # or load it into the cluster's registry
kubectl apply -k k8s/base                # Deployment, Service, HPA, PDB
kubectl rollout status deployment/{app}
kubectl port-forward service/{app} 8501:8501 8500:8500
curl -s http://localhost:8501/v1/models/{name}                  # every version AVAILABLE
python -m ssgan.predict photo.jpg --rest-url http://localhost:8501/v1/models/{name}/labels/stable
python -m ssgan.predict photo.jpg --grpc localhost:8500 --model-name {name} --label canary
```

`k8s/mounted` serves the models folder from a volume instead (`kubectl apply -k k8s/mounted`).
"""


def load_manifests(k8s: Path, overlay: str = "base") -> list[dict[str, Any]]:
    """The resources ``kubectl apply -k <k8s>/<overlay>`` would send, for checking them
    here: the base's resources, plus an overlay's own resources and JSON 6902 patches."""
    base = k8s / "base"
    docs = [
        doc
        for item in yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
        for doc in yaml.safe_load_all((base / item).read_text())
    ]
    if overlay == "base":
        return docs
    kustomization = yaml.safe_load((k8s / overlay / "kustomization.yaml").read_text())
    for item in kustomization["resources"]:
        if not item.startswith(".."):
            docs.extend(yaml.safe_load_all((k8s / overlay / item).read_text()))
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        for doc in docs:
            if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]:
                for op in yaml.safe_load((k8s / overlay / patch["path"]).read_text()):
                    _apply_json_patch(doc, op)
    return docs


def _apply_json_patch(doc: dict[str, Any], op: dict[str, Any]) -> None:
    """The ``add`` and ``replace`` operations of RFC 6902, which the overlays use."""
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in op["path"][1:].split("/")
    ]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if op["op"] not in ("add", "replace"):
        raise ValueError(f"unsupported patch operation {op['op']}")
    if isinstance(node, list):
        if last == "-":
            node.append(op["value"])
        elif op["op"] == "add":
            node.insert(int(last), op["value"])
        else:
            node[int(last)] = op["value"]
    else:
        node[last] = op["value"]
