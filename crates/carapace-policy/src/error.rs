//! Stable error codes, the JSON error envelope, and the one table that maps a code to an HTTP
//! status and a CLI exit code (docs/errors.md).
//!
//! Every crate defines its own `thiserror` enum and implements [`CarapaceError`] for it; the
//! CLI, HTTP and MCP layers only ever see the [`ErrorEnvelope`] built from it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, http $http:literal, exit $exit:literal; )*) => {
        /// A stable, machine-readable error code. The string form never changes once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The SCREAMING_SNAKE wire form.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }

            /// The HTTP status a gateway answers with for this code.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $http, )* }
            }

            /// The CLI exit code: 1 internal, 2 usage/config, 3 refused by policy or input,
            /// 4 channel or backend failure.
            pub fn exit_code(self) -> i32 {
                match self { $( ErrorCode::$variant => $exit, )* }
            }

            /// Parses the wire form.
            pub fn parse(s: &str) -> Option<ErrorCode> {
                match s { $( $name => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

// The one table (docs/errors.md). Change a row here and every surface follows.
error_codes! {
    /// The configuration file is invalid.
    ConfigInvalid = "CONFIG_INVALID", http 400, exit 2;
    /// The request or arguments are malformed.
    BadRequest = "BAD_REQUEST", http 400, exit 2;
    /// Missing or wrong gateway token.
    Unauthorized = "UNAUTHORIZED", http 401, exit 3;
    /// The named file, tool or object does not exist.
    NotFound = "NOT_FOUND", http 404, exit 3;
    /// The target already exists (no-clobber create or rename).
    AlreadyExists = "ALREADY_EXISTS", http 409, exit 3;
    /// The path resolves outside the root it must stay in.
    PathOutsideRoot = "PATH_OUTSIDE_ROOT", http 403, exit 3;
    /// A symlink was met where none is allowed.
    SymlinkRefused = "SYMLINK_REFUSED", http 403, exit 3;
    /// A hardlinked file (nlink > 1) was refused.
    HardlinkRefused = "HARDLINK_REFUSED", http 403, exit 3;
    /// FIFO, socket, device or directory where a regular file is required.
    NotRegularFile = "NOT_REGULAR_FILE", http 400, exit 3;
    /// Input or file larger than the configured limit.
    TooLarge = "TOO_LARGE", http 413, exit 3;
    /// Write to a read-only workspace mount.
    WorkspaceReadOnly = "WORKSPACE_READ_ONLY", http 403, exit 3;
    /// The session's policy gives no access to that part of the workspace.
    WorkspaceAccessDenied = "WORKSPACE_ACCESS_DENIED", http 403, exit 3;
    /// The operating system refused access (EACCES/EPERM).
    PermissionDenied = "PERMISSION_DENIED", http 403, exit 3;
    /// Outbound media file is not readable by others (0600, 0640, ...).
    OutboundMediaPermsTooRestrictive = "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE", http 403, exit 3;
    /// Outbound media file is not inside any allowed root.
    OutboundMediaOutsideRoots = "OUTBOUND_MEDIA_OUTSIDE_ROOTS", http 403, exit 3;
    /// Outbound media file exceeds the channel's limit.
    OutboundMediaTooLarge = "OUTBOUND_MEDIA_TOO_LARGE", http 413, exit 3;
    /// The channel is not configured.
    ChannelNotConfigured = "CHANNEL_NOT_CONFIGURED", http 400, exit 2;
    /// The channel platform refused the credentials.
    ChannelUnauthorized = "CHANNEL_UNAUTHORIZED", http 502, exit 4;
    /// The channel platform rate-limited us past the retry budget.
    ChannelRateLimited = "CHANNEL_RATE_LIMITED", http 429, exit 4;
    /// The channel platform rejected the request.
    ChannelRejected = "CHANNEL_REJECTED", http 502, exit 4;
    /// The channel platform could not be reached (or the outcome is unknown).
    ChannelUnreachable = "CHANNEL_UNREACHABLE", http 502, exit 4;
    /// The configured sandbox backend is not available.
    SandboxBackendUnavailable = "SANDBOX_BACKEND_UNAVAILABLE", http 503, exit 4;
    /// A tool call ran past the gateway's request budget.
    Timeout = "TIMEOUT", http 504, exit 4;
    /// No model is configured for the agent, or the one named is not (or its key is unset).
    ModelNotConfigured = "MODEL_NOT_CONFIGURED", http 400, exit 2;
    /// The model provider refused the credentials (401/403).
    ModelUnauthorized = "MODEL_UNAUTHORIZED", http 502, exit 4;
    /// The model provider rate-limited us past the retry budget (429).
    ModelRateLimited = "MODEL_RATE_LIMITED", http 429, exit 4;
    /// The model provider could not be reached or kept failing (5xx, timeouts, broken streams).
    ModelUnavailable = "MODEL_UNAVAILABLE", http 502, exit 4;
    /// The model provider rejected the request (400/404/413/422) or answered something unusable.
    ModelRejected = "MODEL_REJECTED", http 502, exit 4;
    /// A turn ran out of its budget (rounds or wall time) before a final answer.
    TurnLimitReached = "TURN_LIMIT_REACHED", http 504, exit 4;
    /// A turn was cancelled (`/stop`, `/new`, or the runtime shutting down).
    TurnCancelled = "TURN_CANCELLED", http 409, exit 3;
    /// Too many messages are already queued behind the session's running turn.
    SessionBusy = "SESSION_BUSY", http 429, exit 3;
    /// A bug. Always carries a request id.
    Internal = "INTERNAL", http 500, exit 1;
    /// The client did not send the request (headers or body) within the gateway's deadline.
    RequestTimeout = "REQUEST_TIMEOUT", http 408, exit 4;
    /// A scan stopped at one of its documented bounds before it covered everything.
    ScanIncomplete = "SCAN_INCOMPLETE", http 422, exit 3;
    /// A sandbox mount source is no longer what was validated (a symlink in its path, or a
    /// different directory): nothing runs and no file tool follows it.
    SandboxMountChanged = "SANDBOX_MOUNT_CHANGED", http 409, exit 3;
    /// The tool policy does not let this session use the tool on this surface (the setting is
    /// named). 404 like OpenClaw's "Tool not available": a denied tool is not listed either.
    ToolDenied = "TOOL_DENIED", http 404, exit 3;
    /// `exec` under `tools.exec.security: "allowlist"` refused a command line.
    CommandNotAllowed = "COMMAND_NOT_ALLOWED", http 403, exit 3;
    /// An `idempotencyKey` was used again for a different call.
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED", http 409, exit 3;
    /// The target room is end-to-end encrypted and carapace has no encryption: it sends
    /// nothing there rather than plaintext.
    ChannelRoomEncrypted = "CHANNEL_ROOM_ENCRYPTED", http 403, exit 3;
    /// The address to listen on is taken by another process (EADDRINUSE): an environment
    /// failure, not a bad request.
    AddressInUse = "ADDRESS_IN_USE", http 503, exit 4;
    /// `carapace doctor` found files an outbound send would refuse and left some unfixed.
    FilesNotSendable = "FILES_NOT_SENDABLE", http 422, exit 3;
    /// The filesystem is full (ENOSPC) or the user's quota is used up (EDQUOT).
    StorageFull = "STORAGE_FULL", http 507, exit 4;
    /// The filesystem is mounted read-only (EROFS).
    ReadOnlyFilesystem = "READ_ONLY_FILESYSTEM", http 507, exit 4;
    /// The device reported an I/O error (EIO): a disk or network-filesystem problem.
    IoError = "IO_ERROR", http 503, exit 4;
    /// The process or the system ran out of file descriptors or memory (EMFILE, ENFILE, ENOMEM).
    ResourceExhausted = "RESOURCE_EXHAUSTED", http 503, exit 4;
    /// A process could not be started (its working directory or program vanished, a limit).
    SpawnFailed = "SPAWN_FAILED", http 503, exit 4;
    /// The network policy refused a destination: a private, loopback or link-local address,
    /// or a redirect to one.
    NetworkPolicyRefused = "NETWORK_POLICY_REFUSED", http 403, exit 3;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ErrorCode::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {s:?}")))
    }
}

/// Implemented by every typed error in carapace, so any of them can become an envelope.
pub trait CarapaceError: std::error::Error {
    /// The stable code.
    fn code(&self) -> ErrorCode;
    /// What the user can do about it, if anything useful can be said.
    fn hint(&self) -> Option<String> {
        None
    }
    /// The facts: path, mode as "0600", limit, channel, upstream status...
    fn details(&self) -> Map<String, Value> {
        Map::new()
    }
    /// Builds the wire envelope.
    fn to_envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            code: self.code(),
            message: self.to_string(),
            hint: self.hint(),
            details: self.details(),
        }
    }
}

/// The `error` object of `{"ok": false, "error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// Stable code.
    pub code: ErrorCode,
    /// One human sentence.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Facts.
    #[serde(default)]
    pub details: Map<String, Value>,
}

impl ErrorEnvelope {
    /// A bare envelope.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            code,
            message: message.into(),
            hint: None,
            details: Map::new(),
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds one detail.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// `{"ok": false, "error": {...}}`.
    pub fn to_response_json(&self) -> Value {
        serde_json::json!({ "ok": false, "error": self })
    }
}

impl std::fmt::Display for ErrorEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorEnvelope {}

impl CarapaceError for ErrorEnvelope {
    fn code(&self) -> ErrorCode {
        self.code
    }
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
    fn details(&self) -> Map<String, Value> {
        self.details.clone()
    }
    fn to_envelope(&self) -> ErrorEnvelope {
        self.clone()
    }
}

/// Formats a Unix mode as the 4-digit octal string used everywhere in carapace ("0644").
pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
            assert!(
                c.as_str()
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch == '_')
            );
        }
    }

    #[test]
    fn only_internal_is_500_and_exit_1() {
        for c in ErrorCode::ALL {
            assert_eq!(c.http_status() == 500, *c == ErrorCode::Internal, "{c}");
            assert_eq!(c.exit_code() == 1, *c == ErrorCode::Internal, "{c}");
            assert!((1..=4).contains(&c.exit_code()));
        }
    }

    #[test]
    fn spec_statuses() {
        assert_eq!(
            ErrorCode::OutboundMediaPermsTooRestrictive.http_status(),
            403
        );
        assert_eq!(ErrorCode::OutboundMediaPermsTooRestrictive.exit_code(), 3);
        assert_eq!(ErrorCode::ConfigInvalid.exit_code(), 2);
        assert_eq!(ErrorCode::ChannelRateLimited.http_status(), 429);
        assert_eq!(ErrorCode::Timeout.http_status(), 504);
        assert_eq!(ErrorCode::SandboxBackendUnavailable.exit_code(), 4);
    }

    #[test]
    fn envelope_shape() {
        let e = ErrorEnvelope::new(ErrorCode::TooLarge, "too big")
            .with_hint("use offset")
            .with_detail("limit", 10);
        let v = e.to_response_json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "TOO_LARGE");
        assert_eq!(v["error"]["details"]["limit"], 10);
        assert_eq!(mode_string(0o100600), "0600");
    }
}

#[cfg(test)]
mod doc_tests {
    use super::ErrorCode;

    /// docs/errors.md lists every code with the status and exit code of the table above.
    #[test]
    fn docs_match_the_table() {
        let doc = include_str!("../../../docs/errors.md");
        for c in ErrorCode::ALL {
            let row = format!(
                "| `{}` | {} | {} |",
                c.as_str(),
                c.http_status(),
                c.exit_code()
            );
            assert!(
                doc.contains(&row),
                "docs/errors.md lacks or contradicts: {row}"
            );
        }
        let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(
            rows,
            ErrorCode::ALL.len(),
            "docs/errors.md lists codes that do not exist"
        );
    }
}
