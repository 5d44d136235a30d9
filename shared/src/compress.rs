//! Full snapshots compressed (LZ4, pure Rust) once per version and shared by every stream, so
//! a rewrite of a large config crosses the wire to each proxy in a fraction of its size.
//!
//! Decompressing trusts nothing: the claimed size is bounded before anything is allocated,
//! and a block must fill exactly that many bytes.

use bytes::Bytes;

use crate::delta::MAX_SNAPSHOT_BYTES;
use crate::proto::v1 as pb;

/// `encoded` as an LZ4 block.
pub fn compress(encoded: &[u8]) -> pb::Compressed {
    pb::Compressed {
        size: encoded.len() as u64,
        lz4: Bytes::from(lz4_flex::block::compress(encoded)),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("a compressed snapshot claims {0} bytes, more than {MAX_SNAPSHOT_BYTES}")]
    TooLarge(u64),
    #[error("a compressed snapshot is corrupt: {0}")]
    Corrupt(String),
}

/// The bytes `compressed` holds, at most [`MAX_SNAPSHOT_BYTES`].
pub fn decompress(compressed: &pb::Compressed) -> Result<Bytes, DecompressError> {
    let size = usize::try_from(compressed.size)
        .ok()
        .filter(|s| *s <= MAX_SNAPSHOT_BYTES)
        .ok_or(DecompressError::TooLarge(compressed.size))?;
    // An LZ4 block expands at most about 255 times: a larger claim is a lie, refused before
    // its buffer is allocated.
    if compressed.size > (compressed.lz4.len() as u64).saturating_mul(255) + 16 {
        return Err(DecompressError::Corrupt(format!(
            "{} bytes cannot come from a {}-byte block",
            compressed.size,
            compressed.lz4.len()
        )));
    }
    let mut out = vec![0u8; size];
    let filled = lz4_flex::block::decompress_into(&compressed.lz4, &mut out)
        .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
    if filled != size {
        return Err(DecompressError::Corrupt(format!(
            "{filled} bytes, not the {size} it claims"
        )));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..10_000)
            .flat_map(|i| format!("route r{i} path /r{i} tag a;").into_bytes())
            .collect()
    }

    #[test]
    fn a_snapshot_decompresses_to_its_bytes_and_shrinks() {
        let encoded = sample();
        let compressed = compress(&encoded);
        assert!(
            compressed.lz4.len() < encoded.len() / 3,
            "{}",
            compressed.lz4.len()
        );
        assert_eq!(
            decompress(&compressed).unwrap().as_ref(),
            encoded.as_slice()
        );
        assert_eq!(decompress(&compress(&[])).unwrap().as_ref(), b"");
    }

    #[test]
    fn an_oversized_claim_is_refused_before_allocating() {
        let claim = |size| pb::Compressed {
            size,
            lz4: Bytes::from_static(b"\x00"),
        };
        assert_eq!(
            decompress(&claim(u64::MAX)),
            Err(DecompressError::TooLarge(u64::MAX))
        );
        let over = MAX_SNAPSHOT_BYTES as u64 + 1;
        let refused = decompress(&claim(over)).unwrap_err();
        assert_eq!(refused, DecompressError::TooLarge(over));
        assert!(refused.to_string().len() < 100);
        // Under the bound, but more than a 1-byte block can hold: refused, not allocated.
        let lie = decompress(&claim(MAX_SNAPSHOT_BYTES as u64)).unwrap_err();
        assert!(
            lie.to_string().contains("cannot come from a 1-byte block"),
            "{lie}"
        );
    }

    #[test]
    fn a_block_that_does_not_fill_its_claim_is_corrupt() {
        let encoded = sample();
        let mut compressed = compress(&encoded);
        compressed.size += 1;
        assert!(matches!(
            decompress(&compressed),
            Err(DecompressError::Corrupt(_))
        ));
        compressed.size -= 2;
        assert!(matches!(
            decompress(&compressed),
            Err(DecompressError::Corrupt(_))
        ));
        let mut truncated = compress(&encoded);
        truncated.lz4.truncate(truncated.lz4.len() / 2);
        assert!(matches!(
            decompress(&truncated),
            Err(DecompressError::Corrupt(_))
        ));
    }
}
