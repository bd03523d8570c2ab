//! Container lifecycle: ensure (reuse / start / create / recreate), list, recreate, prune.
//!
//! The rules (OpenClaw's, kept):
//! - A running container whose `carapace.configHash` label matches the plan is reused as is;
//!   a stopped one is started.
//! - A changed hash recreates the container, **unless it was used in the last
//!   [`HOT_WINDOW_MS`]** (a command may be mid-flight, a shell may hold state in `/tmp`): then
//!   it is kept, and `list` / `explain` say "recreate to apply" with the command.
//! - carapace's one exception: when what the sandbox can *reach* changed (mount table, network,
//!   user, capabilities, read-only root: the `carapace.accessHash` label), the container is
//!   recreated even when hot. Keeping it would let the shell read or write what the file tools,
//!   planned from the new config, refuse.
//! - Last use comes from the registry; when there is no entry, the creation time stands in.
//! - `recreate` removes containers (they are created again on next use); without `force`
//!   those used within the hot window are skipped and reported.
//! - `prune` removes containers idle for `prune.idleHours` or older than `prune.maxAgeDays`
//!   (each disabled by 0), as resolved for the container's agent and session.

use std::collections::HashMap;

use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, RemoveContainerOptions, StartContainerOptions,
};
use carapace_policy::{Config, ResolveInput};
use serde::Serialize;

use super::error::DockerError;
use super::registry::RegistryEntry;
use super::spec::{
    ContainerPlan, LABEL_ACCESS_HASH, LABEL_AGENT_ID, LABEL_CONFIG_HASH, LABEL_CREATED_AT_MS,
    LABEL_INSTANCE, LABEL_SANDBOX, LABEL_SCOPE_KEY, LABEL_SESSION_KEY,
};
use super::{DockerBackend, Warm};

/// A container used this recently is never recreated behind the user's back (5 minutes).
pub const HOT_WINDOW_MS: i64 = 5 * 60 * 1000;

/// How often (at most) an exec rewrites its container's registry entry.
const TOUCH_EVERY_MS: i64 = 30 * 1000;

/// What [`DockerBackend::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum EnsureAction {
    /// Running with the right config: used as is.
    Reused,
    /// Present with the right config but stopped: started.
    Started,
    /// Absent: created and started.
    Created,
    /// Its config hash differed and it was not in use: removed, created and started.
    Recreated,
    /// Its config hash differs but it was used within the hot window: kept as is.
    KeptStale {
        /// `carapace sandbox recreate …` to apply the new config.
        recreate_command: String,
    },
}

/// A container ready for exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ensured {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// What was done.
    pub action: EnsureAction,
}

/// One managed container, as `carapace sandbox list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    /// Name.
    pub name: String,
    /// Id.
    pub id: String,
    /// Running now.
    pub running: bool,
    /// Engine state (`running`, `exited`, `created`...).
    pub state: String,
    /// Image it runs.
    pub image: String,
    /// Scope key.
    pub scope_key: String,
    /// Session key of its creator.
    pub session_key: String,
    /// Agent id.
    pub agent_id: String,
    /// Created (ms since the epoch).
    pub created_at_ms: i64,
    /// Last exec, from the registry (or the creation time).
    pub last_used_at_ms: i64,
    /// Its config hash label.
    pub config_hash: String,
    /// The hash the current config asks for (when it could be computed).
    pub expected_hash: Option<String>,
    /// Whether they agree (`None`: unknown, e.g. its sandbox directory is gone).
    pub config_match: Option<bool>,
    /// Used within the hot window.
    pub hot: bool,
    /// "config changed; recreate to apply: carapace sandbox recreate …" when it does not match.
    pub note: Option<String>,
}

/// Which containers `recreate` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every managed container.
    All,
    /// The container whose scope key is this (OpenClaw's `--session`: with scope `session` the
    /// session key, with scope `agent` `agent:<id>`, with scope `shared` `shared`).
    Session(String),
    /// Containers of this agent.
    Agent(String),
}

impl Selector {
    fn matches(&self, c: &ContainerInfo) -> bool {
        match self {
            Selector::All => true,
            Selector::Session(k) => c.scope_key == *k,
            Selector::Agent(a) => c.agent_id == *a,
        }
    }
}

/// What `recreate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecreateReport {
    /// Removed (created again on next use).
    pub removed: Vec<String>,
    /// `(name, why)` left alone.
    pub skipped: Vec<(String, String)>,
}

/// What `prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// `(name, why)` removed.
    pub removed: Vec<(String, String)>,
    /// Containers kept.
    pub kept: Vec<String>,
    /// Registry entries dropped because their container no longer exists.
    pub forgotten: Vec<String>,
}

fn label<'a>(labels: &'a HashMap<String, String>, k: &str) -> &'a str {
    labels.get(k).map(String::as_str).unwrap_or("")
}

impl DockerBackend {
    /// Makes the plan's container ready for exec (see the module docs for the rules).
    pub async fn ensure(&self, plan: &ContainerPlan) -> Result<Ensured, DockerError> {
        let _slow = self.slow.lock().await;
        let mut attempt = 0;
        loop {
            match self.ensure_once(plan).await {
                // Another process created (or removed) the same container between our inspect
                // and our create / start. The engine reserves a name before the container can be
                // inspected, so look again after a short pause, a few times.
                Err(e) if attempt < 20 && matches!(e.status(), Some(404 | 409)) => {
                    tracing::info!("{}: {e}; looking again", plan.name);
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    async fn ensure_once(&self, plan: &ContainerPlan) -> Result<Ensured, DockerError> {
        let d = self.client().await?;
        let now = self.now_ms();
        let name = plan.name.as_str();
        let inspected = match d
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => Some(c),
            Err(e) => match DockerError::from_bollard(format!("inspect {name}"), e) {
                e if e.status() == Some(404) => None,
                e => return Err(e),
            },
        };
        let mut action = EnsureAction::Created;
        // id, config hash, access hash, created, running
        let mut existing: Option<(String, String, String, i64, bool)> = None;
        if let Some(c) = inspected {
            let labels = c
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            // Same name, other installation: never reuse it (its mounts are not ours) and
            // never remove it (it is not ours to remove).
            let owner = label(&labels, LABEL_INSTANCE);
            if owner != self.instance {
                return Err(DockerError::NameTaken {
                    name: name.to_string(),
                    owner: owner.to_string(),
                    instance: self.instance.clone(),
                });
            }
            let hash = label(&labels, LABEL_CONFIG_HASH).to_string();
            let access = label(&labels, LABEL_ACCESS_HASH).to_string();
            let created: i64 = label(&labels, LABEL_CREATED_AT_MS).parse().unwrap_or(0);
            let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
            let id = c.id.unwrap_or_else(|| name.to_string());
            if hash == plan.config_hash {
                action = if running {
                    EnsureAction::Reused
                } else {
                    EnsureAction::Started
                };
                existing = Some((id, hash, access, created, running));
            } else {
                let last_used = self.last_used(name, created);
                let hot = running && now - last_used < HOT_WINDOW_MS;
                if hot && access != plan.access_hash {
                    tracing::warn!(
                        "sandbox access changed for {name} (mounts, network, user, capabilities or read-only root): recreating it although it was used {} s ago",
                        (now - last_used) / 1000
                    );
                }
                if hot && access == plan.access_hash {
                    let cmd = plan.recreate_command();
                    tracing::warn!(
                        "sandbox config changed for {name} (recently used): recreate to apply: {cmd}"
                    );
                    action = EnsureAction::KeptStale {
                        recreate_command: cmd,
                    };
                    existing = Some((id, hash, access, created, running));
                } else {
                    self.remove(name).await?;
                    action = EnsureAction::Recreated;
                }
            }
        }
        let (id, container_hash, container_access, created) = match existing {
            Some((id, hash, access, created, running)) => {
                if !running {
                    plan.verify_sources()?;
                    self.start(name).await?;
                }
                (id, hash, access, created)
            }
            None => {
                plan.verify_sources()?;
                let id = self.create(plan, now).await?;
                self.start(name).await?;
                (id, plan.config_hash.clone(), plan.access_hash.clone(), now)
            }
        };
        let entry = RegistryEntry {
            container_name: name.to_string(),
            scope_key: plan.scope_key.clone(),
            agent_id: plan.agent_id.clone(),
            image: plan.image.clone(),
            config_hash: container_hash.clone(),
            created_at_ms: created,
            last_used_at_ms: now,
        };
        self.registry.put(&entry)?;
        self.warm_put(
            name,
            Warm {
                id: id.clone(),
                plan_hash: plan.config_hash.clone(),
                container_hash,
                container_access,
                entry,
                touched_ms: now,
            },
        );
        Ok(Ensured {
            id,
            name: name.to_string(),
            action,
        })
    }

    /// The container id for an exec: from this process's memory when the plan is unchanged
    /// (no engine round trip), else through [`DockerBackend::ensure`].
    pub(crate) async fn ready(&self, plan: &ContainerPlan) -> Result<String, DockerError> {
        let now = self.now_ms();
        if let Some(w) = self.warm_get(&plan.name) {
            let fresh = w.container_hash == plan.config_hash
                || (w.container_access == plan.access_hash
                    && now - w.entry.last_used_at_ms < HOT_WINDOW_MS);
            if w.plan_hash == plan.config_hash && fresh {
                return Ok(w.id);
            }
        }
        Ok(self.ensure(plan).await?.id)
    }

    /// Records a use of `name` (rewrites the registry entry at most every 30 s).
    pub(crate) fn touch(&self, name: &str) {
        let now = self.now_ms();
        let Some(mut w) = self.warm_get(name) else {
            return;
        };
        w.entry.last_used_at_ms = now;
        if now - w.touched_ms >= TOUCH_EVERY_MS {
            if let Err(e) = self.registry.put(&w.entry) {
                tracing::warn!("cannot record the last use of {name}: {e}");
            }
            w.touched_ms = now;
        }
        self.warm_put(name, w);
    }

    /// Forgets what this process knows about `name` (after the engine said it is gone).
    pub(crate) fn invalidate(&self, name: &str) {
        self.warm_forget(name);
    }

    fn last_used(&self, name: &str, created: i64) -> i64 {
        let warm = self.warm_get(name).map(|w| w.entry.last_used_at_ms);
        let reg = self.registry.get(name).map(|e| e.last_used_at_ms);
        warm.into_iter().chain(reg).max().unwrap_or(created)
    }

    async fn create(&self, plan: &ContainerPlan, now: i64) -> Result<String, DockerError> {
        let d = self.client().await?;
        if let Err(e) = d.inspect_image(&plan.image).await {
            let e = DockerError::from_bollard(format!("inspect image {}", plan.image), e);
            return Err(if e.status() == Some(404) {
                DockerError::ImageMissing {
                    image: plan.image.clone(),
                }
            } else {
                e
            });
        }
        let opts = bollard::query_parameters::CreateContainerOptions {
            name: Some(plan.name.clone()),
            platform: String::new(),
        };
        match d
            .create_container(Some(opts), plan.create_body(now, &self.instance))
            .await
        {
            Ok(r) => Ok(r.id),
            Err(e) => Err(DockerError::from_bollard(
                format!("create container {}", plan.name),
                e,
            )),
        }
    }

    async fn start(&self, name: &str) -> Result<(), DockerError> {
        let d = self.client().await?;
        match d.start_container(name, None::<StartContainerOptions>).await {
            Ok(()) => Ok(()),
            Err(e) => match DockerError::from_bollard(format!("start container {name}"), e) {
                e if e.status() == Some(304) => Ok(()), // already started
                e => Err(e),
            },
        }
    }

    /// Force-removes `name` and forgets it (absent is fine).
    async fn remove(&self, name: &str) -> Result<(), DockerError> {
        let d = self.client().await?;
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        self.warm_forget(name);
        match d.remove_container(name, Some(opts)).await {
            Ok(()) => {}
            Err(e) => match DockerError::from_bollard(format!("remove container {name}"), e) {
                e if e.status() == Some(404) => {}
                e => return Err(e),
            },
        }
        self.registry.remove(name)
    }

    /// Every container of this instance (labels `carapace.sandbox=1` and
    /// `carapace.instance=<this state dir>`). With `config`, each is compared
    /// with what the current configuration asks for its scope.
    pub async fn list(&self, config: Option<&Config>) -> Result<Vec<ContainerInfo>, DockerError> {
        let d = self.client().await?;
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![
                    format!("{LABEL_SANDBOX}=1"),
                    format!("{LABEL_INSTANCE}={}", self.instance),
                ],
            )])),
            ..Default::default()
        };
        let summaries = d
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::from_bollard("list containers", e))?;
        let now = self.now_ms();
        let mut out = Vec::new();
        for s in summaries {
            let labels = s.labels.unwrap_or_default();
            let name = s
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let created: i64 = label(&labels, LABEL_CREATED_AT_MS).parse().unwrap_or(0);
            let state = s.state.map(|st| st.to_string()).unwrap_or_default();
            let mut info = ContainerInfo {
                id: s.id.unwrap_or_default(),
                running: state == "running",
                state,
                image: s.image.unwrap_or_default(),
                scope_key: label(&labels, LABEL_SCOPE_KEY).to_string(),
                session_key: label(&labels, LABEL_SESSION_KEY).to_string(),
                agent_id: label(&labels, LABEL_AGENT_ID).to_string(),
                created_at_ms: created,
                last_used_at_ms: self.last_used(&name, created),
                config_hash: label(&labels, LABEL_CONFIG_HASH).to_string(),
                expected_hash: None,
                config_match: None,
                hot: false,
                note: None,
                name,
            };
            info.hot = info.running && now - info.last_used_at_ms < HOT_WINDOW_MS;
            if let Some(cfg) = config
                && let Some(plan) = self.expected_plan(cfg, &info)
            {
                let matches = plan.config_hash == info.config_hash;
                if !matches {
                    info.note = Some(format!(
                        "config changed; recreate to apply: {}",
                        plan.recreate_command()
                    ));
                }
                info.expected_hash = Some(plan.config_hash);
                info.config_match = Some(matches);
            }
            out.push(info);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// What the current config asks for the container `info` serves.
    fn expected_plan(&self, cfg: &Config, info: &ContainerInfo) -> Option<ContainerPlan> {
        let eff = cfg
            .resolve(&ResolveInput {
                agent: (!info.agent_id.is_empty()).then_some(info.agent_id.as_str()),
                channel: None,
                session_key: (!info.session_key.is_empty()).then_some(info.session_key.as_str()),
            })
            .ok()?;
        let table = carapace_policy::mounts::plan(&eff);
        self.plan(&eff, &table).ok()
    }

    /// The line `explain` prints for a session's container: `None` when there is none yet;
    /// otherwise its state and, when its config is stale, the recreate command.
    pub async fn explain(&self, plan: &ContainerPlan) -> Result<Option<String>, DockerError> {
        let all = self.list(None).await?;
        let Some(c) = all.into_iter().find(|c| c.name == plan.name) else {
            return Ok(None);
        };
        let mut line = format!("container {} ({}, image {})", c.name, c.state, c.image);
        if c.config_hash != plan.config_hash {
            line.push_str(&format!(
                "; config changed{}; recreate to apply: {}",
                if c.hot { " (recently used)" } else { "" },
                plan.recreate_command()
            ));
        }
        Ok(Some(line))
    }

    /// Removes the selected containers so the next use creates them from the current config.
    /// Without `force`, containers used within the hot window are skipped.
    pub async fn recreate(
        &self,
        selector: &Selector,
        force: bool,
    ) -> Result<RecreateReport, DockerError> {
        let all = self.list(None).await?;
        let _slow = self.slow.lock().await;
        let now = self.now_ms();
        let mut report = RecreateReport::default();
        for c in all.iter().filter(|c| selector.matches(c)) {
            if !force && c.running && now - c.last_used_at_ms < HOT_WINDOW_MS {
                report.skipped.push((
                    c.name.clone(),
                    format!(
                        "used {} s ago; pass --force to remove it anyway",
                        (now - c.last_used_at_ms).max(0) / 1000
                    ),
                ));
                continue;
            }
            self.remove(&c.name).await?;
            report.removed.push(c.name.clone());
        }
        Ok(report)
    }

    /// Removes containers idle past `prune.idleHours` or older than `prune.maxAgeDays` (as
    /// resolved for each container's agent and session; 0 disables a rule), and registry entries
    /// whose container is gone.
    pub async fn prune(&self, config: &Config) -> Result<PruneReport, DockerError> {
        let all = self.list(None).await?;
        let _slow = self.slow.lock().await;
        let now = self.now_ms();
        let mut report = PruneReport::default();
        for c in &all {
            let prune = config
                .resolve(&ResolveInput {
                    agent: (!c.agent_id.is_empty()).then_some(c.agent_id.as_str()),
                    channel: None,
                    session_key: (!c.session_key.is_empty()).then_some(c.session_key.as_str()),
                })
                .map(|e| e.prune)
                .unwrap_or(carapace_policy::resolve::EffectivePrune {
                    idle_hours: 24.0,
                    max_age_days: 7.0,
                });
            let idle_ms = now - c.last_used_at_ms;
            let age_ms = now - c.created_at_ms;
            let idle_limit = (prune.idle_hours * 3_600_000.0) as i64;
            let age_limit = (prune.max_age_days * 86_400_000.0) as i64;
            let why = if prune.idle_hours > 0.0 && idle_ms >= idle_limit {
                Some(format!(
                    "idle {:.1} h (prune.idleHours {})",
                    idle_ms as f64 / 3_600_000.0,
                    prune.idle_hours
                ))
            } else if prune.max_age_days > 0.0 && age_ms >= age_limit {
                Some(format!(
                    "{:.1} days old (prune.maxAgeDays {})",
                    age_ms as f64 / 86_400_000.0,
                    prune.max_age_days
                ))
            } else {
                None
            };
            match why {
                Some(why) => {
                    self.remove(&c.name).await?;
                    report.removed.push((c.name.clone(), why));
                }
                None => report.kept.push(c.name.clone()),
            }
        }
        for name in self.registry.names() {
            if !all.iter().any(|c| c.name == name) {
                self.registry.remove(&name)?;
                self.warm_forget(&name);
                report.forgotten.push(name);
            }
        }
        Ok(report)
    }
}
