"""Checks the install artefacts: Helm chart, plain manifests, RBAC rules and examples.

Run it through `.ci/check-deploy`, which installs the pinned Python packages in a virtualenv first.
Everything here works offline: Helm is embedded in helm-python-sdk, and kubernetes-validate ships
the Kubernetes JSON schemas inside its wheel.

    .ci/check-deploy                     # run every check
    .ci/check-deploy --write-manifests   # regenerate deploy/manifests/ from the chart
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy/helm/jenkins-operator"
RULES_FILE = CHART / "files/rbac-rules.yaml"
REPO_CRDS = ROOT / "crds"
MANIFESTS = ROOT / "deploy/manifests"
EXAMPLES = ROOT / "examples"

# The Kubernetes version whose schemas the rendered objects are validated against:
# kubernetes-validate 1.37.0 ships 1.25 to 1.37.
KUBE_VERSION = "1.33"

# The release that deploy/manifests/ is generated from (and that the default render uses).
RELEASE = "jenkins-operator"
NAMESPACE = "jenkins-operator"

FIX_MANIFESTS = ".ci/check-deploy --write-manifests"

# Values that differ from every default worth changing; rendered as release `ci` in `platform`.
CUSTOM_VALUES: dict[str, Any] = yaml.safe_load((CHART / "ci/custom-values.yaml").read_text())
CUSTOM_RELEASE = ("ci", "platform")

# Values the chart must refuse, with a fragment of the message it must give.
REJECTED_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"logFormat": "xml"}, "logFormat"),
    ({"replicaCount": 0}, "replicaCount"),
    ({"unknownKey": True}, "unknownKey"),
    ({"leaderElection": {"enabled": False}}, "leaderElection.enabled"),  # 2 replicas, no leader
]

# Helm's install order for the kinds the chart renders; the generated manifests follow it.
INSTALL_ORDER = [
    "Namespace",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
]

# Kinds that are custom resources of other projects: kubernetes-validate has no schema for them.
FOREIGN_CUSTOM_KINDS = {
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    ): "a Prometheus Operator custom resource (no schema ships with Kubernetes)"
}


class CheckFailed(Exception):
    """A check found a problem; the message says what and how to fix it."""


@dataclass
class Doc:
    """One YAML document and where it came from, for error messages."""

    source: str
    obj: dict[str, Any]

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata") or {}
        ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
        return f"{self.obj.get('kind')} {ns}{meta.get('name')}"


# --- reading ----------------------------------------------------------------------------------


def yaml_docs(text: str, source: str) -> list[Doc]:
    """Parses a multi-document YAML text into Kubernetes objects; empty documents are dropped."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise CheckFailed(f"{source}: not valid YAML: {error}") from error
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not all(
            isinstance(d.get(key), str) for key in ("apiVersion", "kind")
        ):
            raise CheckFailed(
                f"{source}: document {i + 1} is not a Kubernetes object (apiVersion and kind)"
            )
    return [Doc(source, d) for d in docs]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def render(
    values: dict[str, Any] | None = None, release: tuple[str, str] = (RELEASE, NAMESPACE)
) -> dict[str, str]:
    """Renders the chart as `helm install` would, offline. Returns template path -> manifest."""
    name, namespace = release
    try:
        with helm.Chart.load(CHART) as chart:
            return chart.render(values, name=name, namespace=namespace, is_install=True)
    except helm.HelmError as error:
        raise CheckFailed(f"the chart does not render ({name} in {namespace}): {error}") from error


def rendered_docs(rendered: dict[str, str]) -> list[Doc]:
    docs = []
    for path, text in sorted(rendered.items()):
        if not path.endswith("NOTES.txt"):
            docs += yaml_docs(text, path)
    return docs


def find(docs: list[Doc], kind: str) -> list[dict[str, Any]]:
    return [d.obj for d in docs if d.obj.get("kind") == kind]


def one(docs: list[Doc], kind: str) -> dict[str, Any]:
    found = find(docs, kind)
    if len(found) != 1:
        raise CheckFailed(f"expected one {kind}, the chart rendered {len(found)}")
    return found[0]


def rbac_rules() -> dict[str, Any]:
    rules = yaml.safe_load(RULES_FILE.read_text())
    if not isinstance(rules, dict) or set(rules) != {"clusterRules", "leaseRules"}:
        raise CheckFailed(
            f"{rel(RULES_FILE)}: expected exactly the keys clusterRules and leaseRules"
        )
    return rules


def crd_docs() -> list[Doc]:
    docs = []
    for path in sorted(REPO_CRDS.glob("*.yaml")):
        docs += yaml_docs(path.read_text(), rel(path))
    return docs


# --- generating deploy/manifests/ -----------------------------------------------------------------

MANIFEST_HEADER = """\
# GENERATED from the Helm chart deploy/helm/jenkins-operator with its default values
# (release {release}, namespace {namespace}). Do not edit: change the chart and run
#   {fix}
# Install, from the repository root (the CRDs first, from crds/):
#   kubectl apply --server-side -f crds/ -f deploy/manifests/
"""


def generate_manifests() -> dict[str, str]:
    """The files of deploy/manifests/, generated from the chart's default render."""
    header = MANIFEST_HEADER.format(release=RELEASE, namespace=NAMESPACE, fix=FIX_MANIFESTS)

    # The operator's namespace, which `helm install --create-namespace` would make; it enforces the
    # restricted Pod Security Standard, which the operator's pod meets.
    namespace_doc = (
        "# The operator's namespace; its pods meet the restricted Pod Security Standard.\n"
        "apiVersion: v1\nkind: Namespace\nmetadata:\n"
        f"  name: {NAMESPACE}\n  labels:\n"
        "    pod-security.kubernetes.io/enforce: restricted\n"
    )
    pieces: list[tuple[int, str, str]] = [(0, "", namespace_doc)]
    for path, text in render().items():
        if path.endswith("NOTES.txt"):
            continue
        for body in re.split(r"(?m)^---\s*$", text):
            body = body.strip("\n")
            if not yaml.safe_load(body):
                continue
            kind = yaml.safe_load(body)["kind"]
            order = INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
            source = path.removeprefix("jenkins-operator/")
            pieces.append((order, source, f"# Source: {source}\n{body}\n"))
    pieces.sort(key=lambda p: (p[0], p[1]))
    operator = header + "".join(f"---\n{body}" for _, _, body in pieces)

    # The CRDs are not copied here a third time: plain-manifest users apply crds/ first.
    return {"jenkins-operator.yaml": operator}


def write_manifests() -> None:
    """Writes deploy/manifests/; files there that the chart does not generate are removed."""
    MANIFESTS.mkdir(parents=True, exist_ok=True)
    generated = generate_manifests()
    for path in sorted(MANIFESTS.iterdir()):
        if path.name not in generated and path.is_file():
            path.unlink()
            print(f"removed {rel(path)}")
    for name, text in generated.items():
        (MANIFESTS / name).write_text(text)
        print(f"wrote {rel(MANIFESTS / name)}")


# --- checks ---------------------------------------------------------------------------------------
# Each check returns a one-line summary or raises CheckFailed with what is wrong.


def check_chart_crds() -> str:
    """The chart's crds/ is a byte-for-byte copy of the repository's crds/."""
    repo = {p.name: p.read_bytes() for p in REPO_CRDS.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    problems = [f"{rel(CHART)}/crds/{n} is missing" for n in sorted(repo.keys() - chart.keys())]
    problems += [
        f"{rel(CHART)}/crds/{n} is not in crds/" for n in sorted(chart.keys() - repo.keys())
    ]
    problems += [
        f"{rel(CHART)}/crds/{n} differs from crds/{n}"
        for n in sorted(repo.keys() & chart.keys())
        if repo[n] != chart[n]
    ]
    if problems:
        raise CheckFailed(
            "; ".join(problems) + "\nfix: UPDATE_CRDS=1 cargo test --test crds "
            f"--test deploy (or: cp crds/*.yaml {rel(CHART)}/crds/)"
        )
    return f"{len(repo)} file(s) identical to crds/"


def check_lint() -> str:
    """`helm lint --strict` with the default and the custom values."""
    for label, values in (("default", None), ("custom", CUSTOM_VALUES)):
        report = helm.lint(
            CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}.0", namespace=NAMESPACE
        )
        # Severity: 1 info, 2 warning, 3 error. "icon is recommended" is the only info today.
        bad = [m for m in report["messages"] if m["severity"] >= 2] + [
            {"path": "", "error": e} for e in report["errors"]
        ]
        if bad:
            raise CheckFailed(
                f"helm lint ({label} values):\n"
                + "\n".join(f"  {m['path']}: {m['error'].strip()}" for m in bad)
            )
    return (
        f"helm lint --strict clean with default and custom values (Helm {helm.helm_sdk_version()})"
    )


def check_rejected_values() -> str:
    """values.schema.json and the template guards refuse bad values."""
    for values, fragment in REJECTED_VALUES:
        try:
            render(values)
        except CheckFailed as error:
            if fragment not in str(error):
                raise CheckFailed(
                    f"values {values} were refused without naming {fragment!r}: {error}"
                )
            continue
        raise CheckFailed(f"values {values} rendered, but the chart must refuse them")
    return f"{len(REJECTED_VALUES)} invalid value sets refused with a clear message"


def container(docs: list[Doc]) -> dict[str, Any]:
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def expect(what: str, actual: Any, wanted: Any) -> None:
    if actual != wanted:
        raise CheckFailed(f"{what}: expected {wanted!r}, rendered {actual!r}")


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The restricted Pod Security Standard's rules that a pod spec breaks (the ones that apply
    to a pod without volumes or host access)."""
    problems = []
    pod_sc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as user 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set((sc.get("capabilities") or {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp!r}")
    return problems


def check_render_default() -> str:
    """The default render: two replicas with leader election, probes, restricted pod, PDB."""
    docs = rendered_docs(render())
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(docs)
    expect("replicas", deployment["spec"]["replicas"], 2)
    expect(
        "args",
        c["args"],
        [
            "run",
            "--log-format",
            "text",
            "--http-addr",
            "0.0.0.0:8080",
            "--lease-name",
            "jenkins-operator",
        ],
    )
    expect("env", [e["name"] for e in c["env"]], ["POD_NAME", "POD_NAMESPACE", "RUST_LOG"])
    expect("RUST_LOG", c["env"][2]["value"], "info")
    expect("image", c["image"], "jenkins-operator:0.1.0")
    expect("ports", c["ports"], [{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    expect("livenessProbe path", c["livenessProbe"]["httpGet"], {"path": "/livez", "port": "http"})
    expect(
        "readinessProbe path", c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"}
    )
    expect(
        "resources",
        c["resources"],
        {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    )
    expect("readOnlyRootFilesystem", c["securityContext"]["readOnlyRootFilesystem"], True)
    expect("runAsUser", c["securityContext"]["runAsUser"], 65532)
    expect("terminationGracePeriodSeconds", pod["terminationGracePeriodSeconds"], 30)
    if problems := restricted_violations(pod):
        raise CheckFailed(
            "the operator pod breaks the restricted Pod Security Standard: " + "; ".join(problems)
        )
    expect(
        "PodDisruptionBudget minAvailable",
        one(docs, "PodDisruptionBudget")["spec"]["minAvailable"],
        1,
    )
    expect("ServiceMonitors", find(docs, "ServiceMonitor"), [])
    expect("lease Role", one(docs, "Role")["metadata"]["name"], "jenkins-operator-leader-election")
    expect(
        "ClusterRole name",
        one(docs, "ClusterRole")["metadata"]["name"],
        "jenkins-operator:jenkins-operator",
    )
    expect("Service port", one(docs, "Service")["spec"]["ports"][0]["targetPort"], "http")
    labels = deployment["metadata"]["labels"]
    for key in (
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
    ):
        if key not in labels:
            raise CheckFailed(f"the Deployment lacks the standard label {key}")
    kinds = sorted(d.obj["kind"] for d in docs)
    return f"{len(docs)} objects: {', '.join(kinds)}"


def check_render_custom() -> str:
    """A render with every worthwhile value changed reflects each of them."""
    docs = rendered_docs(render(CUSTOM_VALUES, CUSTOM_RELEASE))
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(docs)
    expect("name", deployment["metadata"]["name"], "ci-jenkins-operator")
    expect("replicas", deployment["spec"]["replicas"], 1)
    expect(
        "args",
        c["args"],
        [
            "run",
            "--log-format",
            "json",
            "--http-addr",
            "0.0.0.0:9090",
            "--leader-election=false",
            "--resync-seconds",
            "600",
        ],
    )
    expect("RUST_LOG", c["env"][2]["value"], CUSTOM_VALUES["logLevel"])
    expect("image", c["image"], "registry.example/jenkins-operator:0.1.0-rc.1")
    expect("imagePullPolicy", c["imagePullPolicy"], "Always")
    expect("containerPort", c["ports"][0]["containerPort"], 9090)
    expect("resources", c["resources"], CUSTOM_VALUES["resources"])
    for key in (
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
        "terminationGracePeriodSeconds",
        "imagePullSecrets",
    ):
        expect(key, pod.get(key), CUSTOM_VALUES[key])
    expect("topologySpreadConstraints", pod.get("topologySpreadConstraints"), None)
    expect(
        "pod annotations",
        deployment["spec"]["template"]["metadata"].get("annotations"),
        CUSTOM_VALUES["podAnnotations"],
    )
    expect(
        "pod label team",
        deployment["spec"]["template"]["metadata"]["labels"].get("team"),
        "platform",
    )
    expect("PodDisruptionBudgets (1 replica)", find(docs, "PodDisruptionBudget"), [])
    expect("lease Roles (no leader election)", find(docs, "Role"), [])
    monitor = one(docs, "ServiceMonitor")
    expect(
        "ServiceMonitor endpoint",
        monitor["spec"]["endpoints"],
        [{"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}],
    )
    expect("ServiceMonitor label", monitor["metadata"]["labels"].get("release"), "prometheus")
    expect("Service port", one(docs, "Service")["spec"]["ports"][0]["port"], 9090)
    if problems := restricted_violations(pod):
        raise CheckFailed(
            "the operator pod breaks the restricted Pod Security Standard: " + "; ".join(problems)
        )
    return f"{len(docs)} objects; replicas, leader election, logs, metrics, scheduling applied"


def check_two_releases() -> str:
    """Releases in different namespaces, even under one release name, can be installed side by
    side: their cluster-scoped objects have different names, and each binding binds its own
    release's ClusterRole to its own ServiceAccount."""
    releases = [(RELEASE, NAMESPACE), (RELEASE, "jenkins-operator-staging"), CUSTOM_RELEASE]
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    for release in releases:
        values = CUSTOM_VALUES if release == CUSTOM_RELEASE else None
        docs = rendered_docs(render(values, release))
        cluster_scoped = [d.obj for d in docs if not d.obj["metadata"].get("namespace")]
        if not cluster_scoped:
            raise CheckFailed(f"release {release}: no cluster-scoped object rendered")
        for obj in cluster_scoped:
            key = (obj["kind"], obj["metadata"]["name"])
            if key in owners:
                raise CheckFailed(
                    f"{key[0]} {key[1]} is rendered by release {owners[key]} and by {release}: "
                    "cluster-scoped names must include the release namespace"
                )
            owners[key] = release
        binding = one(docs, "ClusterRoleBinding")
        expect(
            f"release {release}: ClusterRoleBinding roleRef",
            binding["roleRef"]["name"],
            one(docs, "ClusterRole")["metadata"]["name"],
        )
        expect(
            f"release {release}: ClusterRoleBinding subject namespace",
            binding["subjects"][0]["namespace"],
            release[1],
        )
    return (
        f"{len(releases)} releases in different namespaces: {len(owners)} distinct "
        "cluster-scoped names"
    )


def kube_validate(doc: Doc) -> str | None:
    """Validates one object against the Kubernetes schema; returns a problem or None."""
    try:
        kubernetes_validate.validate(doc.obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.path) or "(top level)"
        return f"{doc.source}: {doc.name}: {where}: {error.message}"
    except kubernetes_validate.SchemaNotFoundError as error:
        return f"{doc.source}: {doc.name}: {error.message}"
    return None


def check_kubernetes_schemas() -> str:
    """Every rendered object and every file in deploy/manifests/ is valid Kubernetes (strict)."""
    docs = rendered_docs(render()) + rendered_docs(render(CUSTOM_VALUES, CUSTOM_RELEASE))
    for path in sorted((CHART / "crds").glob("*.yaml")):
        docs += yaml_docs(path.read_text(), rel(path))
    manifest_files = sorted(MANIFESTS.glob("*.yaml"))
    if not manifest_files:
        raise CheckFailed(f"{rel(MANIFESTS)} holds no YAML file; run {FIX_MANIFESTS}")
    for path in manifest_files:
        docs += yaml_docs(path.read_text(), rel(path))

    problems, validated, skipped = [], 0, set()
    for doc in docs:
        reason = FOREIGN_CUSTOM_KINDS.get((doc.obj.get("apiVersion"), doc.obj.get("kind")))
        if reason:
            skipped.add(f"{doc.obj['kind']}: {reason}")
            continue
        if problem := kube_validate(doc):
            problems.append(problem)
        validated += 1
    if problems:
        raise CheckFailed("\n".join(problems))
    notes = "".join(f"; skipped {note}" for note in sorted(skipped))
    return (
        f"{validated} objects valid against Kubernetes {KUBE_VERSION} (strict, "
        f"kubernetes-validate {kubernetes_validate.__version__}){notes}"
    )


def check_rbac_rules() -> str:
    """The rendered roles carry exactly the rules of files/rbac-rules.yaml, which match the code."""
    rules = rbac_rules()
    docs = rendered_docs(render())
    expect(
        f"ClusterRole rules vs {rel(RULES_FILE)} clusterRules",
        one(docs, "ClusterRole")["rules"],
        rules["clusterRules"],
    )
    expect(
        f"lease Role rules vs {rel(RULES_FILE)} leaseRules",
        one(docs, "Role")["rules"],
        rules["leaseRules"],
    )

    # The CRD read at startup is limited by name: the names must be exactly our CRDs.
    crd_names = sorted(
        d.obj["metadata"]["name"]
        for d in crd_docs()
        if d.obj.get("kind") == "CustomResourceDefinition"
    )
    crd_rules = [r for r in rules["clusterRules"] if "customresourcedefinitions" in r["resources"]]
    named = sorted(n for r in crd_rules for n in r.get("resourceNames", []))
    expect("customresourcedefinitions resourceNames vs the CRDs in crds/", named, crd_names)

    # The Deployment's --lease-name is the Lease the lease Role names.
    args = container(docs)["args"]
    lease = args[args.index("--lease-name") + 1]
    lease_names = {n for r in rules["leaseRules"] for n in r.get("resourceNames", [])}
    expect("--lease-name in the lease Role's resourceNames", lease in lease_names, True)

    # Verbs that hand out power must be limited to named objects.
    for r in rules["clusterRules"] + rules["leaseRules"]:
        if {"bind", "escalate", "impersonate"} & set(r["verbs"]) and not r.get("resourceNames"):
            raise CheckFailed(
                f"{rel(RULES_FILE)}: rule {r} grants {r['verbs']} without resourceNames"
            )
    count = len(rules["clusterRules"]) + len(rules["leaseRules"])
    return f"ClusterRole and lease Role render the {count} rules of {rel(RULES_FILE)}"


def check_no_wildcards() -> str:
    """No RBAC rule anywhere (rules file, renders, manifests) holds a `*`."""
    rules = rbac_rules()
    sources = [
        Doc(
            rel(RULES_FILE),
            {
                "kind": "ClusterRole",
                "metadata": {"name": "clusterRules"},
                "rules": rules["clusterRules"],
            },
        ),
        Doc(
            rel(RULES_FILE),
            {"kind": "Role", "metadata": {"name": "leaseRules"}, "rules": rules["leaseRules"]},
        ),
    ]
    sources += rendered_docs(render()) + rendered_docs(render(CUSTOM_VALUES, CUSTOM_RELEASE))
    for path in sorted(MANIFESTS.glob("*.yaml")):
        sources += yaml_docs(path.read_text(), rel(path))
    problems, checked = [], 0
    for doc in sources:
        if doc.obj.get("kind") not in ("ClusterRole", "Role"):
            continue
        for rule in doc.obj.get("rules") or []:
            checked += 1
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if any("*" in str(v) for v in rule.get(field) or []):
                    problems.append(
                        f"{doc.source}: {doc.name}: {field} {rule[field]} has a wildcard"
                    )
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{checked} rules checked, no wildcard"


def check_manifests_up_to_date() -> str:
    """deploy/manifests/ is exactly what the chart generates."""
    problems = []
    generated = generate_manifests()
    for name, wanted in generated.items():
        path = MANIFESTS / name
        actual = path.read_text() if path.exists() else ""
        if actual != wanted:
            diff = list(
                difflib.unified_diff(
                    actual.splitlines(),
                    wanted.splitlines(),
                    f"{rel(path)} (checked in)",
                    f"{rel(path)} (generated)",
                    lineterm="",
                )
            )
            shown = "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")
            problems.append(f"{rel(path)} is stale:\n{shown}")
    extra = sorted(p.name for p in MANIFESTS.glob("*") if p.name not in generated)
    problems += [f"{rel(MANIFESTS)}/{n} is not generated from the chart" for n in extra]
    if problems:
        raise CheckFailed("\n".join(problems) + f"\nfix: {FIX_MANIFESTS}")
    return f"{rel(MANIFESTS)}/ matches the chart's default render"


# --- examples against our CRDs -------------------------------------------------------------------


def structural_to_jsonschema(node: Any) -> Any:
    """Turns an OpenAPI v3 structural schema (as in a CRD) into JSON Schema that `jsonschema`
    enforces the way the API server would with strict field validation:

    - `nullable: true` lets the value be null;
    - `x-kubernetes-int-or-string: true` takes an integer or a string;
    - an object with `properties` rejects unknown fields unless it says
      `x-kubernetes-preserve-unknown-fields` (the API server would prune them or, with
      kubectl's default strict validation, refuse them);
    - OpenAPI's boolean `exclusiveMinimum`/`exclusiveMaximum` become the numeric form;
    - `x-kubernetes-list-type` is kept and enforced by a keyword added to the validator.
    CEL rules (`x-kubernetes-validations`) are not evaluated.
    """
    if isinstance(node, list):
        return [structural_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    # Recurse into the subschemas; `properties` maps field names (which may be `type` or
    # `nullable`) to subschemas, so it is walked by value.
    subschemas = ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not")
    out = {k: structural_to_jsonschema(v) if k in subschemas else v for k, v in node.items()}
    if "properties" in node:
        out["properties"] = {k: structural_to_jsonschema(v) for k, v in node["properties"].items()}

    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool):
            if out.pop(bound) and limit in out:
                out[bound] = out.pop(limit)
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"] = out["anyOf"] + [{"type": "null"}]
        if "enum" in out:
            out["enum"] = out["enum"] + [None]
    return out


def list_type(validator: Any, kind: str, instance: Any, schema: dict[str, Any]) -> Any:
    """`x-kubernetes-list-type`: `set` items are unique, `map` items are unique by their keys."""
    if not isinstance(instance, list):
        return
    if kind == "set":
        seen = []
        for item in instance:
            if item in seen:
                yield jsonschema.ValidationError(f"{item!r} appears twice in a list-type set")
            seen.append(item)
    elif kind == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen_keys = set()
        for item in instance:
            key = tuple(repr(item.get(k)) for k in keys) if isinstance(item, dict) else ()
            if key in seen_keys:
                named = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
                yield jsonschema.ValidationError(f"two items have the same key ({named})")
            seen_keys.add(key)


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("int32")
def is_int32(value: Any) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def is_int64(value: Any) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


CrdValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-list-type": list_type}
)

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass
class CrdVersion:
    scope: str
    validator: Any
    cel_rules: int


def count_cel_rules(node: Any) -> int:
    if isinstance(node, list):
        return sum(count_cel_rules(n) for n in node)
    if not isinstance(node, dict):
        return 0
    own = len(node.get("x-kubernetes-validations", []))
    return own + sum(count_cel_rules(v) for k, v in node.items() if k != "x-kubernetes-validations")


def crd_index() -> dict[tuple[str, str], CrdVersion]:
    """(apiVersion, kind) -> the schema of that served version, for every CRD in crds/."""
    index = {}
    for doc in crd_docs():
        spec = doc.obj["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = structural_to_jsonschema(version["schema"]["openAPIV3Schema"])
            props = schema.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props.setdefault("metadata", {"type": "object"})
            CrdValidator.check_schema(schema)
            cel = count_cel_rules(version["schema"]["openAPIV3Schema"])
            index[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = CrdVersion(
                spec["scope"], CrdValidator(schema, format_checker=FORMATS), cel
            )
    return index


def validate_custom_resource(doc: Doc, crd: CrdVersion) -> list[str]:
    where = f"{doc.source}: {doc.name}"
    meta = doc.obj.get("metadata") or {}
    problems = []
    if not DNS_SUBDOMAIN.match(str(meta.get("name", ""))) or len(str(meta.get("name"))) > 253:
        problems.append(f"{where}: metadata.name {meta.get('name')!r} is not a DNS subdomain name")
    if crd.scope == "Cluster" and "namespace" in meta:
        problems.append(
            f"{where}: metadata.namespace is set, but {doc.obj['kind']} is cluster-scoped"
        )
    for error in sorted(crd.validator.iter_errors(doc.obj), key=lambda e: list(map(str, e.path))):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        problems.append(f"{where}: {path.lstrip('.') or '(top level)'}: {error.message}")
    return problems


def check_examples() -> str:
    """Every examples/*.yaml document is valid: ours against our CRD schemas, others against
    Kubernetes' schemas."""
    files = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.yml"))
    if not files:
        return "no examples/*.yaml yet (0 files)"
    index = crd_index()
    our_groups = {api_version.split("/")[0] for api_version, _ in index}
    problems, counted = [], 0
    for path in files:
        for doc in yaml_docs(path.read_text(), rel(path)):
            counted += 1
            api_version, kind = doc.obj.get("apiVersion", ""), doc.obj.get("kind", "")
            if (api_version, kind) in index:
                problems += validate_custom_resource(doc, index[(api_version, kind)])
            elif api_version.split("/")[0] in our_groups:
                problems.append(
                    f"{doc.source}: {doc.name}: no CRD in crds/ serves {kind} " f"in {api_version}"
                )
            elif problem := kube_validate(doc):
                problems.append(problem)
    if problems:
        raise CheckFailed("\n".join(problems))
    cel = sum(v.cel_rules for v in index.values())
    return (
        f"{counted} document(s) in {len(files)} file(s) valid "
        f"({cel} CEL rule(s) in the CRDs are left to the API server)"
    )


# --- main -----------------------------------------------------------------------------------------

CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("chart CRDs", check_chart_crds),
    ("helm lint", check_lint),
    ("values refused", check_rejected_values),
    ("render default", check_render_default),
    ("render custom", check_render_custom),
    ("two releases", check_two_releases),
    ("kubernetes schemas", check_kubernetes_schemas),
    ("rbac rules", check_rbac_rules),
    ("rbac wildcards", check_no_wildcards),
    ("manifests in sync", check_manifests_up_to_date),
    ("examples", check_examples),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--write-manifests",
        action="store_true",
        help="regenerate deploy/manifests/ from the chart and exit",
    )
    args = parser.parse_args()
    helm.disable_logging()
    if args.write_manifests:
        write_manifests()
        return 0

    failed = 0
    for name, check in CHECKS:
        try:
            summary = check()
        except Exception as error:  # noqa: BLE001 - a crash is reported as that check's failure
            failed += 1
            if isinstance(error, CheckFailed):
                lines = str(error).splitlines() or [""]
            else:
                lines = [f"the check crashed: {error!r}"] + traceback.format_exc().splitlines()
            print(f"FAIL  {name}: {lines[0]}")
            for line in lines[1:]:
                print(f"      {line}")
        else:
            print(f"ok    {name}: {summary}")
    print(f"check-deploy: {len(CHECKS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
