//! Where crops go during an ingest: each distinct crop is staged once, in parts of bounded size,
//! and never if the store already holds it. Memory holds the hashes, not the images.
//!
//! Parts of the `crops` table are only ever added (layout `content`). A part's key is derived
//! from the hashes it holds, so the same crops always make the same part.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, AsArray, BinaryArray, Int32Array, RecordBatch, StringArray};

use crate::store::{Head, PartRef, Stager, Store};

/// Staged crop bytes at which a part is closed: bounds the memory an ingest needs (the pending
/// crops, then their Arrow batch and its Parquet encoding, about twice this at the peak).
pub const PART_BYTES: usize = 16 << 20;

/// One encoded crop.
pub struct Crop {
    pub hash: String,
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// A staged crops part and the hashes in it (kept, 32 bytes each, to re-check them on a
/// re-base).
#[derive(Debug, Clone)]
pub struct StagedCrops {
    pub part: PartRef,
    pub hashes: Vec<[u8; 32]>,
}

/// Collects new crops and stages them in parts of about `PART_BYTES`.
pub struct CropSink {
    /// Crops the store holds or this ingest has already taken (raw 32-byte hashes: a few
    /// million crops fit in ~100 MiB).
    known: HashSet<[u8; 32]>,
    pending: Vec<Crop>,
    pending_bytes: usize,
    pub staged: Vec<StagedCrops>,
    /// Crops referenced, new or not (for the summary).
    pub referenced: u64,
    pub new_crops: u64,
    pub new_bytes: u64,
}

/// The raw bytes of a hex crop hash.
fn raw(hex: &str) -> [u8; 32] {
    *blake3::Hash::from_hex(hex)
        .expect("crop hashes are 64 hex digits")
        .as_bytes()
}

/// The hashes of every crop in a snapshot, read without the image bytes.
pub fn stored_hashes(store: &Store, head: &Head) -> Result<HashSet<[u8; 32]>> {
    let mut known = HashSet::new();
    for batch in store.read_columns(&head.snapshot, "crops", &["crop_hash"])? {
        let hashes = batch.column(0).as_string::<i32>();
        known.extend(hashes.iter().flatten().map(raw));
    }
    Ok(known)
}

impl CropSink {
    pub fn new(known: HashSet<[u8; 32]>) -> CropSink {
        CropSink {
            known,
            pending: Vec::new(),
            pending_bytes: 0,
            staged: Vec::new(),
            referenced: 0,
            new_crops: 0,
            new_bytes: 0,
        }
    }

    /// Takes a crop; stages a part when enough bytes are pending.
    pub fn add(&mut self, stager: &mut Stager, crop: Crop) -> Result<()> {
        self.referenced += 1;
        if !self.known.insert(raw(&crop.hash)) {
            return Ok(());
        }
        self.new_crops += 1;
        self.new_bytes += crop.bytes.len() as u64;
        self.pending_bytes += crop.bytes.len();
        self.pending.push(crop);
        if self.pending_bytes >= PART_BYTES {
            self.flush(stager)?;
        }
        Ok(())
    }

    /// Stages whatever is pending.
    pub fn flush(&mut self, stager: &mut Stager) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut crops = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        crops.sort_by(|a, b| a.hash.cmp(&b.hash));
        let batch = crops_batch(&crops)?;
        drop(crops); // the batch holds the bytes now
        self.staged.push(stage_crops(stager, &batch)?);
        Ok(())
    }
}

fn stage_crops(stager: &mut Stager, batch: &RecordBatch) -> Result<StagedCrops> {
    let hashes: Vec<[u8; 32]> = batch
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .map(raw)
        .collect();
    let key = format!(
        "crops={}",
        &blake3::hash(hashes.concat().as_slice()).to_hex()[..32]
    );
    let part = stager.stage(key, batch)?;
    Ok(StagedCrops { part, hashes })
}

/// The rows of the `crops` table for these crops, in the given order.
pub fn crops_batch(crops: &[Crop]) -> Result<RecordBatch> {
    let schema = crate::schema::table("crops").schema.clone();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            crops.iter().map(|c| c.hash.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            crops.iter().map(|c| c.format),
        )),
        Arc::new(Int32Array::from_iter_values(
            crops.iter().map(|c| c.width as i32),
        )),
        Arc::new(Int32Array::from_iter_values(
            crops.iter().map(|c| c.height as i32),
        )),
        Arc::new(Int32Array::from_iter_values(
            crops.iter().map(|c| c.bytes.len() as i32),
        )),
        Arc::new(BinaryArray::from_iter_values(
            crops.iter().map(|c| c.bytes.as_slice()),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The crop parts to commit on top of `head`. When another writer committed some of the same
/// crops since this ingest looked, the affected parts are re-staged without them, so a crop is
/// stored once even under concurrent ingests.
pub fn parts_for_head(
    stager: &mut Stager,
    head: &Head,
    base_seq: u64,
    staged: &[StagedCrops],
) -> Result<Vec<PartRef>> {
    if head.seq == base_seq || staged.is_empty() {
        return Ok(staged.iter().map(|s| s.part.clone()).collect());
    }
    let now_stored = stored_hashes(stager.store(), head)?;
    let mut parts = Vec::new();
    for s in staged {
        if !s.hashes.iter().any(|h| now_stored.contains(h)) {
            parts.push(s.part.clone());
            continue;
        }
        for batch in stager.read_part(&s.part)? {
            let hashes = batch.column(0).as_string::<i32>();
            let keep: arrow::array::BooleanArray = hashes
                .iter()
                .map(|h| Some(!h.is_some_and(|h| now_stored.contains(&raw(h)))))
                .collect();
            let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
            if kept.num_rows() > 0 {
                parts.push(stage_crops(stager, &kept)?.part);
            }
        }
    }
    Ok(parts)
}

/// The blake3 of a crop's bytes, as the table stores it.
pub fn crop_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{TableChange, Transaction};

    fn crop(bytes: &[u8]) -> Crop {
        Crop {
            hash: crop_hash(bytes),
            format: "jpeg",
            width: 1,
            height: 1,
            bytes: bytes.to_vec(),
        }
    }

    fn commit_crops(txn: Transaction, base_seq: u64, staged: Vec<StagedCrops>) {
        txn.commit("test", |stager, head| {
            Ok(vec![TableChange {
                table: "crops".into(),
                parts: parts_for_head(stager, head, base_seq, &staged)?,
            }])
        })
        .unwrap();
    }

    #[test]
    fn a_crop_committed_meanwhile_by_another_writer_is_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::init(&dir.path().join("s")).unwrap();
        // Writer A looks at the store and stages crops x and y ...
        let base = store.head().unwrap();
        let mut a = Transaction::begin(&store).unwrap();
        let mut sink_a = CropSink::new(stored_hashes(&store, &base).unwrap());
        sink_a.add(a.stager(), crop(b"x")).unwrap();
        sink_a.add(a.stager(), crop(b"y")).unwrap();
        sink_a.add(a.stager(), crop(b"y")).unwrap();
        sink_a.flush(a.stager()).unwrap();
        assert_eq!((sink_a.referenced, sink_a.new_crops), (3, 2));
        // ... while writer B commits y first.
        let mut b = Transaction::begin(&store).unwrap();
        let mut sink_b = CropSink::new(stored_hashes(&store, &base).unwrap());
        sink_b.add(b.stager(), crop(b"y")).unwrap();
        sink_b.flush(b.stager()).unwrap();
        commit_crops(b, base.seq, sink_b.staged.clone());
        commit_crops(a, base.seq, sink_a.staged.clone());

        let head = store.head().unwrap();
        let mut hashes: Vec<String> = store
            .read_columns(&head.snapshot, "crops", &["crop_hash"])
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        hashes.sort();
        let mut expected = vec![crop_hash(b"x"), crop_hash(b"y")];
        expected.sort();
        assert_eq!(hashes, expected);
    }
}
