//! The pairing store, in OpenClaw's layout under `<state>/credentials/` (directory 0700,
//! files 0600 whatever the umask: they decide who may talk to the agent):
//!
//! - `<channel>-pairing.json`: pending requests, `{"version": 1, "requests": [{"id": <sender>,
//!   "code", "createdAt", "lastSeenAt", "meta"}]}`;
//! - `<channel>-default-allowFrom.json`: approved senders, `{"version": 1, "allowFrom": [...]}`
//!   (a legacy `<channel>-allowFrom.json` is read too and merged, as OpenClaw does).
//!
//! Codes: 8 characters from `ABCDEFGHJKLMNPQRSTUVWXYZ23456789` (no `0 O 1 I`), from the OS
//! random source; a request expires after an hour; at most three are pending per channel
//! (further strangers are ignored until one expires or is decided). A stranger who writes
//! again while their request is pending gets no second code.
//!
//! Every change is a read-modify-replace (atomic, durable). The gateway (which adds requests)
//! and `carapace pairing approve` (which removes them) are separate processes; an update made
//! in the same instant by both could be lost — the stranger then simply asks again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_fs::{FsError, ReadOptions, Root, WriteOptions};
use carapace_policy::access::normalize_id;
use serde::{Deserialize, Serialize};

use crate::InboundError;
use crate::time::{now_ms, now_rfc3339, parse_rfc3339};

/// The code alphabet (no ambiguous characters).
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Code length.
pub const CODE_LEN: usize = 8;
/// How long a request stays pending.
pub const REQUEST_TTL: Duration = Duration::from_secs(3600);
/// Pending requests per channel.
pub const MAX_PENDING: usize = 3;

/// One pending request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingRequest {
    /// The sender id.
    pub id: String,
    /// The code.
    pub code: String,
    /// When it was created.
    pub created_at: String,
    /// When the sender last wrote.
    pub last_seen_at: String,
    /// Display facts (name, chat); never used to decide.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub meta: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PendingFile {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    requests: Vec<PairingRequest>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllowFile {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    allow_from: Vec<serde_json::Value>,
}

/// What [`PairingStore::request`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new request: send the sender this code.
    Created(String),
    /// The sender already has a pending request (no second message).
    Pending(String),
    /// Too many strangers are waiting; ignored.
    Full,
}

/// The pairing store of one state directory.
#[derive(Debug, Clone)]
pub struct PairingStore {
    dir: PathBuf,
}

fn safe_channel(channel: &str) -> Result<String, InboundError> {
    let c: String = channel
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if c.is_empty() || c.chars().all(|x| x == '_') {
        return Err(InboundError::BadRequest(format!(
            "{channel:?} is not a channel id"
        )));
    }
    Ok(c)
}

/// A fresh code from the OS random source.
pub fn new_code() -> Result<String, InboundError> {
    let mut out = String::with_capacity(CODE_LEN);
    while out.len() < CODE_LEN {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| {
            InboundError::BadRequest(format!("no OS randomness for a pairing code: {e}"))
        })?;
        // 256 is a multiple of 32: no modulo bias.
        for x in b {
            if out.len() < CODE_LEN {
                out.push(CODE_ALPHABET[(x as usize) % CODE_ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

fn expired(r: &PairingRequest, now: i64) -> bool {
    match parse_rfc3339(&r.created_at) {
        Some(t) => now.saturating_sub(t) > REQUEST_TTL.as_millis() as i64,
        None => true,
    }
}

impl PairingStore {
    /// The store under `state_dir` (`<state>/credentials`).
    pub fn new(state_dir: &Path) -> PairingStore {
        PairingStore {
            dir: state_dir.join("credentials"),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the pending-requests file of `channel`.
    pub fn pending_path(&self, channel: &str) -> Result<PathBuf, InboundError> {
        Ok(self
            .dir
            .join(format!("{}-pairing.json", safe_channel(channel)?)))
    }

    /// Path of the approved-senders file of `channel`.
    pub fn allow_path(&self, channel: &str) -> Result<PathBuf, InboundError> {
        Ok(self
            .dir
            .join(format!("{}-default-allowFrom.json", safe_channel(channel)?)))
    }

    fn root(&self, create: bool) -> Result<Option<Root>, InboundError> {
        if create {
            return carapace_channels::inbound::cursor::open_private_dir(&self.dir)
                .map(Some)
                .map_err(|e| InboundError::storage("the pairing store", e));
        }
        match Root::open(&self.dir) {
            Ok(r) => Ok(Some(r)),
            Err(FsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(InboundError::storage("the pairing store", e)),
        }
    }

    fn read<T: Default + for<'de> Deserialize<'de>>(
        root: &Root,
        name: &str,
        what: &str,
    ) -> Result<T, InboundError> {
        match root.read(Path::new(name), &ReadOptions::default().with_max(4 << 20)) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| InboundError::Corrupt {
                path: root.host_path().join(name).display().to_string(),
                what: what.into(),
                reason: e.to_string(),
            }),
            Err(FsError::NotFound { .. }) => Ok(T::default()),
            Err(e) => Err(InboundError::storage(what, e)),
        }
    }

    fn write<T: Serialize>(root: &Root, name: &str, v: &T) -> Result<(), InboundError> {
        let body = serde_json::to_vec_pretty(v)
            .map_err(|e| InboundError::BadRequest(format!("cannot encode {name}: {e}")))?;
        root.write(Path::new(name), &body, &WriteOptions::secret())
            .map_err(|e| InboundError::storage(name, e))?;
        Ok(())
    }

    fn file_name(path: &Path) -> String {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Pending, unexpired requests of `channel`, oldest first.
    pub fn list(&self, channel: &str) -> Result<Vec<PairingRequest>, InboundError> {
        let name = Self::file_name(&self.pending_path(channel)?);
        let Some(root) = self.root(false)? else {
            return Ok(Vec::new());
        };
        let f: PendingFile = Self::read(&root, &name, "pairing")?;
        let now = now_ms();
        Ok(f.requests
            .into_iter()
            .filter(|r| !expired(r, now))
            .collect())
    }

    /// Records that `sender` (unknown) wrote: a new request with a fresh code, the pending one,
    /// or nothing when the channel already has [`MAX_PENDING`] requests.
    pub fn request(
        &self,
        channel: &str,
        sender: &str,
        meta: std::collections::BTreeMap<String, String>,
    ) -> Result<RequestOutcome, InboundError> {
        let name = Self::file_name(&self.pending_path(channel)?);
        let root = self
            .root(true)?
            .ok_or_else(|| InboundError::BadRequest("no pairing store".into()))?;
        let mut f: PendingFile = Self::read(&root, &name, "pairing")?;
        let now = now_ms();
        f.requests.retain(|r| !expired(r, now));
        let key = normalize_id(channel, sender);
        if let Some(r) = f
            .requests
            .iter_mut()
            .find(|r| normalize_id(channel, &r.id) == key)
        {
            r.last_seen_at = now_rfc3339();
            let code = r.code.clone();
            f.version = 1;
            Self::write(&root, &name, &f)?;
            return Ok(RequestOutcome::Pending(code));
        }
        if f.requests.len() >= MAX_PENDING {
            return Ok(RequestOutcome::Full);
        }
        let mut code = new_code()?;
        while f.requests.iter().any(|r| r.code == code) {
            code = new_code()?;
        }
        let at = now_rfc3339();
        f.requests.push(PairingRequest {
            id: sender.to_string(),
            code: code.clone(),
            created_at: at.clone(),
            last_seen_at: at,
            meta,
        });
        f.version = 1;
        Self::write(&root, &name, &f)?;
        Ok(RequestOutcome::Created(code))
    }

    fn take(&self, channel: &str, code: &str) -> Result<(Root, PairingRequest), InboundError> {
        let name = Self::file_name(&self.pending_path(channel)?);
        let none = || InboundError::NoSuchCode {
            channel: channel.to_string(),
            code: code.to_string(),
        };
        let root = self.root(false)?.ok_or_else(none)?;
        let mut f: PendingFile = Self::read(&root, &name, "pairing")?;
        let now = now_ms();
        f.requests.retain(|r| !expired(r, now));
        let want = code.trim().to_uppercase();
        let i = f
            .requests
            .iter()
            .position(|r| r.code == want)
            .ok_or_else(none)?;
        let r = f.requests.remove(i);
        f.version = 1;
        Self::write(&root, &name, &f)?;
        Ok((root, r))
    }

    /// Approves the request with `code`: its sender may DM the bot from now on.
    pub fn approve(&self, channel: &str, code: &str) -> Result<PairingRequest, InboundError> {
        let (root, r) = self.take(channel, code)?;
        self.add_allowed(&root, channel, &r.id)?;
        Ok(r)
    }

    /// Drops the request with `code` (the sender may ask again later).
    pub fn reject(&self, channel: &str, code: &str) -> Result<PairingRequest, InboundError> {
        Ok(self.take(channel, code)?.1)
    }

    fn add_allowed(&self, root: &Root, channel: &str, sender: &str) -> Result<(), InboundError> {
        let name = Self::file_name(&self.allow_path(channel)?);
        let mut f: AllowFile = Self::read(root, &name, "allowFrom")?;
        let key = normalize_id(channel, sender);
        if !f
            .allow_from
            .iter()
            .any(|v| normalize_id(channel, &id_text(v)) == key)
        {
            f.allow_from
                .push(serde_json::Value::String(sender.to_string()));
        }
        f.version = 1;
        Self::write(root, &name, &f)
    }

    /// Senders approved by pairing (the scoped file and the legacy one, merged).
    pub fn allowed(&self, channel: &str) -> Result<Vec<String>, InboundError> {
        let Some(root) = self.root(false)? else {
            return Ok(Vec::new());
        };
        let scoped = Self::file_name(&self.allow_path(channel)?);
        let legacy = format!("{}-allowFrom.json", safe_channel(channel)?);
        let mut out: Vec<String> = Vec::new();
        for name in [scoped, legacy] {
            let f: AllowFile = Self::read(&root, &name, "allowFrom")?;
            for v in f.allow_from {
                let t = id_text(&v);
                if !t.trim().is_empty() && t.trim() != "*" && !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    /// Whether `sender` was approved by pairing.
    pub fn is_allowed(&self, channel: &str, sender: &str) -> Result<bool, InboundError> {
        let key = normalize_id(channel, sender);
        Ok(self
            .allowed(channel)?
            .iter()
            .any(|a| normalize_id(channel, a) == key))
    }
}

fn id_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn codes_are_well_formed_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let c = new_code().unwrap();
            assert_eq!(c.len(), CODE_LEN);
            assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']));
            seen.insert(c);
        }
        assert!(seen.len() > 1990);
    }

    #[test]
    fn request_approve_reject_and_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let s = PairingStore::new(d.path());
        let c1 = match s.request("telegram", "42", Default::default()).unwrap() {
            RequestOutcome::Created(c) => c,
            o => panic!("{o:?}"),
        };
        assert_eq!(
            s.request("telegram", "tg:42", Default::default()).unwrap(),
            RequestOutcome::Pending(c1.clone()),
            "the same person (prefix ignored) gets no second code"
        );
        for who in ["43", "44"] {
            assert!(matches!(
                s.request("telegram", who, Default::default()).unwrap(),
                RequestOutcome::Created(_)
            ));
        }
        assert_eq!(
            s.request("telegram", "45", Default::default()).unwrap(),
            RequestOutcome::Full
        );
        assert_eq!(s.list("telegram").unwrap().len(), 3);
        assert!(!s.is_allowed("telegram", "42").unwrap());
        let r = s.approve("telegram", &c1.to_lowercase()).unwrap();
        assert_eq!(r.id, "42");
        assert!(s.is_allowed("telegram", "42").unwrap());
        assert!(!s.is_allowed("matrix", "42").unwrap(), "per channel");
        assert!(matches!(
            s.approve("telegram", &c1),
            Err(InboundError::NoSuchCode { .. })
        ));
        let c2 = s.list("telegram").unwrap()[0].code.clone();
        s.reject("telegram", &c2).unwrap();
        assert!(!s.is_allowed("telegram", "43").unwrap());
        assert_eq!(s.list("telegram").unwrap().len(), 1);
        for p in [
            s.pending_path("telegram").unwrap(),
            s.allow_path("telegram").unwrap(),
        ] {
            let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{}", p.display());
        }
        let m = std::fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700);
    }

    #[test]
    fn openclaw_files_are_read() {
        let d = tempfile::tempdir().unwrap();
        let s = PairingStore::new(d.path());
        std::fs::create_dir_all(s.dir()).unwrap();
        std::fs::write(
            s.dir().join("telegram-allowFrom.json"),
            r#"{"version":1,"allowFrom":["7", 8]}"#,
        )
        .unwrap();
        let fresh = now_rfc3339();
        std::fs::write(
            s.dir().join("telegram-pairing.json"),
            format!(
                r#"{{"version":1,"requests":[{{"id":"9","code":"ABCDEFGH","createdAt":"{fresh}","lastSeenAt":"{fresh}"}},
                     {{"id":"10","code":"HGFEDCBA","createdAt":"2020-01-01T00:00:00.000Z","lastSeenAt":"2020-01-01T00:00:00.000Z"}}]}}"#
            ),
        )
        .unwrap();
        assert!(s.is_allowed("telegram", "7").unwrap());
        assert!(s.is_allowed("telegram", "8").unwrap());
        let l = s.list("telegram").unwrap();
        assert_eq!(l.len(), 1, "the old request expired");
        s.approve("telegram", "ABCDEFGH").unwrap();
        assert!(s.is_allowed("telegram", "9").unwrap());
    }
}
