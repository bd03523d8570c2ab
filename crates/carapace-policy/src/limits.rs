//! Resource limits of a sandbox (pids, memory, CPUs): the values, their defaults and how they
//! are written. Pure; the sandbox crate decides how a host enforces them (cgroup v2, or
//! rlimits where no cgroup is delegated) and the Docker engine enforces them for containers.
//!
//! The keys are OpenClaw's Docker keys, `sandbox.docker.pidsLimit`, `memory` and `cpus`, and
//! they apply to every backend: carapace treats `sandbox.docker.*` as the sandbox's settings
//! (bwrap already takes its network, environment and binds from there), so one sandbox has one
//! set of limits whichever backend runs it. Unlike OpenClaw, an unset key has a default: a
//! runaway command must not take the host down with it.

use serde::Serialize;

use crate::resolve::EffectiveDocker;

/// Default `pidsLimit`: processes and threads one sandbox may hold at once.
pub const DEFAULT_PIDS: u64 = 512;
/// Default `memory`: 2 GiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 2 << 30;
/// Default `cpus`.
pub const DEFAULT_CPUS: f64 = 2.0;
/// The engine's (and carapace's) smallest memory limit: 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;

/// One limit and whether it was configured or is carapace's default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit<T> {
    /// `None`: unlimited (only `pidsLimit` can say so: 0 or less, as in OpenClaw).
    pub value: Option<T>,
    /// True when the config set it, false for carapace's default.
    pub configured: bool,
}

/// The limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Processes and threads at once (`docker.pidsLimit`).
    pub pids: Limit<u64>,
    /// Memory in bytes (`docker.memory`).
    pub memory_bytes: Limit<u64>,
    /// CPUs (`docker.cpus`).
    pub cpus: Limit<f64>,
}

impl Limits {
    /// The limits the effective Docker settings ask for, defaults filled in. A memory value
    /// that does not parse was refused at load; here it falls back to the default.
    pub fn of(d: &EffectiveDocker) -> Limits {
        let pids = match d.pids_limit {
            Some(p) if p <= 0 => Limit {
                value: None,
                configured: true,
            },
            Some(p) => Limit {
                value: Some(u64::try_from(p).unwrap_or(u64::MAX)),
                configured: true,
            },
            None => Limit {
                value: Some(DEFAULT_PIDS),
                configured: false,
            },
        };
        let memory_bytes = match d.memory.as_deref().and_then(|m| parse_memory(m).ok()) {
            Some(b) => Limit {
                value: Some(b),
                configured: true,
            },
            None => Limit {
                value: Some(DEFAULT_MEMORY_BYTES),
                configured: false,
            },
        };
        let cpus = match d.cpus {
            Some(c) => Limit {
                value: Some(c),
                configured: true,
            },
            None => Limit {
                value: Some(DEFAULT_CPUS),
                configured: false,
            },
        };
        Limits {
            pids,
            memory_bytes,
            cpus,
        }
    }
}

/// Docker memory sizes: a number with an optional `b`, `k`, `m`, `g` (or `t`) unit, an
/// optional trailing `b`/`ib`, case-insensitive ("512m", "1g", "1.5GiB", "268435456"); at
/// least 6 MiB. The error says what is expected.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a memory size like \"512m\" or \"2g\" (at least 6m)");
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult): (&str, f64) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1024.0),
        Some('m') => (&t[..t.len() - 1], 1024.0 * 1024.0),
        Some('g') => (&t[..t.len() - 1], 1024.0 * 1024.0 * 1024.0),
        Some('t') => (&t[..t.len() - 1], 1024.0f64.powi(4)),
        _ => (t, 1.0),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = n * mult;
    #[allow(clippy::cast_precision_loss)]
    let min = MIN_MEMORY_BYTES as f64;
    if !bytes.is_finite() || !(min..=9.0e18).contains(&bytes) {
        return Err(bad());
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes as u64)
}

/// `2 GiB`, `512 MiB`, `6.5 MiB`: for messages and `explain`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (u, n) in UNITS {
        if b >= n {
            #[allow(clippy::cast_precision_loss)]
            let v = b as f64 / n as f64;
            return if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0} {u}")
            } else {
                format!("{v:.1} {u}")
            };
        }
    }
    format!("{b} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_memory("268435456").unwrap(), 268_435_456);
        for bad in ["", "x", "12x", "1k", "-5g", "nan"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert_eq!(human_bytes(2 << 30), "2 GiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(100), "100 B");
    }

    #[test]
    fn defaults_fill_unset_keys() {
        let mut d = crate::resolve::EffectiveDocker {
            image: String::new(),
            container_prefix: String::new(),
            network: "none".into(),
            binds: vec![],
            env: Default::default(),
            user: None,
            read_only_root: true,
            tmpfs: vec![],
            cap_drop: vec![],
            memory: None,
            cpus: None,
            pids_limit: None,
        };
        let l = Limits::of(&d);
        assert_eq!(l.pids.value, Some(DEFAULT_PIDS));
        assert!(!l.pids.configured);
        assert_eq!(l.memory_bytes.value, Some(DEFAULT_MEMORY_BYTES));
        d.pids_limit = Some(0);
        d.memory = Some("256m".into());
        d.cpus = Some(0.5);
        let l = Limits::of(&d);
        assert_eq!(l.pids.value, None);
        assert!(l.pids.configured);
        assert_eq!(l.memory_bytes.value, Some(256 << 20));
        assert_eq!(l.cpus.value, Some(0.5));
    }
}
