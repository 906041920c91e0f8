"""Read the Dockerfile and deploy/ manifests (no Docker or cluster here) and check they agree."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _by_kind() -> dict[str, dict]:
    found = {}
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in _docs(path):
            found.setdefault(doc["kind"], doc)
    return found


def test_every_kustomization_lists_existing_files():
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            assert (kustomization.parent / resource).exists(), (kustomization, resource)
    base = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())["resources"]
    assert "secret.example.yaml" not in base


def test_deployment_service_route_and_ingress_agree():
    k = _by_kind()
    pod = k["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["ports"][0] == {"name": "http", "containerPort": 7860, "protocol": "TCP"}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    labels = k["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert k["Service"]["spec"]["selector"] == labels
    assert k["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert k["Route"]["spec"]["to"]["name"] == k["Service"]["metadata"]["name"]
    assert k["Route"]["spec"]["tls"]["termination"] == "edge"
    backend = k["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == k["Service"]["metadata"]["name"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_secrets_are_referenced_never_inlined():
    k = _by_kind()
    (container,) = k["Deployment"]["spec"]["template"]["spec"]["containers"]
    refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
    assert refs == ["tgtg-secrets"]
    assert all("KEY" not in e["name"] and "SECRET" not in e["name"] for e in container["env"])
    example = _docs(DEPLOY / "base" / "secret.example.yaml")[0]
    assert set(example["stringData"].values()) == {""}
    assert "TGTG_API_KEY" in example["stringData"]
    config = k["ConfigMap"]["data"]
    assert not any("KEY" in name or "SECRET" in name for name in config)


def test_dockerfile_serves_the_console_on_the_probed_port():
    text = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["tgtg", "serve"]' in text and "EXPOSE 7860" in text
    assert "TGTG_HOST=0.0.0.0" in text and "TGTG_DATA_DIR=/data" in text
    assert "GRADIO_ANALYTICS_ENABLED=False" in text and "HF_HUB_DISABLE_TELEMETRY=1" in text
    assert "espeak-ng" in text and "USER 10001" in text
    for package in ("agents", "graphs", "prompts", "store", "tools", "ui", "evals"):
        assert f"COPY {package} ./{package}" in text
