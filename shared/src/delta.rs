//! Deltas between two encoded snapshots, so an edit travels as what changed instead of the
//! whole config (incremental pushes, DESIGN §8).
//!
//! The delta rebuilds the new snapshot's exact bytes from the previous one's: a list of
//! ranges copied from the base and bytes inserted, found by content-defined chunking (a
//! chunk boundary depends only on the bytes around it, so an edit shifts no boundary beyond
//! it). Rebuilding checks every range against the base, bounds the result before allocating
//! it and compares its SHA-256 with the one the delta carries.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::proto::v1 as pb;

/// Largest snapshot a delta may rebuild (a full push is bounded by the stream's message size).
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024 * 1024;

/// Chunks are at least this long...
const MIN_CHUNK: usize = 32;
/// ...at most this long...
const MAX_CHUNK: usize = 1024;
/// ...and about 128 bytes on average: a boundary where the rolling hash's low 7 bits are 0.
const BOUNDARY_MASK: u64 = (1 << 7) - 1;

/// The rolling hash's byte table (splitmix64 of the byte), as FastCDC's gear hash uses.
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut z = (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// Splits `data` at content-defined boundaries.
fn chunks(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let rest = &data[start..];
        let mut hash = 0u64;
        let mut end = rest.len().min(MAX_CHUNK);
        for (i, b) in rest.iter().enumerate().take(end).skip(1) {
            hash = (hash << 1).wrapping_add(GEAR[*b as usize]);
            if i >= MIN_CHUNK && hash & BOUNDARY_MASK == 0 {
                end = i;
                break;
            }
        }
        let chunk = (start, &rest[..end]);
        start += end;
        Some(chunk)
    })
}

/// The delta that rebuilds `target` from `base`.
pub fn diff(base: &[u8], target: &[u8]) -> pb::Delta {
    let mut known: HashMap<&[u8], usize> = HashMap::new();
    for (offset, chunk) in chunks(base) {
        known.entry(chunk).or_insert(offset);
    }
    let mut ops: Vec<pb::DeltaOp> = Vec::new();
    let mut inserted: Option<(usize, usize)> = None;
    let flush = |ops: &mut Vec<pb::DeltaOp>, inserted: &mut Option<(usize, usize)>| {
        if let Some((start, end)) = inserted.take() {
            ops.push(op(pb::delta_op::Op::Insert(Bytes::copy_from_slice(
                &target[start..end],
            ))));
        }
    };
    for (at, chunk) in chunks(target) {
        match known.get(chunk) {
            Some(&offset) => {
                flush(&mut ops, &mut inserted);
                let len = chunk.len() as u64;
                match ops.last_mut().and_then(|o| o.op.as_mut()) {
                    Some(pb::delta_op::Op::Copy(c)) if c.offset + c.len == offset as u64 => {
                        c.len += len;
                    }
                    _ => ops.push(op(pb::delta_op::Op::Copy(pb::CopyRange {
                        offset: offset as u64,
                        len,
                    }))),
                }
            }
            None => {
                let end = at + chunk.len();
                inserted = Some(inserted.map_or((at, end), |(start, _)| (start, end)));
            }
        }
    }
    flush(&mut ops, &mut inserted);
    pb::Delta {
        base_version: String::new(),
        ops,
        sha256: Bytes::copy_from_slice(&Sha256::digest(target)),
    }
}

fn op(op: pb::delta_op::Op) -> pb::DeltaOp {
    pb::DeltaOp { op: Some(op) }
}

/// Bytes a delta puts on the wire, to compare with a full push.
pub fn wire_len(delta: &pb::Delta) -> usize {
    prost::Message::encoded_len(delta)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeltaError {
    #[error("a delta op copies bytes {offset}..{end} of a {base}-byte base")]
    OutOfBase { offset: u64, end: u64, base: usize },
    #[error("a delta rebuilds more than {MAX_SNAPSHOT_BYTES} bytes")]
    TooLarge,
    #[error("a delta op is empty")]
    EmptyOp,
    #[error("the rebuilt snapshot's SHA-256 is not the delta's")]
    Digest,
}

/// Rebuilds the target of `delta` from `base`, checking every range and the result's digest
/// and bounding its size before allocating.
pub fn apply(base: &[u8], delta: &pb::Delta) -> Result<Bytes, DeltaError> {
    let mut total = 0u64;
    for o in &delta.ops {
        let len = match &o.op {
            Some(pb::delta_op::Op::Copy(c)) => {
                let end = c
                    .offset
                    .checked_add(c.len)
                    .filter(|e| *e <= base.len() as u64);
                if end.is_none() {
                    return Err(DeltaError::OutOfBase {
                        offset: c.offset,
                        end: c.offset.saturating_add(c.len),
                        base: base.len(),
                    });
                }
                c.len
            }
            Some(pb::delta_op::Op::Insert(b)) => b.len() as u64,
            None => return Err(DeltaError::EmptyOp),
        };
        total = total.saturating_add(len);
        if total > MAX_SNAPSHOT_BYTES as u64 {
            return Err(DeltaError::TooLarge);
        }
    }
    let mut out = BytesMut::with_capacity(total as usize);
    for o in &delta.ops {
        match &o.op {
            // Checked above.
            Some(pb::delta_op::Op::Copy(c)) => {
                out.extend_from_slice(&base[c.offset as usize..(c.offset + c.len) as usize]);
            }
            Some(pb::delta_op::Op::Insert(b)) => out.extend_from_slice(b),
            None => {}
        }
    }
    if Sha256::digest(&out).as_slice() != delta.sha256.as_ref() {
        return Err(DeltaError::Digest);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(routes: usize, edited: Option<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..routes {
            let tag = if Some(i) == edited { "edited" } else { "a" };
            out.extend_from_slice(format!("route r{i} path /r{i} tag {tag};").as_bytes());
        }
        out
    }

    #[test]
    fn a_delta_rebuilds_the_target_exactly() {
        let base = sample(2_000, None);
        for target in [
            sample(2_000, Some(1_000)),
            sample(2_000, Some(0)),
            sample(2_001, None),
            sample(1_000, None),
            Vec::new(),
            base.clone(),
        ] {
            let delta = diff(&base, &target);
            assert_eq!(apply(&base, &delta).unwrap().as_ref(), target.as_slice());
        }
        let delta = diff(&[], &base);
        assert_eq!(apply(&[], &delta).unwrap().as_ref(), base.as_slice());
    }

    #[test]
    fn a_small_edit_makes_a_small_delta() {
        let base = sample(10_000, None);
        let target = sample(10_000, Some(5_000));
        let delta = diff(&base, &target);
        assert!(
            wire_len(&delta) < 2 * MAX_CHUNK + 100,
            "{}",
            wire_len(&delta)
        );
    }

    #[test]
    fn a_delta_on_another_base_is_refused() {
        let base = sample(1_000, None);
        let delta = diff(&base, &sample(1_000, Some(3)));
        let other = sample(1_000, Some(7));
        assert_eq!(apply(&other, &delta), Err(DeltaError::Digest));
        assert!(matches!(
            apply(&base[..100], &delta),
            Err(DeltaError::OutOfBase { .. })
        ));
    }

    #[test]
    fn a_delta_that_expands_past_the_bound_is_refused_before_allocating() {
        let base = vec![0u8; 1024];
        let copy = |len| op(pb::delta_op::Op::Copy(pb::CopyRange { offset: 0, len }));
        let delta = |ops| pb::Delta {
            base_version: String::new(),
            ops,
            sha256: Bytes::new(),
        };
        assert!(matches!(
            apply(&base, &delta(vec![copy(u64::MAX)])),
            Err(DeltaError::OutOfBase { .. })
        ));
        // 64 MiB and one more kilobyte, from a few hundred kilobytes of ops.
        let many = vec![copy(1024); MAX_SNAPSHOT_BYTES / 1024 + 1];
        assert_eq!(apply(&base, &delta(many)), Err(DeltaError::TooLarge));
        let empty = pb::DeltaOp { op: None };
        assert_eq!(apply(&base, &delta(vec![empty])), Err(DeltaError::EmptyOp));
    }
}
