//! Finding the state directory and the config file, and reading it through carapace-fs.

use std::path::{Path, PathBuf};

use carapace_fs::{ReadOptions, Root, SymlinkPolicy};
use carapace_policy::{CarapaceError, Config, ErrorCode, ErrorEnvelope, LoadEnv};

/// Largest config file carapace reads.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// `$CARAPACE_STATE_DIR`, else `~/.carapace`. A relative `$CARAPACE_STATE_DIR` is taken from
/// the current directory (`.` components dropped): every directory carapace creates is made
/// from an absolute path (`Root::open_or_create`).
pub fn state_dir() -> PathBuf {
    let dir = match std::env::var_os("CARAPACE_STATE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(home()).join(".carapace"),
    };
    if dir.is_absolute() {
        return dir;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    cwd.join(dir)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Creates the state dir (0700 for every directory this creates, whatever the umask) the way
/// `carapace up` does, so the first command a user runs — whichever it is — leaves the same
/// private directory behind. An existing directory is left as it is.
pub fn ensure_state_dir(dir: &Path) -> Result<(), ErrorEnvelope> {
    if dir.is_dir() {
        return Ok(());
    }
    Root::open_or_create(dir, 0o700).map(drop).map_err(|e| {
        let mut env = e.to_envelope();
        if env.hint.is_none() {
            env = env.with_hint("set $CARAPACE_STATE_DIR to a directory you can write");
        }
        env.with_detail("stateDir", dir.display().to_string())
    })
}

/// `$HOME`, else `/`.
pub fn home() -> String {
    std::env::var("HOME").unwrap_or_else(|_| "/".to_string())
}

/// Where the config comes from: `--config`, else `$CARAPACE_CONFIG`, else the state dir's file.
/// The flag says whether the user named it (then a missing file is an error).
pub fn config_path(flag: Option<&Path>) -> (PathBuf, bool) {
    if let Some(p) = flag {
        return (p.to_path_buf(), true);
    }
    match std::env::var_os("CARAPACE_CONFIG") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (state_dir().join("carapace.json5"), false),
    }
}

/// Loads the config; a missing default file means all defaults. With `log_warnings`, each
/// warning (ignored OpenClaw sections, unset secrets) is logged once; `config validate|show`
/// print them themselves.
pub fn load_config(flag: Option<&Path>, log_warnings: bool) -> Result<Config, ErrorEnvelope> {
    let (path, named) = config_path(flag);
    let state = state_dir();
    ensure_state_dir(&state)?;
    let text = match read_config_text(&path) {
        Ok(t) => t,
        Err(e) if e.code == ErrorCode::NotFound && !named => return Ok(Config::defaults(state)),
        Err(e) if e.code == ErrorCode::NotFound => {
            return Err(ErrorEnvelope::new(
                ErrorCode::ConfigInvalid,
                format!("config file {} does not exist", path.display()),
            )
            .with_hint(
                "check --config / $CARAPACE_CONFIG, or remove it to run on the embedded defaults",
            )
            .with_detail("file", path.display().to_string()));
        }
        Err(e) => return Err(e),
    };
    let home = home();
    let var = |name: &str| std::env::var(name).ok();
    let config = Config::parse(
        &text,
        &path.display().to_string(),
        &LoadEnv {
            var: &var,
            home: &home,
            state_dir: state,
        },
    )
    .map_err(|e| e.to_envelope())?;
    carapace_sandbox::validate::check_config(&config, &path.display().to_string())
        .map_err(|e| e.to_envelope())?;
    if log_warnings {
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
    }
    Ok(config)
}

/// Reads the file through the safe layer: a regular file (no FIFO can block), size-capped. The
/// user may keep the config behind a symlink (dotfile managers do), so the path is canonicalised
/// first; containment is not the point here, the file is the user's own choice.
fn read_config_text(path: &Path) -> Result<String, ErrorEnvelope> {
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ErrorEnvelope::new(
                ErrorCode::NotFound,
                format!("{} does not exist", path.display()),
            ));
        }
        Err(e) => {
            return Err(ErrorEnvelope::new(
                ErrorCode::ConfigInvalid,
                format!("cannot resolve {}: {e}", path.display()),
            )
            .with_detail("file", path.display().to_string()));
        }
    };
    let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
        return Err(ErrorEnvelope::new(
            ErrorCode::ConfigInvalid,
            format!("{} is not a file", path.display()),
        ));
    };
    // Whatever stops the read (a FIFO, a directory, a device, a file over the size bound, a
    // permission) is a config problem: CONFIG_INVALID, exit 2, with the reason.
    let invalid = |e: ErrorEnvelope| {
        let what = match e.code {
            ErrorCode::NotRegularFile => "is not a regular file".to_string(),
            ErrorCode::TooLarge => format!(
                "is larger than the {} MiB carapace reads as a config file",
                MAX_CONFIG_BYTES / (1024 * 1024)
            ),
            _ => format!("cannot be read ({})", e.code),
        };
        ErrorEnvelope::new(
            ErrorCode::ConfigInvalid,
            format!("config file {} {what}: {}", path.display(), e.message),
        )
        .with_hint("point --config / $CARAPACE_CONFIG at a regular JSON5 file")
        .with_detail("file", path.display().to_string())
        .with_detail("reason", e.code.as_str())
    };
    let root = Root::open(dir).map_err(|e| invalid(e.to_envelope()))?;
    let opts = ReadOptions {
        max_bytes: Some(MAX_CONFIG_BYTES),
        symlinks: SymlinkPolicy::RefuseFinal,
        ..ReadOptions::default()
    };
    let bytes = root
        .read(Path::new(name), &opts)
        .map_err(|e| invalid(e.to_envelope()))?;
    String::from_utf8(bytes).map_err(|_| {
        ErrorEnvelope::new(
            ErrorCode::ConfigInvalid,
            format!("{} is not UTF-8 text", path.display()),
        )
        .with_detail("file", path.display().to_string())
    })
}
