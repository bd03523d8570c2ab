//! Valid PNG files for tests, built by hand (CRC-32, Adler-32 and a zlib stream of stored
//! deflate blocks), so no image crate is needed.
//!
//! - [`png`]: a `width`×`height` 8-bit RGB image whose pixels depend on a seed.
//! - [`png_rgba`]: a `width`×`height` 8-bit RGBA image with the pixels a function gives.
//! - [`png_of_len`]: a valid 1×1 PNG padded with a `tEXt` chunk to exactly `len` bytes (for
//!   tests about sizes, caps and byte-identical transfers); the seed makes files distinct.

/// The 8-byte PNG signature.
pub const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Size of the smallest file [`png_of_len`] makes: a 1×1 RGB PNG with an empty `Comment` text.
pub const MIN_PADDED_LEN: usize = 92;

/// CRC-32 (ISO-HDLC, the one PNG chunks use) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream holding `raw` in stored (uncompressed) deflate blocks.
fn zlib_stored(raw: &[u8]) -> Vec<u8> {
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if raw.is_empty() {
        vec![raw]
    } else {
        raw.chunks(65535).collect()
    };
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(b);
    }
    z.extend_from_slice(&adler32(raw).to_be_bytes());
    z
}

/// Signature, IHDR and IDAT of an 8-bit image; `color` is the IHDR colour type (2 RGB, 6 RGBA),
/// `raw` the filtered scanlines (filter byte 0 then the pixels).
fn head(width: u32, height: u32, color: u8, raw: &[u8]) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, color, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(raw));
    out
}

fn image(width: u32, height: u32, color: u8, pixel: impl Fn(u32, u32, &mut Vec<u8>)) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0u8);
        for x in 0..width {
            pixel(x, y, &mut raw);
        }
    }
    let mut out = head(width, height, color, &raw);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The RGB pixel at (x, y) of [`png`]`(_, _, seed)`.
pub fn pixel(x: u32, y: u32, seed: u8) -> [u8; 3] {
    [
        (x as u8).wrapping_mul(seed | 1),
        (y as u8).wrapping_add(seed),
        seed,
    ]
}

/// A valid 8-bit RGB PNG of `width`×`height` whose pixels ([`pixel`]) depend on `seed`: the same
/// arguments give the same bytes, different seeds different files.
pub fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    image(width, height, 2, |x, y, raw| {
        raw.extend_from_slice(&pixel(x, y, seed))
    })
}

/// A valid 8-bit RGBA PNG of `width`×`height` with the pixels `pixel(x, y)` gives.
pub fn png_rgba(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
    image(width, height, 6, |x, y, raw| {
        raw.extend_from_slice(&pixel(x, y))
    })
}

/// A valid PNG of exactly `len` bytes: a 1×1 RGB image (pixel from `seed`) with a `tEXt`
/// `Comment` of printable filler (from `seed`) before `IEND`. Different seeds give different
/// files of the same length.
///
/// Panics when `len` is below [`MIN_PADDED_LEN`] or the text would not fit a chunk.
#[allow(clippy::panic)]
pub fn png_of_len(len: usize, seed: u8) -> Vec<u8> {
    if len < MIN_PADDED_LEN {
        panic!("png_of_len({len}): a padded PNG has at least {MIN_PADDED_LEN} bytes");
    }
    let p = pixel(0, 0, seed);
    let mut out = head(1, 1, 2, &[0, p[0], p[1], p[2]]);
    // What is left after this text chunk's 12 bytes of framing and IEND's 12.
    let text_len = len - out.len() - 24;
    let mut text = b"Comment\0".to_vec();
    let filler = text_len - text.len();
    text.extend((0..filler).map(|i| b'a' + ((i * 7 + usize::from(seed)) % 26) as u8));
    chunk(&mut out, b"tEXt", &text);
    chunk(&mut out, b"IEND", &[]);
    debug_assert_eq!(out.len(), len);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// (type, data) of each chunk, checking framing and every CRC by hand.
    fn chunks(bytes: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        assert_eq!(&bytes[..8], SIGNATURE);
        let mut out = Vec::new();
        let mut at = 8;
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let body = &bytes[at + 4..at + 8 + len];
            let crc = u32::from_be_bytes(bytes[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc32(body), crc, "CRC of {:?}", &body[..4]);
            out.push((body[..4].try_into().unwrap(), body[4..].to_vec()));
            at += 12 + len;
        }
        assert_eq!(at, bytes.len(), "no trailing bytes");
        assert_eq!(&out.last().unwrap().0, b"IEND");
        out
    }

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        // The CRC of a bare IEND chunk, as every PNG ends with it.
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
    }

    #[test]
    fn chunks_header_and_crcs_are_valid() {
        let bytes = png(300, 7, 5);
        let cs = chunks(&bytes);
        assert_eq!(&cs[0].0, b"IHDR");
        let ihdr = &cs[0].1;
        assert_eq!(u32::from_be_bytes(ihdr[0..4].try_into().unwrap()), 300);
        assert_eq!(u32::from_be_bytes(ihdr[4..8].try_into().unwrap()), 7);
        assert_eq!(&ihdr[8..], &[8, 2, 0, 0, 0]);
        assert_eq!(&cs[1].0, b"IDAT");
        let rgba = png_rgba(2, 3, |_, _| [1, 2, 3, 4]);
        assert_eq!(chunks(&rgba)[0].1[9], 6, "colour type RGBA");
    }

    /// Decodes with the `png` crate (a dev-dependency): the pixels are the ones asked for.
    #[test]
    fn the_png_crate_decodes_what_is_built() {
        // Wide enough that the scanlines span several stored blocks.
        for (w, h, seed) in [(1, 1, 0), (7, 5, 4), (300, 100, 9)] {
            let bytes = png(w, h, seed);
            let dec = png::Decoder::new(std::io::Cursor::new(&bytes));
            let mut r = dec.read_info().unwrap();
            let mut buf = vec![0; r.output_buffer_size().unwrap()];
            let info = r.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), (w, h));
            assert_eq!(info.color_type, png::ColorType::Rgb);
            for y in 0..h {
                for x in 0..w {
                    let i = ((y * w + x) * 3) as usize;
                    assert_eq!(buf[i..i + 3], pixel(x, y, seed), "({x}, {y})");
                }
            }
        }
        let bytes = png_rgba(4, 2, |x, y| [x as u8, y as u8, 7, 255]);
        let mut r = png::Decoder::new(std::io::Cursor::new(&bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(&buf[4 * 5..4 * 6], &[1, 1, 7, 255], "pixel (1, 1)");
    }

    #[test]
    fn png_of_len_is_exact_valid_and_distinct() {
        for len in [MIN_PADDED_LEN, 93, 500, 5000, 70_000, 300_000] {
            let a = png_of_len(len, 1);
            let b = png_of_len(len, 2);
            assert_eq!((a.len(), b.len()), (len, len));
            assert_ne!(a, b);
            assert_eq!(a, png_of_len(len, 1), "deterministic");
            let cs = chunks(&a);
            let kinds: Vec<&[u8; 4]> = cs.iter().map(|c| &c.0).collect();
            assert_eq!(kinds, [b"IHDR", b"IDAT", b"tEXt", b"IEND"]);
            let mut r = png::Decoder::new(std::io::Cursor::new(&a))
                .read_info()
                .unwrap();
            let mut buf = vec![0; r.output_buffer_size().unwrap()];
            let info = r.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), (1, 1));
            assert_eq!(buf[..3], pixel(0, 0, 1));
        }
    }

    #[test]
    #[should_panic(expected = "at least")]
    fn png_of_len_refuses_a_length_too_small() {
        png_of_len(MIN_PADDED_LEN - 1, 0);
    }
}
