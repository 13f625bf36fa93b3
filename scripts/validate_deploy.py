"""Render the Kustomize base and overlays offline and validate every object they produce.

There is no kubectl in CI: this renders the subset of Kustomize that deploy/kubernetes
uses (resources, namespace, images, strategic-merge patches naming their target by
kind and name) and refuses anything else, so a feature added to an overlay cannot be
silently skipped. Built-in kinds are checked against the Kubernetes schemas
(kubernetes-validate, strict); the Prometheus Operator's kinds against the schemas in
deploy/kubernetes/schemas/. It also checks that the PrometheusRule holds exactly the
alerts of deploy/prometheus/alerts.yml and that compose.yaml names its services.

Usage: python scripts/validate_deploy.py [--print OVERLAY]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
CUSTOM_SCHEMAS = {
    "ServiceMonitor": KUBERNETES / "schemas" / "servicemonitor.json",
    "PrometheusRule": KUBERNETES / "schemas" / "prometheusrule.json",
}
SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
COMPOSE_SERVICES = {"postgres", "migrate", "api-studio", "universal-webhook", "prometheus"}
APPS = ("api-studio", "universal-webhook")

Object = dict[str, Any]


class DeployError(Exception):
    """A manifest that cannot be rendered or is not valid."""


def load_documents(path: Path) -> list[Object]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict):
            raise DeployError(f"{path}: every document must be a mapping")
    return documents


def render(folder: Path) -> list[Object]:
    """Build a kustomization folder into its list of objects."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_KEYS
    if unknown:
        raise DeployError(
            f"{folder}/kustomization.yaml: {sorted(unknown)} not supported by this renderer; "
            "use resources, namespace, images and patches (path) only"
        )
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        target = folder / entry
        objects.extend(render(target) if target.is_dir() else load_documents(target))
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise DeployError(f"{folder}: patches take a `path` only (got {sorted(patch)})")
        for document in load_documents(folder / patch["path"]):
            apply_patch(objects, document, folder / patch["path"])
    for image in kustomization.get("images", []):
        set_image(objects, image)
    if "namespace" in kustomization:
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return objects


def apply_patch(objects: list[Object], patch: Object, source: Path) -> None:
    key = (patch.get("kind"), patch.get("metadata", {}).get("name"))
    targets = [o for o in objects if (o.get("kind"), o.get("metadata", {}).get("name")) == key]
    if len(targets) != 1:
        raise DeployError(f"{source}: the patch for {key} matches {len(targets)} objects, not 1")
    merged = strategic_merge(targets[0], patch)
    targets[0].clear()
    targets[0].update(merged)


def strategic_merge(base: Any, patch: Any) -> Any:
    """Merge mappings key by key and lists of named mappings by name; the rest is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        by_name = {item["name"]: item for item in base}
        result = [strategic_merge(by_name.get(i["name"], {}), i) for i in patch]
        patched = {item["name"] for item in patch}
        return [item for item in base if item["name"] not in patched] + result
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def set_image(objects: list[Object], image: Object) -> None:
    reference = image.get("newName", image["name"])
    if "newTag" in image:
        reference = f"{reference}:{image['newTag']}"
    for container in containers(objects):
        if container.get("image") == image["name"]:
            container["image"] = reference


def containers(objects: list[Object]) -> Iterator[Object]:
    for obj in objects:
        spec = obj.get("spec", {}).get("template", {}).get("spec", {})
        yield from spec.get("initContainers", [])
        yield from spec.get("containers", [])


def validate(objects: list[Object], where: str) -> None:
    """Check every object against its schema and the rules the add-ons rely on."""
    for obj in objects:
        name = f"{where}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        schema_file = CUSTOM_SCHEMAS.get(obj.get("kind", ""))
        try:
            if schema_file is not None:
                jsonschema.validate(obj, json.loads(schema_file.read_text()))
            else:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            raise DeployError(f"{name}: {exc.message}") from None
        if obj.get("kind") == "Deployment":
            check_deployment(obj, name)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for app in APPS:
        for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
            if (kind, app) not in kinds:
                raise DeployError(f"{where}: {kind}/{app} is missing")
        if ("Job", f"{app}-migrate") not in kinds:
            raise DeployError(f"{where}: the migration Job of {app} is missing")


def check_deployment(obj: Object, name: str) -> None:
    pod = obj["spec"]["template"]["spec"]
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        raise DeployError(f"{name}: the pod must set runAsNonRoot")
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        security = container.get("securityContext", {})
        if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation"):
            raise DeployError(f"{name}: {container['name']} needs a read-only root, no escalation")
        if "limits" not in container.get("resources", {}):
            raise DeployError(f"{name}: {container['name']} has no resource limits")
    app = pod["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe not in app:
            raise DeployError(f"{name}: {probe} is missing")
    grace = next(
        float(e["value"]) for e in app["env"] if e["name"].endswith("SHUTDOWN_GRACE_SECONDS")
    )
    if pod.get("terminationGracePeriodSeconds", 30) <= grace + 5:
        raise DeployError(f"{name}: terminationGracePeriodSeconds must outlast the app's grace")


def check_rules_in_sync() -> None:
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    [rule] = load_documents(KUBERNETES / "base" / "prometheusrule.yaml")
    if rule["spec"]["groups"] != alerts["groups"]:
        raise DeployError(
            "deploy/kubernetes/base/prometheusrule.yaml differs from deploy/prometheus/alerts.yml"
        )


def check_compose() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    missing = COMPOSE_SERVICES - set(compose.get("services", {}))
    if missing:
        raise DeployError(f"compose.yaml: services {sorted(missing)} are missing")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", dest="show", metavar="OVERLAY", help="print OVERLAY rendered")
    args = parser.parse_args()
    if args.show:
        yaml.safe_dump_all(render(KUBERNETES / "overlays" / args.show), sys.stdout)
        return 0
    try:
        folders = [KUBERNETES / "base", *sorted((KUBERNETES / "overlays").iterdir())]
        for folder in folders:
            objects = render(folder)
            validate(objects, str(folder.relative_to(ROOT)))
            print(f"{folder.relative_to(ROOT)}: {len(objects)} objects valid")
        check_rules_in_sync()
        check_compose()
    except DeployError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print("alerts in sync; compose.yaml services present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
