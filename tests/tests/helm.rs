//! The Helm chart (deploy/helm/satcheld), linted and rendered by the real
//! helm 3 (built from helm.sh/helm/v3 by bench/peers.sh): what it refuses,
//! and the objects it renders, read back as YAML: replicas, probes on the
//! plain-text health port, the security context, the Secrets' mounts, the
//! metrics annotations, and flags satcheld knows.

use std::path::PathBuf;
use std::process::{Command, Output};

use satchel_tests::bin;
use satchel_tests::peers::helm_bin;
use serde::Deserialize as _;
use serde_yaml::Value;

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/satcheld")
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .output()
        .expect("run helm")
}

/// The values every working install needs: TLS and a token Secret.
const NEEDED: &[&str] = &[
    "--set",
    "tls.secretName=satcheld-tls",
    "--set",
    "auth.tokenSecretName=satcheld-token",
];

/// `helm template` with `NEEDED` and `extra`; the objects by kind.
fn render(extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec!["template", "r", chart.to_str().unwrap()];
    args.extend_from_slice(NEEDED);
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_chart_lints_and_refuses_a_service_without_tls_or_caller_auth() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let mut lint = vec!["lint", "--strict", chart];
    lint.extend_from_slice(NEEDED);
    let out = helm(&lint);
    assert!(
        out.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let no_tls = helm(&["template", "r", chart, "--set", "auth.tokenSecretName=t"]);
    assert!(!no_tls.status.success());
    assert!(String::from_utf8_lossy(&no_tls.stderr).contains("never speaks plain TCP"));
    let no_auth = helm(&["template", "r", chart, "--set", "tls.secretName=t"]);
    assert!(!no_auth.status.success());
    assert!(String::from_utf8_lossy(&no_auth.stderr).contains("callers must authenticate"));
}

#[test]
fn the_rendered_deployment_has_probes_a_locked_down_pod_and_the_secrets() {
    let objects = render(&["--set", "dockerConfig.secretName=registry-creds"]);
    let deployment = of_kind(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9464");
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    let container = &spec["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(str_list(&security["capabilities"]["drop"]), ["ALL"]);
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["grpc"]["port"], 8081, "{probe}");
    }
    let args = str_list(&container["args"]);
    for wanted in [
        "--listen=tcp://0.0.0.0:7443",
        "--tls-cert=/etc/satchel/tls/tls.crt",
        "--auth-token-file=/etc/satchel/token/token",
        "--health-listen=0.0.0.0:8081",
        "--metrics-listen=0.0.0.0:9464",
        "--docker-config=/etc/satchel/docker/config.json",
    ] {
        assert!(args.iter().any(|a| a == wanted), "{wanted} not in {args:?}");
    }
    // Every flag the chart passes is one satcheld has.
    let help = Command::new(bin("satcheld"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for arg in &args {
        let flag = arg.split('=').next().unwrap();
        assert!(help.contains(flag), "satcheld has no {flag}");
    }
    // The docker config comes from the Secret, as config.json.
    let volumes = spec["volumes"].as_sequence().unwrap();
    let docker = volumes
        .iter()
        .find(|v| v["name"] == "docker-config")
        .unwrap();
    assert_eq!(docker["secret"]["secretName"], "registry-creds");
    assert_eq!(docker["secret"]["items"][0]["key"], ".dockerconfigjson");
    assert_eq!(docker["secret"]["items"][0]["path"], "config.json");
    let data = volumes.iter().find(|v| v["name"] == "data").unwrap();
    assert!(data["emptyDir"].is_mapping(), "{data:?}");
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let mounted = |name: &str| {
        mounts
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["mountPath"].as_str().unwrap().to_string())
    };
    assert_eq!(
        mounted("docker-config").as_deref(),
        Some("/etc/satchel/docker")
    );
    assert_eq!(mounted("data").as_deref(), Some("/var/lib/satchel"));
    let config = of_kind(&objects, "ConfigMap")["data"]["satcheld.toml"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        config.contains("state_dir = \"/var/lib/satchel/state\""),
        "{config}"
    );
    assert_eq!(
        of_kind(&objects, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
    assert_eq!(
        of_kind(&objects, "Service")["spec"]["ports"][0]["port"],
        7443
    );
    let policy = of_kind(&objects, "NetworkPolicy");
    assert_eq!(
        str_list(&policy["spec"]["policyTypes"]),
        ["Ingress", "Egress"]
    );
}

#[test]
fn pvc_storage_gives_each_replica_its_own_volume() {
    let objects = render(&["--set", "storage.type=pvc", "--set", "replicaCount=3"]);
    assert!(objects.iter().all(|o| o["kind"] != "Deployment"));
    let set = of_kind(&objects, "StatefulSet");
    assert_eq!(set["spec"]["replicas"], 3);
    let claim = &set["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "data");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "20Gi");
}
