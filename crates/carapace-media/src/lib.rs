//! carapace's media store and outbound reader (docs/media.md).
//!
//! - [`MediaStore`]: saves bytes, streams, imported files and downloads into the media
//!   directory through carapace-fs. Names are `<sanitized-original>---<uuid>.<ext>` (or
//!   `<uuid>.<ext>`), the type is sniffed from the bytes first, files get `media.fileMode`
//!   (default 0644) and directories 0755 by construction, whatever the umask.
//! - [`download`]: http(s) only, streamed to disk, capped, at most 5 redirects, every address of
//!   every hop checked (private/loopback refused unless `media.allowPrivateNetwork`) and the
//!   connection pinned to the checked addresses.
//! - [`outbound`]: the ordered checks of docs/channels.md on one pinned fd, which becomes the
//!   [`carapace_channels::Attachment`] — the file is never re-opened by path and never read
//!   whole into memory. [`outbound::check_file`] is the one home of that rule; `media_save` of
//!   a path ([`MediaStore::import_checked`]) calls it too, since a copy in the store is
//!   sendable.
//! - [`doctor`]: the scan for files a send would refuse (and the safe fix), shared by
//!   `carapace doctor` and the web page; it asks [`outbound::check_file`] about every file.
//! - [`media_ref`]: whether an attachment reference is an http(s) URL (any case), a path, or a
//!   refused scheme (`file:`, `data:`, …).
//!
//! Errors are [`MediaError`], which implements [`carapace_policy::CarapaceError`].

#![forbid(unsafe_code)]

pub mod dims;
pub mod doctor;
pub mod download;
mod error;
pub mod media_ref;
pub mod netguard;
pub mod outbound;
pub mod sniff;
mod store;

pub use error::MediaError;
pub use media_ref::MediaRef;
pub use outbound::{
    AllowedRoot, CheckedFile, OutboundFile, OutboundPolicy, Purpose, check_file, display_name,
    mode_is_sendable, open_outbound,
};
pub use store::{MediaEntry, MediaSettings, MediaStore, SavedMedia, sanitize_stem};
