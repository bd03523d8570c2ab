//! Value checks on the typed configuration: number ranges, modes, paths, environment names.
//! Each refusal names the JSON path, the value and what is allowed (`CONFIG_INVALID`).
//!
//! The rule behind them: a value carapace cannot honour as written is an error, never a
//! silent fallback — `maxBodyBytes: 0` does not mean "default", `extraRoots: ["/"]` is not a
//! root worth having, and a mode that hands out setuid or world-write bits is refused.

use std::path::{Component, Path};

use super::model::{AgentSettings, ConfigFile, SandboxSettings};
use super::tools::ToolLists;
use super::values::Mode;

type Check = Result<(), (String, String)>;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const DAY: u64 = 86_400;

/// Checks of the whole file that are not per agent layer.
pub(super) fn file(f: &ConfigFile) -> Check {
    let g = &f.gateway;
    int(
        "gateway.maxBodyBytes",
        g.max_body_bytes,
        1,
        GIB,
        "1 byte to 1 GiB",
    )?;
    int(
        "gateway.requestTimeoutSeconds",
        g.request_timeout_seconds,
        1,
        DAY,
        "1 to 86400 seconds",
    )?;
    int(
        "gateway.maxConnections",
        g.max_connections,
        1,
        65_536,
        "1 to 65536",
    )?;
    int(
        "gateway.headerTimeoutSeconds",
        g.header_timeout_seconds,
        1,
        3_600,
        "1 to 3600 seconds",
    )?;
    int(
        "gateway.bodyTimeoutSeconds",
        g.body_timeout_seconds,
        1,
        DAY,
        "1 to 86400 seconds",
    )?;
    let b = &f.browser;
    int(
        "browser.maxPages",
        b.max_pages.map(u64::from),
        1,
        64,
        "1 to 64 pages",
    )?;
    int(
        "browser.timeoutSeconds",
        b.timeout_seconds,
        1,
        3_600,
        "1 to 3600 seconds",
    )?;
    abs_path("browser.executablePath", b.executable_path.as_deref())?;
    let t = &f.tools;
    int(
        "tools.fs.maxReadBytes",
        Some(t.fs.max_read_bytes),
        1,
        GIB,
        "1 byte to 1 GiB",
    )?;
    int(
        "tools.exec.timeoutSeconds",
        Some(t.exec.timeout_seconds),
        1,
        DAY,
        "1 to 86400 seconds",
    )?;
    int(
        "tools.exec.maxOutputBytes",
        Some(t.exec.max_output_bytes),
        1,
        GIB,
        "1 byte to 1 GiB",
    )?;
    file_mode("tools.fs.newFileMode", Some(t.fs.new_file_mode))?;
    file_mode("tools.fs.newDirMode", Some(t.fs.new_dir_mode))?;
    for (i, r) in t
        .message
        .outbound_media_policy
        .extra_roots
        .iter()
        .enumerate()
    {
        extra_root(
            &format!("tools.message.outboundMediaPolicy.extraRoots[{i}]"),
            r,
        )?;
    }
    let m = &f.media;
    file_mode("media.fileMode", m.file_mode)?;
    int(
        "media.maxBytes",
        m.max_bytes,
        1,
        16 * GIB,
        "1 byte to 16 GiB",
    )?;
    float(
        "media.ttlHours",
        m.ttl_hours,
        0.0,
        24.0 * 365.0 * 100.0,
        "0 to 876000 hours",
    )?;
    abs_path("media.dir", m.dir.as_deref())?;
    for (id, ch) in &f.channels {
        abs_path(&format!("channels.{id}.dir"), ch.dir.as_deref())?;
        if let Some(mb) = ch.media_max_mb
            && !(mb > 0.0 && mb <= 16_384.0)
        {
            return Err((
                format!("channels.{id}.mediaMaxMb"),
                format!("{mb} is out of range; allowed: more than 0 and at most 16384 (MiB)"),
            ));
        }
    }
    Ok(())
}

/// Checks of one agent layer (`agents.defaults`, `agents.entries.<id>`, `agents.list[i]`).
pub(super) fn agent_layer(a: &AgentSettings, path: &str) -> Check {
    abs_path(&format!("{path}.workspace"), a.workspace.as_deref())
}

/// Checks of one sandbox layer (`<agent layer>.sandbox`).
pub(super) fn sandbox_layer(sb: &SandboxSettings, path: &str) -> Check {
    if let Some(u) = sb.umask {
        let at = format!("{path}.umask");
        if u.0 > 0o777 {
            return Err((
                at,
                format!(
                    "{} is not a umask; allowed: 0000 to 0777 with the others-write bit (002) set, e.g. \"0022\" or \"0077\"",
                    crate::mode_string(u.0)
                ),
            ));
        }
        if u.0 & 0o002 == 0 {
            return Err((
                at,
                format!(
                    "umask {} lets sandboxed processes create world-writable files; allowed: a umask with the others-write bit (002) set, e.g. \"0022\" or \"0077\"",
                    crate::mode_string(u.0)
                ),
            ));
        }
    }
    if let Some(env) = sb.docker.as_ref().and_then(|d| d.env.as_ref()) {
        for (k, v) in env {
            let at = format!("{path}.docker.env");
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err((
                    at,
                    format!(
                        "{k:?} is not an environment variable name; allowed: a non-empty name without '=' or NUL"
                    ),
                ));
            }
            if v.contains('\0') {
                return Err((
                    format!("{at}.{k}"),
                    "the value contains a NUL byte; allowed: text without NUL".into(),
                ));
            }
        }
    }
    if let Some(p) = &sb.prune {
        float(
            &format!("{path}.prune.idleHours"),
            p.idle_hours,
            0.0,
            24.0 * 365.0 * 100.0,
            "0 to 876000 hours",
        )?;
        float(
            &format!("{path}.prune.maxAgeDays"),
            p.max_age_days,
            0.0,
            365.0 * 100.0,
            "0 to 36500 days",
        )?;
    }
    Ok(())
}

fn int(path: &str, v: Option<u64>, min: u64, max: u64, allowed: &str) -> Check {
    match v {
        Some(n) if n < min || n > max => Err((
            path.to_string(),
            format!("{n} is out of range; allowed: {allowed}"),
        )),
        _ => Ok(()),
    }
}

fn float(path: &str, v: Option<f64>, min: f64, max: f64, allowed: &str) -> Check {
    match v {
        Some(x) if !(x.is_finite() && x >= min && x <= max) => Err((
            path.to_string(),
            format!("{x} is out of range; allowed: {allowed}"),
        )),
        _ => Ok(()),
    }
}

/// A mode for files or directories carapace creates: no setuid, setgid, sticky or
/// world-write bit.
fn file_mode(path: &str, m: Option<Mode>) -> Check {
    let Some(Mode(m)) = m else { return Ok(()) };
    let mut bad = Vec::new();
    if m & 0o4000 != 0 {
        bad.push("setuid");
    }
    if m & 0o2000 != 0 {
        bad.push("setgid");
    }
    if m & 0o1000 != 0 {
        bad.push("sticky");
    }
    if m & 0o002 != 0 {
        bad.push("world-write");
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err((
        path.to_string(),
        format!(
            "{} has the {} bit(s); allowed: permission bits up to 0775 without world-write, e.g. \"0644\", \"0600\", \"0755\"",
            crate::mode_string(m),
            bad.join(", ")
        ),
    ))
}

/// An absolute path (after `~` expansion), without NUL.
fn abs_path(path: &str, v: Option<&str>) -> Check {
    let Some(p) = v else { return Ok(()) };
    if p.contains('\0') {
        return Err((
            path.to_string(),
            "the path contains a NUL byte; allowed: an absolute path".into(),
        ));
    }
    if !p.starts_with('/') {
        return Err((
            path.to_string(),
            format!("{p:?} is not an absolute path; allowed: an absolute path (\"~/...\" is fine)"),
        ));
    }
    Ok(())
}

/// An extra root files may be sent from: absolute, no `..`, and not `/` itself (which would
/// make every readable file on the host sendable).
fn extra_root(path: &str, r: &str) -> Check {
    abs_path(path, Some(r))?;
    let p = Path::new(r);
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err((
            path.to_string(),
            format!("{r:?} contains \"..\"; allowed: an absolute directory path without \"..\""),
        ));
    }
    if p.components()
        .all(|c| matches!(c, Component::RootDir | Component::CurDir))
    {
        return Err((
            path.to_string(),
            format!(
                "{r:?} is the filesystem root, which would make every readable file sendable; allowed: a specific directory such as \"/srv/shared\""
            ),
        ));
    }
    Ok(())
}

/// The tool-policy lists: every entry a usable name (a `group:` that exists), every exec
/// allowlist entry an absolute path or a bare name, and `allow` with `alsoAllow` at the same
/// level refused (alsoAllow adds to a profile; next to an explicit allow it is ambiguous).
pub(super) fn tools(f: &ConfigFile) -> Check {
    type Lists<'a> = Vec<(String, &'a Vec<String>)>;
    fn add<'a>(lists: &mut Lists<'a>, p: String, v: Option<&'a Vec<String>>) {
        if let Some(v) = v {
            lists.push((p, v));
        }
    }
    fn triple<'a>(lists: &mut Lists<'a>, path: &str, l: Option<&'a ToolLists>) {
        if let Some(l) = l {
            add(lists, format!("{path}.allow"), l.allow.as_ref());
            add(lists, format!("{path}.alsoAllow"), l.also_allow.as_ref());
            add(lists, format!("{path}.deny"), l.deny.as_ref());
        }
    }
    const BOTH: &str =
        "alsoAllow adds tools to the profile; next to an explicit allow list, put them in allow";
    let t = &f.tools;
    let mut lists: Lists<'_> = Vec::new();
    add(&mut lists, "tools.allow".into(), t.allow.as_ref());
    add(&mut lists, "tools.alsoAllow".into(), t.also_allow.as_ref());
    add(&mut lists, "tools.deny".into(), t.deny.as_ref());
    triple(
        &mut lists,
        "tools.sandbox.tools",
        t.sandbox.as_ref().and_then(|s| s.tools.as_ref()),
    );
    triple(
        &mut lists,
        "tools.subagents.tools",
        t.subagents.as_ref().and_then(|s| s.tools.as_ref()),
    );
    if let Some(g) = &f.gateway.tools {
        add(&mut lists, "gateway.tools.allow".into(), g.allow.as_ref());
        add(&mut lists, "gateway.tools.deny".into(), g.deny.as_ref());
    }
    if let Some(g) = f.gateway.mcp.as_ref().and_then(|m| m.tools.as_ref()) {
        add(
            &mut lists,
            "gateway.mcp.tools.allow".into(),
            g.allow.as_ref(),
        );
        add(&mut lists, "gateway.mcp.tools.deny".into(), g.deny.as_ref());
    }
    if t.allow.is_some() && t.also_allow.is_some() {
        return Err(("tools.alsoAllow".into(), BOTH.into()));
    }
    let mut exec_lists: Lists<'_> = Vec::new();
    add(
        &mut exec_lists,
        "tools.exec.allowlist".into(),
        t.exec.allowlist.as_ref(),
    );
    let agents = f
        .agents
        .entries
        .iter()
        .map(|(id, a)| (format!("agents.entries.{id}"), a))
        .chain(
            f.agents
                .list
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("agents.list[{i}]"), a)),
        );
    for (p, a) in agents {
        let Some(at) = &a.tools else { continue };
        add(&mut lists, format!("{p}.tools.allow"), at.allow.as_ref());
        add(
            &mut lists,
            format!("{p}.tools.alsoAllow"),
            at.also_allow.as_ref(),
        );
        add(&mut lists, format!("{p}.tools.deny"), at.deny.as_ref());
        triple(
            &mut lists,
            &format!("{p}.tools.sandbox.tools"),
            at.sandbox.as_ref().and_then(|s| s.tools.as_ref()),
        );
        if at.allow.is_some() && at.also_allow.is_some() {
            return Err((format!("{p}.tools.alsoAllow"), BOTH.into()));
        }
        add(
            &mut exec_lists,
            format!("{p}.tools.exec.allowlist"),
            at.exec.as_ref().and_then(|e| e.allowlist.as_ref()),
        );
    }
    for (p, l) in lists {
        for (i, e) in l.iter().enumerate() {
            crate::tools_policy::names::check_entry(e).map_err(|m| (format!("{p}[{i}]"), m))?;
        }
    }
    for (p, l) in exec_lists {
        for (i, e) in l.iter().enumerate() {
            crate::tools_policy::exec::check_entry(e).map_err(|m| (format!("{p}[{i}]"), m))?;
        }
    }
    Ok(())
}
