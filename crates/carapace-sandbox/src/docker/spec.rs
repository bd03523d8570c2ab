//! The container a scope needs, decided without talking to the engine: name, labels, the
//! config hash, and the create request. Pure apart from nothing: tested without Docker.
//!
//! Naming and labels follow OpenClaw (`openclaw-sbx-<slug>`, `openclaw.sessionKey`,
//! `openclaw.createdAtMs`, `openclaw.configHash`) under carapace's own prefix and label
//! namespace, so the two can share an engine without touching each other's containers.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerCreateBody, HostConfig, Mount as DockerMount, MountTypeEnum};
use carapace_policy::EffectiveSandbox;
use carapace_policy::config::Scope;
use carapace_policy::mounts::MountTable;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::DockerError;

/// Label present on every container carapace manages (value `1`).
pub const LABEL_SANDBOX: &str = "carapace.sandbox";
/// Scope key the container serves (`agent:main`, a session key, `shared`).
pub const LABEL_SCOPE_KEY: &str = "carapace.scopeKey";
/// Session key of the call that created it.
pub const LABEL_SESSION_KEY: &str = "carapace.sessionKey";
/// Agent id.
pub const LABEL_AGENT_ID: &str = "carapace.agentId";
/// Creation time, ms since the Unix epoch.
pub const LABEL_CREATED_AT_MS: &str = "carapace.createdAtMs";
/// Hash of everything in [`ContainerPlan`] that is fixed at creation.
pub const LABEL_CONFIG_HASH: &str = "carapace.configHash";

/// Hash of the part of the config that decides what the sandbox can reach (mounts, network,
/// user, capabilities, read-only root). A change there is applied even to a recently used
/// container.
pub const LABEL_ACCESS_HASH: &str = "carapace.accessHash";

/// Which carapace installation owns the container: the first 12 hex digits of sha256 of its
/// state directory. `list`, `recreate` and `prune` only ever touch their own instance's
/// containers, so two installations (or parallel tests) can share an engine.
pub const LABEL_INSTANCE: &str = "carapace.instance";

/// Longest container name the engine and DNS-style tooling accept comfortably.
pub const MAX_NAME_LEN: usize = 63;

/// Everything fixed at container creation, for one scope. Two plans with the same
/// [`ContainerPlan::config_hash`] describe interchangeable containers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPlan {
    /// `<containerPrefix><slug>`, at most 63 characters.
    pub name: String,
    /// Scope key.
    pub scope_key: String,
    /// Scope (decides the `recreate` selector to suggest).
    pub scope: Scope,
    /// Session key of the caller.
    pub session_key: String,
    /// Agent id.
    pub agent_id: String,
    /// Image reference.
    pub image: String,
    /// Docker network mode (`none` by default).
    pub network: String,
    /// `uid:gid` the container's processes run as.
    pub user: String,
    /// Container environment (`sandbox.docker.env`).
    pub env: BTreeMap<String, String>,
    /// Read-only root filesystem.
    pub read_only_root: bool,
    /// tmpfs mounts, `path[:options]`.
    pub tmpfs: Vec<String>,
    /// Capabilities dropped.
    pub cap_drop: Vec<String>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// CPU limit in units of 1e-9 CPUs.
    pub nano_cpus: Option<i64>,
    /// PID limit.
    pub pids_limit: Option<i64>,
    /// The session's mount table, as binds.
    pub mounts: Vec<PlannedMount>,
    /// sha256 (first 16 hex digits) of the fields above except name and keys.
    pub config_hash: String,
    /// sha256 (first 16 hex digits) of what decides the sandbox's reach: mounts, network, user,
    /// capDrop, readOnlyRoot.
    pub access_hash: String,
    /// The validated mount sources, checked again right before every create and start.
    #[serde(skip)]
    pub sources: Vec<crate::pin::ValidatedSource>,
}

/// One bind mount of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMount {
    /// Host path.
    pub host_path: String,
    /// Container path.
    pub container_path: String,
    /// Writable.
    pub writable: bool,
}

impl ContainerPlan {
    /// Plans the container of `eff`'s scope with the mount table `table`. `workspace_owner` is
    /// the `(uid, gid)` owning the `/workspace` host directory: the container user when
    /// `sandbox.docker.user` is unset, so files written inside and outside agree on owner.
    pub fn new(
        eff: &EffectiveSandbox,
        table: &MountTable,
        workspace_owner: (u32, u32),
    ) -> Result<ContainerPlan, DockerError> {
        if !eff.sandboxed || !table.sandboxed {
            return Err(DockerError::NotSandboxed {
                session_key: eff.session_key.clone(),
            });
        }
        let d = &eff.docker;
        let name = container_name(&d.container_prefix, &eff.scope_slug)?;
        let user = match &d.user {
            Some(u) => validate_user(u)?,
            None => format!("{}:{}", workspace_owner.0, workspace_owner.1),
        };
        // A bad memory value is refused at load; the check stays for plans built directly.
        d.memory.as_deref().map(parse_memory).transpose()?;
        // Unset keys get carapace's defaults (carapace_policy::limits), as for bwrap.
        let limits = carapace_policy::limits::Limits::of(d);
        let memory_bytes = limits
            .memory_bytes
            .value
            .map(|b| i64::try_from(b).unwrap_or(i64::MAX));
        let nano_cpus = match limits.cpus.value {
            None => None,
            Some(c) if c.is_finite() && c > 0.0 && c <= 4096.0 => Some((c * 1e9).round() as i64),
            Some(c) => {
                return Err(DockerError::InvalidSetting {
                    key: "cpus",
                    value: c.to_string(),
                    reason: "must be a positive number of CPUs".into(),
                });
            }
        };
        // OpenClaw: 0 or less means unlimited.
        let pids_limit = limits
            .pids
            .value
            .map(|p| i64::try_from(p).unwrap_or(i64::MAX));
        for t in &d.tmpfs {
            if !t.starts_with('/') {
                return Err(DockerError::InvalidSetting {
                    key: "tmpfs",
                    value: t.clone(),
                    reason: "a tmpfs entry is an absolute container path, optionally `:options`"
                        .into(),
                });
            }
        }
        let mounts = table
            .mounts
            .iter()
            .map(|m| PlannedMount {
                host_path: m.host_path.display().to_string(),
                container_path: m.container_path.clone(),
                writable: m.writable,
            })
            .collect();
        let mut plan = ContainerPlan {
            name,
            scope_key: eff.scope_key.clone(),
            scope: eff.scope.value,
            session_key: eff.session_key.clone(),
            agent_id: eff.agent_id.clone(),
            image: d.image.clone(),
            network: if d.network.is_empty() {
                "none".into()
            } else {
                d.network.clone()
            },
            user,
            env: d.env.clone(),
            read_only_root: d.read_only_root,
            tmpfs: d.tmpfs.clone(),
            cap_drop: d.cap_drop.clone(),
            memory_bytes,
            nano_cpus,
            pids_limit,
            mounts,
            config_hash: String::new(),
            access_hash: String::new(),
            sources: Vec::new(),
        };
        plan.config_hash = plan.compute_hash();
        plan.access_hash = plan.compute_access_hash();
        Ok(plan)
    }

    /// The plan with each mount's host path replaced by the canonical one the engine is given
    /// (in mount order), hashes recomputed.
    pub(crate) fn with_host_paths(mut self, paths: Vec<String>) -> ContainerPlan {
        for (m, p) in self.mounts.iter_mut().zip(paths) {
            m.host_path = p;
        }
        self.config_hash = self.compute_hash();
        self.access_hash = self.compute_access_hash();
        self
    }

    /// The check right before a create or start: every mount source is what was validated
    /// and has no symlink in its path (the engine resolves bind sources by path; it cannot
    /// take a pinned fd).
    pub(crate) fn verify_sources(&self) -> Result<(), DockerError> {
        for s in &self.sources {
            crate::pin::PinnedSource::verify(s).map_err(|e| DockerError::Sandbox(Box::new(e)))?;
        }
        Ok(())
    }

    /// The hash of the creation-time settings. Name, keys and timestamps are not part of it:
    /// they identify the container, they do not configure it.
    fn compute_hash(&self) -> String {
        let v = serde_json::json!({
            "v": 1,
            "image": self.image,
            "network": self.network,
            "user": self.user,
            "env": self.env,
            "readOnlyRoot": self.read_only_root,
            "tmpfs": self.tmpfs,
            "capDrop": self.cap_drop,
            "memoryBytes": self.memory_bytes,
            "nanoCpus": self.nano_cpus,
            "pidsLimit": self.pids_limit,
            "mounts": self.mounts,
        });
        short_hash(&v)
    }

    /// The hash of what decides the sandbox's reach.
    fn compute_access_hash(&self) -> String {
        short_hash(&serde_json::json!({
            "v": 1,
            "network": self.network,
            "user": self.user,
            "readOnlyRoot": self.read_only_root,
            "capDrop": self.cap_drop,
            "mounts": self.mounts,
        }))
    }

    /// The labels of a container created now by carapace instance `instance`.
    pub fn labels(&self, created_at_ms: i64, instance: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SANDBOX.to_string(), "1".to_string()),
            (LABEL_INSTANCE.to_string(), instance.to_string()),
            (LABEL_SCOPE_KEY.to_string(), self.scope_key.clone()),
            (LABEL_SESSION_KEY.to_string(), self.session_key.clone()),
            (LABEL_AGENT_ID.to_string(), self.agent_id.clone()),
            (LABEL_CREATED_AT_MS.to_string(), created_at_ms.to_string()),
            (LABEL_CONFIG_HASH.to_string(), self.config_hash.clone()),
            (LABEL_ACCESS_HASH.to_string(), self.access_hash.clone()),
        ])
    }

    /// The create request: a long-lived `sleep` under the engine's init (which reaps the
    /// orphans of finished commands), hardened as configured, with `no-new-privileges`
    /// always on and the mount table as bind mounts that must already exist on the host
    /// (a `Mounts` bind never creates a missing source, unlike `Binds`).
    pub fn create_body(&self, created_at_ms: i64, instance: &str) -> ContainerCreateBody {
        let tmpfs: HashMap<String, String> = self
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((p, o)) => (p.to_string(), o.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect();
        let mounts = self
            .mounts
            .iter()
            .map(|m| DockerMount {
                target: Some(m.container_path.clone()),
                source: Some(m.host_path.clone()),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(!m.writable),
                ..Default::default()
            })
            .collect();
        let host_config = HostConfig {
            mounts: Some(mounts),
            network_mode: Some(self.network.clone()),
            readonly_rootfs: Some(self.read_only_root),
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            cap_drop: (!self.cap_drop.is_empty()).then(|| self.cap_drop.clone()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: self.memory_bytes,
            nano_cpus: self.nano_cpus,
            pids_limit: self.pids_limit,
            init: Some(true),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            entrypoint: Some(vec![]),
            user: Some(self.user.clone()),
            working_dir: Some(carapace_policy::mounts::WORKSPACE.into()),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(self.labels(created_at_ms, instance)),
            network_disabled: Some(self.network == "none"),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    /// The command that applies a changed config to this scope's container.
    pub fn recreate_command(&self) -> String {
        recreate_command(self.scope, &self.scope_key, &self.agent_id)
    }
}

/// `carapace sandbox recreate --session K` / `--agent A` / `--all`, by scope.
pub fn recreate_command(scope: Scope, scope_key: &str, agent_id: &str) -> String {
    match scope {
        Scope::Session => format!("carapace sandbox recreate --session {scope_key}"),
        Scope::Agent => format!("carapace sandbox recreate --agent {agent_id}"),
        Scope::Shared => "carapace sandbox recreate --all".into(),
    }
}

fn short_hash(v: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))[..16].to_string()
}

/// The instance id of a state directory (see [`LABEL_INSTANCE`]).
pub fn instance_id(state_dir: &std::path::Path) -> String {
    let canonical = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    hex::encode(digest)[..12].to_string()
}

/// `<prefix><slug>`, at most [`MAX_NAME_LEN`] characters. When too long, the readable part of
/// the slug is shortened and its `-<8 hex>` hash suffix kept, so names stay unique.
pub fn container_name(prefix: &str, slug: &str) -> Result<String, DockerError> {
    let bad = |reason: &str| DockerError::InvalidSetting {
        key: "containerPrefix",
        value: prefix.to_string(),
        reason: reason.to_string(),
    };
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if prefix.is_empty() || !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("must start with a letter or digit"));
    }
    if !prefix.chars().all(valid_char) {
        return Err(bad("may contain only letters, digits, `_`, `.` and `-`"));
    }
    // Slugs are `[a-z0-9._-]` ending in `-<8 hex>` (carapace_policy::slug).
    let full = format!("{prefix}{slug}");
    if full.len() <= MAX_NAME_LEN {
        return Ok(full);
    }
    let (base, hash) = match slug.rsplit_once('-') {
        Some((b, h)) if h.len() == 8 => (b, h),
        _ => (slug, ""),
    };
    let room = MAX_NAME_LEN
        .checked_sub(prefix.len() + 1 + hash.len())
        .filter(|r| *r >= 1)
        .ok_or_else(|| bad("is too long: prefix and slug must fit in 63 characters"))?;
    let base: String = base.chars().take(room).collect();
    Ok(format!("{prefix}{}-{hash}", base.trim_end_matches('-')))
}

/// Docker memory sizes ("512m", "1g", "1.5GiB", "268435456"; at least 6 MiB), as
/// `carapace_policy::limits::parse_memory`, with the Docker backend's error.
pub fn parse_memory(s: &str) -> Result<i64, DockerError> {
    carapace_policy::limits::parse_memory(s)
        .map(|b| i64::try_from(b).unwrap_or(i64::MAX))
        .map_err(|reason| DockerError::InvalidSetting {
            key: "memory",
            value: s.to_string(),
            reason,
        })
}

/// `uid[:gid]` or a user name: passed to the engine as is, minus surrounding blanks.
fn validate_user(u: &str) -> Result<String, DockerError> {
    let u = u.trim();
    let ok = !u.is_empty()
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'));
    if ok {
        Ok(u.to_string())
    } else {
        Err(DockerError::InvalidSetting {
            key: "user",
            value: u.to_string(),
            reason: "expected `uid:gid`, `uid` or a user name".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use carapace_policy::config::Config;
    use carapace_policy::{LoadEnv, ResolveInput};

    fn eff(json: &str, session: &str) -> EffectiveSandbox {
        let cfg = Config::parse(
            json,
            "test.json5",
            &LoadEnv {
                var: &|_| None,
                home: "/home/u",
                state_dir: "/home/u/.carapace".into(),
            },
        )
        .unwrap();
        cfg.resolve(&ResolveInput {
            session_key: Some(session),
            ..Default::default()
        })
        .unwrap()
    }

    fn plan_of(json: &str, session: &str) -> ContainerPlan {
        let e = eff(json, session);
        let t = carapace_policy::mounts::plan(&e);
        ContainerPlan::new(&e, &t, (1000, 1000)).unwrap()
    }

    const ALL: &str = r#"{agents:{defaults:{sandbox:{mode:"all"}}}}"#;

    #[test]
    fn names_follow_the_prefix_and_stay_short_and_unique() {
        assert_eq!(
            container_name("carapace-sbx-", "agent-main-0123abcd").unwrap(),
            "carapace-sbx-agent-main-0123abcd"
        );
        let long = "a".repeat(32) + "-0123abcd";
        let n = container_name("a-very-long-prefix-for-containers-", &long).unwrap();
        assert!(n.len() <= 63, "{n}");
        assert!(n.ends_with("-0123abcd"), "{n}");
        assert!(container_name("", "x-0123abcd").is_err());
        assert!(container_name("bad/prefix", "x-0123abcd").is_err());
        assert!(container_name(&"p".repeat(60), "x-0123abcd").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_memory("268435456").unwrap(), 268_435_456);
        for bad in ["", "x", "12x", "1k", "-5g", "nan"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hardened_defaults_and_labels() {
        let p = plan_of(ALL, "agent:main:telegram:dm:1");
        assert!(p.name.starts_with("carapace-sbx-agent-main-"));
        assert_eq!(p.user, "1000:1000");
        let body = p.create_body(42, "inst");
        let hc = body.host_config.clone().unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(hc.init, Some(true));
        let tmpfs = hc.tmpfs.unwrap();
        assert!(tmpfs.contains_key("/tmp") && tmpfs.contains_key("/run"));
        let m = &hc.mounts.unwrap()[0];
        assert_eq!(m.target.as_deref(), Some("/workspace"));
        assert_eq!(m.read_only, Some(false));
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_SANDBOX], "1");
        assert_eq!(labels[LABEL_SCOPE_KEY], "agent:main");
        assert_eq!(labels[LABEL_CREATED_AT_MS], "42");
        assert_eq!(labels[LABEL_INSTANCE], "inst");
        assert_eq!(labels[LABEL_CONFIG_HASH], p.config_hash);
        assert_eq!(
            p.recreate_command(),
            "carapace sandbox recreate --agent main"
        );
    }

    #[test]
    fn hash_tracks_configuration_not_identity() {
        let a = plan_of(ALL, "agent:main:x");
        let b = plan_of(ALL, "agent:main:y"); // same agent scope, other caller
        assert_eq!(a.config_hash, b.config_hash);
        for changed in [
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{memory:"512m"}}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{network:"bridge"}}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{env:{A:"1"}}}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{image:"other:1"}}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",workspaceAccess:"ro"}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{readOnlyRoot:false}}}}}"#,
        ] {
            assert_ne!(
                plan_of(changed, "agent:main:x").config_hash,
                a.config_hash,
                "{changed}"
            );
        }
        let mem = plan_of(
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{memory:"512m"}}}}}"#,
            "agent:main:x",
        );
        assert_eq!(
            mem.access_hash, a.access_hash,
            "resources do not change the reach"
        );
        for reach in [
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{network:"bridge"}}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",workspaceAccess:"rw"}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{readOnlyRoot:false}}}}}"#,
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{capDrop:[]}}}}}"#,
        ] {
            assert_ne!(
                plan_of(reach, "agent:main:x").access_hash,
                a.access_hash,
                "{reach}"
            );
        }
        let prefixed = plan_of(
            r#"{agents:{defaults:{sandbox:{mode:"all",docker:{containerPrefix:"openclaw-sbx-"}}}}}"#,
            "agent:main:x",
        );
        assert_eq!(prefixed.config_hash, a.config_hash);
        assert!(prefixed.name.starts_with("openclaw-sbx-"));
    }

    #[test]
    fn unsandboxed_sessions_have_no_container() {
        let e = eff("{}", "agent:main:main");
        let t = carapace_policy::mounts::plan(&e);
        assert!(matches!(
            ContainerPlan::new(&e, &t, (0, 0)),
            Err(DockerError::NotSandboxed { .. })
        ));
    }
}
