//! Per-channel status: connection, last error, counters. Kept in memory for the gateway and
//! written to `<state>/channels/<channel>/status.json` (0600) so `carapace channels status`
//! can show it without a running gateway to ask (with the writer's pid, so a stale file is
//! told apart from a running gateway).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use carapace_channels::inbound::cursor::{channel_state_dir, open_private_dir};
use carapace_channels::inbound::{ConnectionState, ConnectionStats};
use carapace_fs::{ReadOptions, Root, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::time::now_rfc3339;

const FILE: &str = "status.json";
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// What happened to messages, counted since the service started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Messages handed over by the source (duplicates included).
    pub received: u64,
    /// Redeliveries ignored.
    pub duplicates: u64,
    /// Turns run and replies sent.
    pub answered: u64,
    /// Pairing codes sent.
    pub paired: u64,
    /// Dropped by the access rules.
    pub dropped: u64,
    /// Dropped by the rate limits.
    pub limited: u64,
    /// Turns or replies that failed.
    pub failed: u64,
    /// Events the source could not hand over (encrypted).
    pub skipped: u64,
}

/// Which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// [`Counters::received`]
    Received,
    /// [`Counters::duplicates`]
    Duplicates,
    /// [`Counters::answered`]
    Answered,
    /// [`Counters::paired`]
    Paired,
    /// [`Counters::dropped`]
    Dropped,
    /// [`Counters::limited`]
    Limited,
    /// [`Counters::failed`]
    Failed,
    /// [`Counters::skipped`]
    Skipped,
}

/// One channel's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    /// Channel id.
    pub channel: String,
    /// The source's connection.
    pub connection: ConnectionState,
    /// The process that wrote this.
    pub pid: u32,
    /// When the service started the channel.
    pub started_at: String,
    /// Last change.
    pub updated_at: String,
    /// The last error (no secrets), and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last error happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// When the last message arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<String>,
    /// Counters.
    pub counters: Counters,
    /// The source's own connection counters (connects, reconnects, resumes, delivered), for
    /// the sources that keep them (Discord Gateway, Slack Socket Mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<ConnectionStats>,
}

struct Entry {
    status: ChannelStatus,
    written: Option<Instant>,
    dirty: bool,
}

/// The status of every channel of a service.
pub struct StatusBoard {
    state_dir: PathBuf,
    map: Mutex<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard").finish_non_exhaustive()
    }
}

impl StatusBoard {
    /// A board writing under `state_dir`.
    pub fn new(state_dir: &Path) -> StatusBoard {
        StatusBoard {
            state_dir: state_dir.to_path_buf(),
            map: Mutex::new(BTreeMap::new()),
        }
    }

    fn with<R>(&self, channel: &str, force: bool, f: impl FnOnce(&mut ChannelStatus) -> R) -> R {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(channel.to_string()).or_insert_with(|| Entry {
            status: ChannelStatus {
                channel: channel.to_string(),
                connection: ConnectionState::Connecting,
                pid: std::process::id(),
                started_at: now_rfc3339(),
                updated_at: now_rfc3339(),
                last_error: None,
                last_error_at: None,
                last_message_at: None,
                counters: Counters::default(),
                link: None,
            },
            written: None,
            dirty: false,
        });
        let r = f(&mut e.status);
        e.status.updated_at = now_rfc3339();
        let due = force || e.written.is_none_or(|w| w.elapsed() >= WRITE_EVERY);
        e.dirty = !due;
        if due {
            e.written = Some(Instant::now());
            let snapshot = e.status.clone();
            drop(m);
            self.persist(&snapshot);
        }
        r
    }

    fn persist(&self, s: &ChannelStatus) {
        let dir = channel_state_dir(&self.state_dir, &s.channel, None);
        let res = open_private_dir(&dir).and_then(|root| {
            let body = serde_json::to_vec_pretty(s).unwrap_or_default();
            root.write(
                Path::new(FILE),
                &body,
                &WriteOptions::secret().with_durable(false),
            )
        });
        if let Err(e) = res {
            tracing::debug!(channel = %s.channel, error = %e, "could not write the channel status");
        }
    }

    /// Registers a channel (state `connecting`).
    pub fn register(&self, channel: &str) {
        self.with(channel, true, |_| {});
    }

    /// A connection change.
    pub fn set_state(&self, channel: &str, state: ConnectionState) {
        self.with(channel, true, |s| {
            let err = match &state {
                ConnectionState::Reconnecting { error, .. } => Some(error.clone()),
                ConnectionState::Stopped { error } => error.clone(),
                _ => None,
            };
            if let Some(e) = err {
                s.last_error = Some(e);
                s.last_error_at = Some(now_rfc3339());
            }
            s.connection = state;
        });
    }

    /// An error that is not a connection change (a failed reply, an encrypted event).
    pub fn error(&self, channel: &str, error: &str) {
        self.with(channel, true, |s| {
            s.last_error = Some(error.to_string());
            s.last_error_at = Some(now_rfc3339());
        });
    }

    /// Counts one event.
    pub fn count(&self, channel: &str, c: Counter) {
        self.with(channel, false, |s| {
            let n = &mut s.counters;
            match c {
                Counter::Received => {
                    n.received += 1;
                    s.last_message_at = Some(now_rfc3339());
                }
                Counter::Duplicates => n.duplicates += 1,
                Counter::Answered => n.answered += 1,
                Counter::Paired => n.paired += 1,
                Counter::Dropped => n.dropped += 1,
                Counter::Limited => n.limited += 1,
                Counter::Failed => n.failed += 1,
                Counter::Skipped => n.skipped += 1,
            }
        });
    }

    /// Records a source's connection counters; written with the next flush when they changed.
    pub fn set_link(&self, channel: &str, link: ConnectionStats) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = m.get_mut(channel)
            && e.status.link.as_ref() != Some(&link)
        {
            e.status.link = Some(link);
            e.status.updated_at = now_rfc3339();
            e.dirty = true;
        }
    }

    /// Writes the statuses changed since their last write (the service calls this every
    /// second, so counters held back by the write throttle reach the file).
    pub fn flush_dirty(&self) {
        let dirty: Vec<ChannelStatus> = {
            let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
            m.values_mut()
                .filter(|e| e.dirty)
                .map(|e| {
                    e.dirty = false;
                    e.written = Some(Instant::now());
                    e.status.clone()
                })
                .collect()
        };
        for s in dirty {
            self.persist(&s);
        }
    }

    /// Writes every channel's status now.
    pub fn flush(&self) {
        let all: Vec<ChannelStatus> = {
            let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
            m.values().map(|e| e.status.clone()).collect()
        };
        for s in all {
            self.persist(&s);
        }
    }

    /// Every channel's status.
    pub fn snapshot(&self) -> Vec<ChannelStatus> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.values().map(|e| e.status.clone()).collect()
    }
}

/// The status a service last wrote for `channel` (for the CLI).
pub fn read_status(state_dir: &Path, channel: &str) -> Option<ChannelStatus> {
    let dir = channel_state_dir(state_dir, channel, None);
    let root = Root::open(&dir).ok()?;
    let b = root
        .read(Path::new(FILE), &ReadOptions::default().with_max(1 << 20))
        .ok()?;
    serde_json::from_slice(&b).ok()
}

/// The connection figures of `statuses` in the Prometheus text format (for the gateway's
/// `GET /metrics`, appended to its own registry's output): per channel, whether it is
/// connected, and the source's connects, reconnects, resumes and delivered messages (sources
/// without their own counters report only the state), plus the service's received, answered
/// and failed counts.
pub fn prometheus_text(statuses: &[ChannelStatus]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let label = |c: &str| c.replace('\\', "\\\\").replace('"', "\\\"");
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (channel, v) in rows {
            let _ = writeln!(out, "{name}{{channel=\"{}\"}} {v}", label(&channel));
        }
    };
    let rows = |f: &dyn Fn(&ChannelStatus) -> Option<u64>| -> Vec<(String, u64)> {
        statuses
            .iter()
            .filter_map(|s| f(s).map(|v| (s.channel.clone(), v)))
            .collect()
    };
    family(
        "carapace_inbound_connected",
        "gauge",
        "1 while the channel's inbound connection is up, else 0",
        rows(&|s| Some(u64::from(s.connection == ConnectionState::Connected))),
    );
    family(
        "carapace_inbound_connects_total",
        "counter",
        "Connections that reached the platform's ready point",
        rows(&|s| s.link.as_ref().map(|l| l.connects)),
    );
    family(
        "carapace_inbound_reconnects_total",
        "counter",
        "Connections lost or refreshed and opened again",
        rows(&|s| s.link.as_ref().map(|l| l.reconnects)),
    );
    family(
        "carapace_inbound_resumes_total",
        "counter",
        "Sessions resumed without a new login (Discord)",
        rows(&|s| s.link.as_ref().map(|l| l.resumes)),
    );
    family(
        "carapace_inbound_messages_received_total",
        "counter",
        "Messages handed over by the channel's source (duplicates included)",
        rows(&|s| Some(s.counters.received)),
    );
    family(
        "carapace_inbound_messages_answered_total",
        "counter",
        "Turns run and replies sent",
        rows(&|s| Some(s.counters.answered)),
    );
    family(
        "carapace_inbound_messages_failed_total",
        "counter",
        "Turns or replies that failed",
        rows(&|s| Some(s.counters.failed)),
    );
    out
}
