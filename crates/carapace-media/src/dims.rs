//! Image width and height from the header bytes of an open file (positional reads, the fd's
//! offset is not moved), for channels that want them (Matrix `info.w` / `info.h`).

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Header bytes read: enough for PNG, GIF, WebP and JPEGs whose SOF comes after EXIF data.
const HEAD: usize = 256 * 1024;

/// `(width, height)` of a PNG / JPEG / GIF / WebP (or other format `imagesize` knows) whose
/// fd is `file`, or `None`.
pub fn image_dimensions(file: &File, size: u64) -> Option<(u32, u32)> {
    let want = usize::try_from(size.min(HEAD as u64)).ok()?;
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(got);
    let s = imagesize::blob_size(&buf).ok()?;
    Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?))
}

/// The first `n` bytes of `file` (positional read), for sniffing.
pub fn head(file: &File, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    buf.truncate(got);
    buf
}
