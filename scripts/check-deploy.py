"""The deploy/ checks of scripts/check-deploy, which runs this with its virtualenv's python:

    check-deploy.py ROOT KUSTOMIZE K8S_VERSIONS     (e.g. . "kubectl kustomize" "1.29.0 latest")

1. Every kustomization.yaml under deploy/ lists resources and patches that exist and parse, lists no
   Secret and no *.example.yaml template, and leaves no manifest in its folders unlisted.
2. KUSTOMIZE renders each of them.
3. Every rendered object and the Secret template is validated against the Kubernetes OpenAPI schemas
   (strict: unknown fields are errors) of each version in K8S_VERSIONS; monitoring.coreos.com/v1
   objects against prometheus-operator's CRD models (cloudcoil-models-prometheus-operator).
4. Cross-checks on each render: selectors, named ports, probes, ConfigMap and Secret references,
   tokend's environment variables and their values, pod security, the memory limit.
Prints each error and a summary; exits 1 if there was an error.
"""
import os
import re
import shlex
import subprocess
import sys

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

root, KUSTOMIZE, K8S_VERSIONS = sys.argv[1], shlex.split(sys.argv[2]), sys.argv[3].split()
deploy = os.path.join(root, "deploy")
errors, notes = [], []
checked = {"objects": 0, "validations": 0}


def err(where, msg):
    errors.append(f"{where}: {msg}")


def rel(path):
    return os.path.relpath(path, root)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key_of(doc):
    return (doc.get("kind"), (doc.get("metadata") or {}).get("name"))


# ---------------------------------------------------------------- 1. kustomization structure
DEPRECATED = ("patchesStrategicMerge", "patchesJson6902", "commonLabels", "bases", "vars")


def check_listed_file(kpath, entry, target, what):
    """A resource or patch file: exists and parses; returns its documents (None: unusable)."""
    if not os.path.isfile(target):
        err(rel(kpath), f"{what} {entry} does not exist")
        return None
    try:
        return load_all(target)
    except yaml.YAMLError as e:
        err(rel(target), f"does not parse: {e}")
        return None


def check_kustomization(kdir):
    path = os.path.join(kdir, "kustomization.yaml")
    try:
        docs = load_all(path)
    except yaml.YAMLError as e:
        return err(rel(path), f"does not parse: {e}")
    if len(docs) != 1 or not isinstance(docs[0], dict):
        return err(rel(path), "must hold exactly one mapping")
    kust = docs[0]
    if kust.get("kind") != "Kustomization":
        err(rel(path), "kind must be Kustomization")
    for old in DEPRECATED:
        if old in kust:
            err(rel(path), f"{old} is deprecated in kustomize v5; use patches/labels/resources")
    referenced = set()
    for res in kust.get("resources") or []:
        target = os.path.normpath(os.path.join(kdir, res))
        if os.path.isdir(target):
            if not os.path.isfile(os.path.join(target, "kustomization.yaml")):
                err(rel(path), f"resource {res}: directory without kustomization.yaml")
            continue
        referenced.add(target)
        if target.endswith(".example.yaml"):
            err(rel(path), f"resource {res} is a template and must not be applied")
        for doc in check_listed_file(path, res, target, "resource") or []:
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind") \
                    or not (doc.get("metadata") or {}).get("name"):
                err(rel(target), "every document needs apiVersion, kind and metadata.name")
            elif doc["kind"] == "Secret":
                err(rel(target), "Secrets are created out of band, not kept in deploy/")
    patches = list(kust.get("patches") or []) + list(kust.get("patchesJson6902") or [])
    for entry in patches + [{"path": p} for p in kust.get("patchesStrategicMerge") or []]:
        if "patch" in entry:
            continue
        target = os.path.normpath(os.path.join(kdir, entry.get("path", "")))
        referenced.add(target)
        docs = check_listed_file(path, entry.get("path"), target, "patch")
        if docs is not None and len(docs) != 1:
            err(rel(target), "a patch file must hold one document")
        elif docs and isinstance(docs[0], list) and "target" not in entry:
            err(rel(path), f"JSON 6902 patch {entry.get('path')} needs a target")
    # Manifests lying next to the kustomization but not used by it are forgotten files.
    for dirpath, _, files in os.walk(kdir):
        if dirpath != kdir and os.path.isfile(os.path.join(dirpath, "kustomization.yaml")):
            continue
        for name in files:
            full = os.path.join(dirpath, name)
            if name == "kustomization.yaml" or not name.endswith((".yaml", ".yml", ".json")):
                continue
            if full not in referenced and not name.endswith(".example.yaml"):
                err(rel(full), f"not referenced by {rel(path)}")


# ---------------------------------------------------------------- 2. rendering
def render(kdir):
    run = subprocess.run(KUSTOMIZE + [kdir], capture_output=True, text=True)
    if run.returncode != 0:  # (without kubectl's log prefix: E1130 04:07:14.371098 4326 run.go:72] ...)
        msg = re.sub(r'^[EW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "command failed" err=', "", run.stderr.strip())
        return err(rel(kdir), f"{' '.join(KUSTOMIZE)} failed: {msg}")
    return [d for d in yaml.safe_load_all(run.stdout) if d is not None]


# ---------------------------------------------------------------- 3. schemas
VERSIONS = sorted({latest_version() if v == "latest" else v for v in K8S_VERSIONS or ["latest"]})


def prometheus_models():
    """prometheus-operator's v1 models, or None (imported on first use: it takes seconds)."""
    if not hasattr(prometheus_models, "v1"):
        try:
            from cloudcoil.models.prometheus_operator import v1
        except ImportError:
            v1 = None
        prometheus_models.v1 = v1
    return prometheus_models.v1


def dropped(src, dumped, path=""):
    """Keys of src that a pydantic round trip dropped: fields the CRD schema does not know."""
    out = []
    if isinstance(src, dict) and isinstance(dumped, dict):
        for k, v in src.items():
            out += [f"{path}.{k}".lstrip(".")] if k not in dumped else dropped(v, dumped[k], f"{path}.{k}")
    elif isinstance(src, list) and isinstance(dumped, list):
        for i, (x, y) in enumerate(zip(src, dumped)):
            out += dropped(x, y, f"{path}[{i}]")
    return out


def validate_crd(label, doc):
    model = getattr(prometheus_models(), doc["kind"], None)
    if model is None:
        return notes.append(f"{label}: no schema for {doc['apiVersion']} {doc['kind']}; checked only by the cross-checks")
    import pydantic
    try:
        obj = model.model_validate(doc)
    except pydantic.ValidationError as e:
        return err(label, "prometheus-operator schema: " + " | ".join(
            f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))
    unknown = dropped(doc, obj.model_dump(by_alias=True, exclude_unset=True, mode="json"))
    if unknown:
        err(label, f"fields unknown to the prometheus-operator schema: {', '.join(unknown)}")
    checked["validations"] += 1


def validate(where, doc):
    checked["objects"] += 1
    label = f"{where} {doc.get('kind')}/{key_of(doc)[1]}"
    if doc.get("apiVersion") == "monitoring.coreos.com/v1":
        return validate_crd(label, doc)
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            checked["validations"] += 1
        except kubernetes_validate.ValidationError as e:
            err(label, f"Kubernetes {version}: {'.'.join(str(p) for p in e.path)}: {e.message}")
        except SchemaNotFoundError:
            notes.append(f"{label}: no schema for {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {version}; skipped")


def check_render_schemas(name, docs):
    seen = set()
    for d in docs:
        if key_of(d) in seen:
            err(name, f"duplicate {key_of(d)}")
        seen.add(key_of(d))
        validate(name, d)


def check_secret_template():
    """Validates deploy/base/secret.example.yaml; returns its Secret's name and keys."""
    path = os.path.join(deploy, "base", "secret.example.yaml")
    if not os.path.isfile(path):
        err("deploy/base", "secret.example.yaml is missing")
        return None, set()
    docs, keys = load_all(path), set()
    for d in docs:
        validate(rel(path), d)
        data = {**(d.get("stringData") or {}), **(d.get("data") or {})}
        keys |= set(data)
        if d.get("kind") == "Secret" and set(data) != {"TOKEND_DATABASE_URL", "TOKEND_ADMIN_TOKEN"}:
            err(rel(path), "must hold exactly TOKEND_DATABASE_URL and TOKEND_ADMIN_TOKEN")
        for k, v in data.items():
            if "CHANGE-ME" not in str(v):
                err(rel(path), f"{k} must be a CHANGE-ME placeholder, not a value")
    return next((d["metadata"]["name"] for d in docs), None), keys


# ---------------------------------------------------------------- 4. cross-checks
with open(os.path.join(root, "README.md"), encoding="utf-8") as f:  # it documents every variable
    KNOWN_ENV = set(re.findall(r"\b(TOKEN(?:D|CTL)_[A-Z_]+[A-Z])\b", f.read()))
DURATION = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)$")
# TOKEND_CACHE_MEMORY as tokend reads it, and Kubernetes memory quantities; both in bytes (None: unreadable).
SIZE = re.compile(r"^(\d+)(KiB|MiB|GiB|KB|MB|GB|B)?$")
SIZE_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1, None: 1}
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
QUANTITY_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, None: 1}
# README "Replica memory": a container's memory limit holds 1.5 x TOKEND_CACHE_MEMORY + 256 MiB.
CACHE_MEMORY_FACTOR, PROCESS_MEMORY = 1.5, 256 << 20
SERVER_ADDRS = (("TOKEND_HTTP_ADDR", "http"), ("TOKEND_ADMIN_ADDR", "admin"), ("TOKEND_GRPC_ADDR", "grpc"))
PROBES = (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"))
REQUIRED_KINDS = ("Deployment", "Job", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy")


def size_bytes(text):
    m = SIZE.match(str(text))
    return int(m.group(1)) * SIZE_UNITS[m.group(2)] if m else None


def quantity_bytes(text):
    m = QUANTITY.match(str(text))
    return float(m.group(1)) * QUANTITY_UNITS[m.group(2)] if m else None


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_specs(doc):
    tmpl = (doc.get("spec") or {}).get("template")
    if doc.get("kind") in ("Deployment", "Job", "StatefulSet", "DaemonSet") and tmpl:
        yield tmpl


class Render:
    """One kustomization's rendered objects, with what the cross-checks look up in them."""

    def __init__(self, name, docs, secret):
        self.name, self.docs, (self.secret_name, self.secret_keys) = name, docs, secret
        self.by = {key_of(d): d for d in docs}
        self.cms = {n: d.get("data") or {} for (k, n), d in self.by.items() if k == "ConfigMap"}
        self.server_pods = [t for d in docs if d["kind"] == "Deployment" for t in pod_specs(d)]

    def pods_matching(self, selector):
        return [t for t in self.server_pods if matches(selector, t["metadata"].get("labels") or {})]


def check_pod(r, d, label, tmpl):
    spec, labels = tmpl["spec"], tmpl["metadata"].get("labels") or {}
    if d["kind"] == "Deployment" and not matches(d["spec"]["selector"].get("matchLabels"), labels):
        err(label, "selector does not match the pod template labels")
    psc = spec.get("securityContext") or {}
    if not psc.get("runAsNonRoot") or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        err(label, "pod securityContext needs runAsNonRoot and seccompProfile RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        err(label, "automountServiceAccountToken must be false")
    sa = spec.get("serviceAccountName")
    if sa and ("ServiceAccount", sa) not in r.by:
        err(label, f"ServiceAccount {sa} is not in the render")
    for c in spec["containers"]:
        cl = f"{label} container {c['name']}"
        env = container_env(r, cl, c)
        check_container(cl, c, psc, env)
        if d["kind"] == "Deployment":
            check_server_container(cl, c, env)
        if d["kind"] == "Job":
            if c.get("args") != ["migrate"]:
                err(cl, 'the Job runs args: ["migrate"]')
            if d["spec"].get("backoffLimit") is None or d["spec"].get("ttlSecondsAfterFinished") is None:
                err(label, "set backoffLimit and ttlSecondsAfterFinished")


def container_env(r, cl, c):
    """The container's environment as tokend sees it (secrets as "<secret>"); checks its sources."""
    env = {}
    for src in c.get("envFrom") or []:
        ref = (src.get("configMapRef") or {}).get("name")
        if ref and ref not in r.cms:
            err(cl, f"envFrom ConfigMap {ref} is not in the render")
        env.update(r.cms.get(ref, {}))
        if src.get("secretRef"):
            err(cl, "use secretKeyRef per key rather than envFrom secretRef")
    for e in c.get("env") or []:
        skr = (e.get("valueFrom") or {}).get("secretKeyRef")
        cm = (e.get("valueFrom") or {}).get("configMapKeyRef")
        if skr and (skr["name"] != r.secret_name or skr["key"] not in r.secret_keys):
            err(cl, f"env {e['name']}: secret {skr['name']}/{skr['key']} is not in secret.example.yaml")
        env[e["name"]] = "<secret>" if skr else r.cms.get(cm["name"], {}).get(cm["key"]) if cm else e.get("value")
    return env


def check_container(cl, c, psc, env):
    sc = c.get("securityContext") or {}
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and sc.get("runAsNonRoot") and "ALL" in ((sc.get("capabilities") or {}).get("drop") or [])):
        err(cl, "needs readOnlyRootFilesystem, allowPrivilegeEscalation false, runAsNonRoot, drop ALL")
    if sc.get("runAsUser", psc.get("runAsUser")) != 10001:
        err(cl, "must run as uid 10001 (the image's user)")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(res.get(part) or {}):
            err(cl, f"resources.{part} needs cpu and memory")
    image = c.get("image", "")
    if "@" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
        err(cl, f"image {image!r} needs a pinned tag or digest")
    if "/tmp" not in {m["mountPath"] for m in c.get("volumeMounts") or []}:
        err(cl, "mount an emptyDir at /tmp")
    for k, v in env.items():
        if k.startswith(("TOKEND_", "TOKENCTL_")) and k not in KNOWN_ENV:
            err(cl, f"env {k} is not a variable README.md documents")
        if k in ("TOKEND_MAX_STALENESS", "TOKEND_GC_INTERVAL") and not DURATION.match(str(v)):
            err(cl, f"{k}={v!r} is not a duration such as 5s")
        if k == "TOKEND_CACHE_ENTRIES" and not str(v).isdigit():
            err(cl, f"{k}={v!r} is not a whole number")
        if k == "TOKEND_CACHE_MEMORY" and size_bytes(v) is None:
            err(cl, f"{k}={v!r} is not a size such as 256MiB")
        if k == "TOKEND_LOG_FORMAT" and v not in ("json", "text"):
            err(cl, f"{k} must be json or text")
        if k == "TOKEND_MIGRATE" and v not in ("auto", "off"):
            err(cl, f"{k} must be auto or off")
    if "TOKEND_DATABASE_URL" not in env:
        err(cl, "TOKEND_DATABASE_URL is not set: the pod would use the embedded store")


def check_server_container(cl, c, env):
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
    if c.get("args", ["serve"]) != ["serve"]:
        err(cl, "the server container runs `tokend serve`")
    if env.get("TOKEND_MIGRATE") != "off":
        err(cl, "TOKEND_MIGRATE must be off: the migration Job owns the schema")
    if "TOKEND_ADMIN_TOKEN" not in env:
        err(cl, "TOKEND_ADMIN_TOKEN is required with PostgreSQL")
    for var, pname in SERVER_ADDRS:
        addr = str(env.get(var, ""))
        if not addr.startswith("0.0.0.0:") or int(addr.rsplit(":", 1)[1]) != ports.get(pname):
            err(cl, f"{var}={addr!r} does not listen on all interfaces at port {pname} ({ports.get(pname)})")
    for probe, path in PROBES:
        get = (c.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path:
            err(cl, f"{probe} must GET {path}")
        if get.get("port") not in ports and get.get("port") not in ports.values():
            err(cl, f"{probe} port {get.get('port')!r} is not a container port")
    if c.get("lifecycle", {}).get("preStop"):
        err(cl, "no preStop hook: tokend drains on SIGTERM itself")
    cache = size_bytes(env.get("TOKEND_CACHE_MEMORY", "256MiB"))
    limit = ((c.get("resources") or {}).get("limits") or {}).get("memory")
    need = CACHE_MEMORY_FACTOR * (cache or 0) + PROCESS_MEMORY
    if cache and str(env.get("TOKEND_CACHE_ENTRIES", "1")) != "0" and (quantity_bytes(limit) or 0) < need:
        err(cl, f"memory limit {limit!r} is below {CACHE_MEMORY_FACTOR} x TOKEND_CACHE_MEMORY + "
                f"{PROCESS_MEMORY >> 20}Mi = {need / (1 << 20):.0f}Mi (README: Replica memory)")


def check_service(r, d, label):
    pods = r.pods_matching(d["spec"].get("selector") or {})
    if not pods:
        err(label, "selector matches no Deployment pods")
    names = {p.get("name") for t in pods for c in t["spec"]["containers"] for p in c.get("ports") or []}
    for p in d["spec"]["ports"]:
        if isinstance(p.get("targetPort"), str) and p["targetPort"] not in names:
            err(label, f"targetPort {p['targetPort']} is not a named container port")


def check_selects_server_pods(r, d, label):
    sel = (d["spec"].get("selector") or d["spec"].get("podSelector") or {}).get("matchLabels")
    if not r.pods_matching(sel):
        err(label, "selects no Deployment pods")


def check_network_policy(r, d, label):
    check_selects_server_pods(r, d, label)
    opened = {p.get("port") for rule in d["spec"].get("ingress") or [] for p in rule.get("ports") or []}
    for t in r.server_pods:
        for c in t["spec"]["containers"]:
            for p in c.get("ports") or []:
                if p["containerPort"] not in opened and p.get("name") not in opened:
                    err(label, f"no ingress rule for container port {p['containerPort']}")
    egress = {p.get("port") for rule in d["spec"].get("egress") or [] for p in rule.get("ports") or []}
    if not {5432, 53} <= egress:
        err(label, "egress must allow PostgreSQL (5432) and DNS (53)")


def check_hpa(r, d, label):
    ref = d["spec"]["scaleTargetRef"]
    if (ref["kind"], ref["name"]) not in r.by:
        err(label, f"scaleTargetRef {ref['kind']}/{ref['name']} is not in the render")
    if d["spec"].get("minReplicas", 1) < 3:
        err(label, "minReplicas must be at least 3")


def check_service_monitor(r, d, label):
    sel = d["spec"]["selector"].get("matchLabels")
    svcs = [s for s in r.docs if s["kind"] == "Service" and matches(sel, s["metadata"].get("labels") or {})]
    if len(svcs) != 1:
        err(label, f"selector matches {len(svcs)} Services, want 1")
    for ep in d["spec"]["endpoints"]:
        if svcs and ep.get("port") not in {p.get("name") for p in svcs[0]["spec"]["ports"]}:
            err(label, f"endpoint port {ep.get('port')!r} is not a port name of {svcs[0]['metadata']['name']}")


CHECKS_BY_KIND = {"Service": check_service, "PodDisruptionBudget": check_selects_server_pods,
                  "NetworkPolicy": check_network_policy, "HorizontalPodAutoscaler": check_hpa,
                  "ServiceMonitor": check_service_monitor}


def cross_check(r):
    for d in r.docs:
        label = f"{r.name} {d['kind']}/{d['metadata']['name']}"
        for tmpl in pod_specs(d):
            check_pod(r, d, label, tmpl)
        if d["kind"] in CHECKS_BY_KIND:
            CHECKS_BY_KIND[d["kind"]](r, d, label)
    for kind in REQUIRED_KINDS:
        if not any(d["kind"] == kind for d in r.docs):
            err(r.name, f"renders no {kind}")
    if any(k == "Service" for k, _ in r.by) and not {("Service", "tokend"), ("Service", "tokend-admin")} <= set(r.by):
        err(r.name, "Services tokend and tokend-admin expected")


# ---------------------------------------------------------------- the checks, in order
kustomizations = sorted(d for d, _, files in os.walk(deploy) if "kustomization.yaml" in files)
if not kustomizations:
    err("deploy/", "no kustomization.yaml found")
for kdir in kustomizations:
    check_kustomization(kdir)
renders = {rel(k): docs for k in kustomizations if (docs := render(k)) is not None}
for name, docs in renders.items():
    check_render_schemas(name, docs)
secret = check_secret_template()
for name, docs in renders.items():
    try:
        cross_check(Render(name, docs, secret))
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        err(name, f"cross-checks could not read the manifests: {type(e).__name__}: {e}")

for n in dict.fromkeys(notes):
    print(f"  note: {n}")
for e in errors:
    print(f"  ERROR {e}")
print(f"  {len(renders)} kustomizations rendered, {checked['objects']} objects, "
      f"{checked['validations']} schema validations (Kubernetes {', '.join(VERSIONS)}), {len(errors)} errors")
sys.exit(1 if errors else 0)
