//! The deployment files: nats-server accepts every node config, and every Kubernetes overlay
//! renders and validates against the Kubernetes schemas.

use std::path::{Path, PathBuf};
use std::process::Command;

use tests::nats::{USERS, password};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool from the `./dev/test` venv.
fn venv_tool(name: &str) -> PathBuf {
    let cache = std::env::var_os("CHANSHARE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/chanshare"));
    let tool = cache.join("venv/bin").join(name);
    assert!(tool.is_file(), "{} missing: ./dev/test installs it", tool.display());
    tool
}

#[test]
fn nats_server_accepts_every_cluster_config() {
    let nats = tests::nats::nats_server();
    for node in ["n1", "n2", "n3"] {
        let config = repo().join(format!("infra/jetstream/cluster/{node}.conf"));
        let mut command = Command::new(&nats);
        command.arg("-t").arg("-c").arg(&config);
        for user in USERS {
            command.env(format!("CHANSHARE_NATS_{}_PASSWORD", user.to_uppercase()), password(user));
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{node}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_kubernetes_overlay_renders_and_validates() {
    for overlay in ["dev", "prod"] {
        let rendered = Command::new(venv_tool("kubectl"))
            // Plain: what `kubectl apply -k`, Flux and Argo CD do (no --load-restrictor).
            .arg("kustomize")
            .arg(repo().join("infra/k8s/overlays").join(overlay))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&rendered.stderr);
        assert!(rendered.status.success(), "{overlay}: kubectl kustomize failed: {stderr}");
        let yaml = String::from_utf8(rendered.stdout).unwrap();
        for kind in [
            "kind: Deployment",
            "kind: StatefulSet",
            "kind: PodDisruptionBudget",
            "kind: HorizontalPodAutoscaler",
            "kind: NetworkPolicy",
            "kind: IngressRoute",
            "kind: Secret",
        ] {
            // The prod overlay's Secret is made by the operator, not rendered.
            if overlay == "prod" && kind == "kind: Secret" {
                continue;
            }
            assert!(yaml.contains(kind), "{overlay} renders no {kind}");
        }
        for role in ["gateway", "commands", "projectors", "content"] {
            assert!(yaml.contains(&format!("- {role}\n")), "{overlay}: {role} runs its role");
        }
        // Production expires commits by age and bytes (decision 0005); development keeps all.
        let retention = yaml.contains("CHANSHARE_STREAM_MAX_AGE_SECS: \"2592000\"")
            && yaml.contains("CHANSHARE_STREAM_MAX_BYTES: \"53687091200\"");
        assert_eq!(retention, overlay == "prod", "{overlay}: retention settings");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &yaml).unwrap();
        let checked = Command::new(venv_tool("kubernetes-validate"))
            .args(["--strict", "--quiet"])
            .arg(file.path())
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{overlay}: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
