//! The gateway token: where it comes from, where it is kept, and how a presented one is checked.
//!
//! `gateway.auth.token` wins when set. Otherwise a token is generated on first run (32 bytes
//! from the OS RNG, base64url) and stored at `<state>/secrets/gateway-token`, mode 0600 in a
//! 0700 directory, written through carapace-fs with [`WriteOptions::secret`]. The check hashes
//! both sides with SHA-256 and compares the digests in constant time, so neither the content
//! nor the length of the real token leaks through timing.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use carapace_fs::{ReadOptions, Root, WriteOptions};
use carapace_policy::{CarapaceError, Config, ErrorCode, ErrorEnvelope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Relative path of the generated token under the state dir.
pub const TOKEN_REL_PATH: &str = "secrets/gateway-token";

/// Where the token in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `gateway.auth.token` in the config file.
    Config,
    /// The generated (or previously generated) file.
    File {
        /// Its host path.
        path: PathBuf,
        /// True when this run created it.
        created: bool,
    },
}

/// A token in force: the secret and the SHA-256 the checks compare against.
#[derive(Clone)]
pub struct Token {
    secret: String,
    digest: [u8; 32],
    /// Where it came from.
    pub source: TokenSource,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(***, {:?})", self.source)
    }
}

impl Token {
    /// A token from its text.
    pub fn new(secret: String, source: TokenSource) -> Token {
        let digest = Sha256::digest(secret.as_bytes()).into();
        Token {
            secret,
            digest,
            source,
        }
    }

    /// The secret itself (to print a connection snippet; never logged).
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// Constant-time check of a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&d))
    }

    /// Checks an `Authorization` header value (`Bearer <token>`, scheme case-insensitive).
    pub fn check_header(&self, header: Option<&str>) -> Result<(), ErrorEnvelope> {
        let Some(h) = header else {
            return Err(unauthorized("no bearer token was presented").with_hint(
                "send `Authorization: Bearer <token>`; `carapace up` prints where the token is",
            ));
        };
        let h = h.trim();
        let token = match h.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => {
                return Err(
                    unauthorized("the Authorization header is not a bearer token")
                        .with_hint("send `Authorization: Bearer <token>`"),
                );
            }
        };
        if self.matches(token) {
            Ok(())
        } else {
            Err(unauthorized("the bearer token is wrong").with_hint(
                "use gateway.auth.token from the config, or the token in <state>/secrets/gateway-token",
            ))
        }
    }
}

fn unauthorized(msg: &str) -> ErrorEnvelope {
    ErrorEnvelope::new(ErrorCode::Unauthorized, msg)
}

/// The token the gateway must require: the configured one, else the stored one, else a new one
/// generated and stored now.
pub fn ensure_token(config: &Config) -> Result<Token, ErrorEnvelope> {
    if let Some(secret) = &config.file.gateway.auth.token {
        return match secret.expose() {
            Some(t) if !t.is_empty() => Ok(Token::new(t.to_string(), TokenSource::Config)),
            _ => Err(ErrorEnvelope::new(
                ErrorCode::ConfigInvalid,
                "gateway.auth.token is set but empty, or references an environment variable that is not set",
            )
            .with_hint("set the variable, or remove gateway.auth.token to use a generated token")
            .with_detail("path", "gateway.auth.token")),
        };
    }
    load_or_create_file_token(&config.state_dir)
}

/// Reads `<state>/secrets/gateway-token`, creating it (and the state and secrets dirs) if
/// missing.
pub fn load_or_create_file_token(state_dir: &Path) -> Result<Token, ErrorEnvelope> {
    let root = open_state_root(state_dir)?;
    root.create_dir_all(Path::new("secrets"), 0o700)
        .map_err(|e| e.to_envelope())?;
    // An older or hand-made secrets dir may be wider; secrets/ is 0700 by contract.
    root.set_mode(Path::new("secrets"), 0o700)
        .map_err(|e| e.to_envelope())?;
    let path = state_dir.join(TOKEN_REL_PATH);
    if let Some(t) = read_token_file(&root)? {
        return Ok(Token::new(
            t,
            TokenSource::File {
                path,
                created: false,
            },
        ));
    }
    let fresh = generate_token()?;
    match root.create(
        Path::new(TOKEN_REL_PATH),
        format!("{fresh}\n").as_bytes(),
        &WriteOptions::secret(),
    ) {
        Ok(_) => Ok(Token::new(
            fresh,
            TokenSource::File {
                path,
                created: true,
            },
        )),
        // Another process created it between our read and our create: use theirs.
        Err(e) if e.code() == ErrorCode::AlreadyExists => match read_token_file(&root)? {
            Some(t) => Ok(Token::new(
                t,
                TokenSource::File {
                    path,
                    created: false,
                },
            )),
            None => Err(ErrorEnvelope::new(
                ErrorCode::Internal,
                "the gateway token file appeared but is empty",
            )),
        },
        Err(e) => Err(e.to_envelope()),
    }
}

/// Reads the stored token without creating anything (clients).
pub fn read_stored_token(state_dir: &Path) -> Result<Option<String>, ErrorEnvelope> {
    let root = match Root::open(state_dir) {
        Ok(r) => r,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e.to_envelope()),
    };
    read_token_file(&root)
}

fn read_token_file(root: &Root) -> Result<Option<String>, ErrorEnvelope> {
    match root.read(
        Path::new(TOKEN_REL_PATH),
        &ReadOptions::default().with_max(4096),
    ) {
        Ok(bytes) => {
            let t = String::from_utf8_lossy(&bytes).trim().to_string();
            Ok((!t.is_empty()).then_some(t))
        }
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.to_envelope()),
    }
}

/// Creates the state dir (0700 for each directory this call creates, through carapace-fs) and
/// opens it as a root.
pub fn open_state_root(state_dir: &Path) -> Result<Root, ErrorEnvelope> {
    Root::open_or_create(state_dir, 0o700).map_err(|e| {
        let mut env = e.to_envelope();
        env.message = format!(
            "cannot create the state dir {}: {}",
            state_dir.display(),
            env.message
        );
        env.with_hint("set $CARAPACE_STATE_DIR to a directory you can write")
            .with_detail("path", state_dir.display().to_string())
    })
}

/// 32 random bytes from the OS, base64url without padding (43 characters).
pub fn generate_token() -> Result<String, ErrorEnvelope> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| {
        ErrorEnvelope::new(
            ErrorCode::Internal,
            format!("the OS random generator failed: {e}"),
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        let t = Token::new("s3cret".into(), TokenSource::Config);
        assert!(t.check_header(Some("Bearer s3cret")).is_ok());
        assert!(t.check_header(Some("bearer   s3cret ")).is_ok());
        for h in [
            None,
            Some("Bearer"),
            Some("Bearer s3cre"),
            Some("Basic s3cret"),
            Some("s3cret"),
        ] {
            assert_eq!(
                t.check_header(h).unwrap_err().code,
                ErrorCode::Unauthorized,
                "{h:?}"
            );
        }
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn generated_token_is_stored_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let a = load_or_create_file_token(&state).unwrap();
        assert!(matches!(a.source, TokenSource::File { created: true, .. }));
        assert_eq!(a.expose().len(), 43);
        let mode = std::fs::metadata(state.join(TOKEN_REL_PATH))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(state.join("secrets"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        let b = load_or_create_file_token(&state).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert!(matches!(b.source, TokenSource::File { created: false, .. }));
        assert_eq!(
            read_stored_token(&state).unwrap().as_deref(),
            Some(a.expose())
        );
    }
}
