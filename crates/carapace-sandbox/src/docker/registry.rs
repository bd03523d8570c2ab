//! When each container was last used. A label is fixed at creation and the engine records no
//! exec times, so carapace keeps one small JSON file per container under
//! `<state>/sandboxes/registry/<container-name>.json`, written atomically through carapace-fs.
//! One file per container (not one shared file) means concurrent sessions never
//! read-modify-write each other's entries.

use std::path::{Path, PathBuf};

use carapace_fs::{FsError, ReadOptions, RemoveOptions, Root, WriteOptions};
use serde::{Deserialize, Serialize};

use super::error::DockerError;

/// Where the registry lives below the state directory.
pub const REGISTRY_DIR: &str = "sandboxes/registry";

/// One container's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryEntry {
    /// Container name.
    pub container_name: String,
    /// Scope key.
    pub scope_key: String,
    /// Agent id.
    pub agent_id: String,
    /// Image it was created from.
    pub image: String,
    /// Config hash it was created with.
    pub config_hash: String,
    /// Creation time (ms since the epoch).
    pub created_at_ms: i64,
    /// Last exec (ms since the epoch).
    pub last_used_at_ms: i64,
}

/// The registry directory.
#[derive(Debug)]
pub struct Registry {
    root: Root,
    path: PathBuf,
}

impl Registry {
    /// Opens (creating when missing, mode 0700) `<state_dir>/sandboxes/registry`.
    pub fn open(state_dir: &Path) -> Result<Registry, DockerError> {
        let root = Root::open_or_create(state_dir, 0o700)?
            .create_dir_all(Path::new(REGISTRY_DIR), 0o700)?;
        Ok(Registry {
            root,
            path: state_dir.join(REGISTRY_DIR),
        })
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(name: &str) -> PathBuf {
        PathBuf::from(format!("{name}.json"))
    }

    /// The entry of `name`, if one was recorded and is readable.
    pub fn get(&self, name: &str) -> Option<RegistryEntry> {
        let bytes = self
            .root
            .read(
                &Self::file(name),
                &ReadOptions::default().with_max(64 * 1024),
            )
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records `entry` (atomic replace).
    pub fn put(&self, entry: &RegistryEntry) -> Result<(), DockerError> {
        let bytes = serde_json::to_vec_pretty(entry).unwrap_or_default();
        self.root.write(
            &Self::file(&entry.container_name),
            &bytes,
            &WriteOptions::default().with_new_file_mode(0o600),
        )?;
        Ok(())
    }

    /// Forgets `name` (absent is fine).
    pub fn remove(&self, name: &str) -> Result<(), DockerError> {
        match self
            .root
            .remove(&Self::file(name), &RemoveOptions::default())
        {
            Ok(_) | Err(FsError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names of every recorded container.
    pub fn names(&self) -> Vec<String> {
        self.root
            .list(Path::new(""))
            .map(|entries| {
                entries
                    .into_iter()
                    .filter_map(|e| e.name.strip_suffix(".json").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn put_get_remove() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let r = Registry::open(&state).unwrap();
        assert!(r.get("c1").is_none());
        let e = RegistryEntry {
            container_name: "c1".into(),
            scope_key: "agent:main".into(),
            agent_id: "main".into(),
            image: "img".into(),
            config_hash: "h".into(),
            created_at_ms: 1,
            last_used_at_ms: 2,
        };
        r.put(&e).unwrap();
        assert_eq!(r.get("c1"), Some(e.clone()));
        assert_eq!(r.names(), vec!["c1".to_string()]);
        r.remove("c1").unwrap();
        r.remove("c1").unwrap();
        assert!(r.get("c1").is_none());
        // Reopening finds the same directory.
        assert!(Registry::open(&state).unwrap().names().is_empty());
    }
}
