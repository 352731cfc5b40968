//! The keys a Distinct or Deduplicate has seen (`distinct.rs`): encoded as bytes
//! (`key_bytes.rs`), in memory while the memory pool has room, then in a spill file.
//!
//! A key's bytes are only read back to confirm a hash match, which for distinct keys happens
//! about once in 2^64 comparisons: spilled keys cost a read per duplicate row, and memory keeps
//! ~40 bytes per key (hash table, chain, place) instead of the key (~200 bytes per users_batch
//! row). Past `KEYS_IN_MEMORY`, or when the pool (`MEDALLION_MEMORY_LIMIT`) refuses more, the
//! keys spill.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, LargeBinaryArray, LargeBinaryBuilder, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use datafusion::common::hash_utils::RandomState;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SpillFile;
use datafusion::execution::disk_manager::DiskManager;
use datafusion::execution::memory_pool::MemoryReservation;

use super::key_bytes::{KeyEncoder, KeyRows};

/// Hashes are already mixed: the table uses them as they are.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Key bytes kept in memory before they move to the spill file, when the memory pool sets no
/// lower limit: users_batch's 1M users hold ~200 MB of keys, which would put its peak over
/// 0.5 GB; spilled, it writes them once and reads none back (no repeats). Repeated rows then
/// cost a read each (~1 µs from the page cache).
const KEYS_IN_MEMORY: usize = 64 << 20;
/// Index bytes (~40 per key) past which Distinct splits the rest of its input into parts: 1M
/// keys hold ~41 MB (users_batch on 1M users stays whole); 10M would hold ~450 MB.
const INDEX_IN_MEMORY: usize = 48 << 20;
/// Keys per block handed out by `drain_keys`, at most, and their bytes, about (wide keys).
const KEY_BLOCK: usize = 8192;
const KEY_BLOCK_BYTES: usize = 8 << 20;
/// Bytes of one chunk of keys in memory.
const KEY_CHUNK: usize = 4 << 20;
/// Spilled keys are written in pieces of this size.
const SPILL_WRITE: usize = 256 << 10;
/// No key before this one in its chain.
const END: u32 = u32::MAX;
/// `place` of a spilled key: this bit, and the key's offset in the spill file.
const SPILLED: u64 = 1 << 63;

/// Where spilled keys go: a temp file of DataFusion's disk manager (deleted when dropped).
struct SpillKeys {
    _file: Arc<dyn SpillFile>,
    io: File,
    /// Bytes written to `io`; the keys after them are still in `pending`.
    written: u64,
    pending: Vec<u8>,
    scratch: Vec<u8>,
}

/// The keys seen so far. In memory they lie back to back in fixed-size chunks (a growing `Vec`
/// would hold its old and new buffer at once each time it doubles: +50% peak). `first[hash]` is
/// the newest key with that hash and `next[key]` the one before it (a chain, as DataFusion's
/// join hash map).
pub(super) struct Seen {
    encoder: KeyEncoder,
    random: RandomState,
    chunks: Vec<Vec<u8>>,
    /// Key `i` is at `chunks[place >> 32][place as u32 ..]`, or at `place & !SPILLED` in the
    /// spill file; `len[i]` bytes.
    place: Vec<u64>,
    len: Vec<u32>,
    first: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    next: Vec<u32>,
    encoded: Option<KeyRows>,
    reservation: MemoryReservation,
    disk: Arc<DiskManager>,
    spill: Option<SpillKeys>,
    /// Key bytes kept in memory before they spill (`KEYS_IN_MEMORY`).
    keys_in_memory: usize,
    /// Index bytes past which the operator should split its input into parts
    /// (`INDEX_IN_MEMORY`).
    index_in_memory: usize,
    /// The memory pool refused what the keys hold, even with their bytes spilled.
    refused: bool,
}

fn too_many() -> DataFusionError {
    DataFusionError::ResourcesExhausted(
        "Distinct keeps at most 4,294,967,295 keys of up to 4 GiB each".into(),
    )
}

impl Seen {
    pub(super) fn new(
        types: Vec<DataType>,
        reservation: MemoryReservation,
        disk: Arc<DiskManager>,
    ) -> DfResult<Self> {
        Ok(Self {
            encoder: KeyEncoder::new(types)?,
            random: RandomState::with_seed(0x6d65_6461_6c6c_696f),
            chunks: Vec::new(),
            place: Vec::new(),
            len: Vec::new(),
            first: HashMap::default(),
            next: Vec::new(),
            encoded: None,
            reservation,
            disk,
            spill: None,
            keys_in_memory: KEYS_IN_MEMORY,
            index_in_memory: INDEX_IN_MEMORY,
            refused: false,
        })
    }

    /// `self` splitting past `bytes` of index (tests: a few rows).
    #[cfg(test)]
    pub(super) fn with_index_budget(mut self, bytes: usize) -> Self {
        self.index_in_memory = bytes;
        self
    }

    /// Whether the keys have outgrown memory: their index past `INDEX_IN_MEMORY`, or the memory
    /// pool refused them. The operator then sends the rows that follow to parts
    /// (`distinct_parts.rs`).
    pub(super) fn outgrown(&self) -> bool {
        self.refused || self.index_bytes() > self.index_in_memory
    }

    /// Whether key `id` is `row` (lengths first: a spilled key is read only when they match).
    fn is(&mut self, id: u32, row: &[u8]) -> DfResult<bool> {
        let (place, len) = (self.place[id as usize], self.len[id as usize] as usize);
        if len != row.len() {
            return Ok(false);
        }
        if place & SPILLED == 0 {
            let (chunk, at) = ((place >> 32) as usize, (place as u32) as usize);
            return Ok(&self.chunks[chunk][at..at + len] == row);
        }
        let spill = self.spill.as_mut().expect("a spilled key has a spill file");
        let at = place & !SPILLED;
        if at >= spill.written {
            let at = (at - spill.written) as usize;
            return Ok(&spill.pending[at..at + len] == row);
        }
        spill.scratch.resize(len, 0);
        spill.io.read_exact_at(&mut spill.scratch, at)?;
        Ok(spill.scratch == row)
    }

    /// Keeps `key`'s bytes; returns its id.
    fn push(&mut self, key: &[u8]) -> DfResult<u32> {
        let id = u32::try_from(self.place.len()).map_err(|_| too_many())?;
        let len = u32::try_from(key.len()).map_err(|_| too_many())?;
        let place = match &mut self.spill {
            Some(spill) => {
                let at = spill.written + spill.pending.len() as u64;
                spill.pending.extend_from_slice(key);
                if spill.pending.len() >= SPILL_WRITE {
                    spill.io.write_all_at(&spill.pending, spill.written)?;
                    spill.written += spill.pending.len() as u64;
                    spill.pending.clear();
                }
                at | SPILLED
            }
            None => {
                let fits = self.chunks.last().is_some_and(|c| c.capacity() - c.len() >= key.len());
                if !fits {
                    self.chunks.push(Vec::with_capacity(KEY_CHUNK.max(key.len())));
                }
                let chunk = self.chunks.len() - 1;
                let bytes = &mut self.chunks[chunk];
                let at = bytes.len() as u64;
                bytes.extend_from_slice(key);
                ((chunk as u64) << 32) | at
            }
        };
        self.place.push(place);
        self.len.push(len);
        Ok(id)
    }

    /// Moves the keys in memory to a spill file and frees their chunks.
    fn spill_keys(&mut self) -> DfResult<()> {
        let file = self.disk.create_tmp_file("Distinct keys")?;
        let Some(path) = file.path() else {
            return Err(DataFusionError::ResourcesExhausted(
                "Distinct needs a local spill directory for its keys".into(),
            ));
        };
        let io = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let mut spill =
            SpillKeys { _file: file, io, written: 0, pending: Vec::new(), scratch: Vec::new() };
        // chunk by chunk, in key order: each key's offset is where its chunk starts plus its own
        let mut chunk_at = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            chunk_at.push(spill.written);
            spill.io.write_all_at(chunk, spill.written)?;
            spill.written += chunk.len() as u64;
        }
        for place in &mut self.place {
            let (chunk, at) = ((*place >> 32) as usize, u64::from(*place as u32));
            *place = (chunk_at[chunk] + at) | SPILLED;
        }
        self.chunks = Vec::new();
        self.spill = Some(spill);
        Ok(())
    }

    /// The rows of `batch` whose key was not seen before (in this batch or an earlier one).
    pub(super) fn first_seen(
        &mut self,
        batch: &RecordBatch,
        keys: &[usize],
    ) -> DfResult<RecordBatch> {
        if batch.num_rows() == 0 {
            return Ok(batch.clone());
        }
        let keep = self.probe(batch, keys)?;
        self.account()?;
        if keep.iter().all(|&k| k) {
            return Ok(batch.clone());
        }
        Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
    }

    /// The hash of each row's key (as `first_seen` hashes it), into `hashes`.
    pub(super) fn hash_rows(
        &mut self,
        batch: &RecordBatch,
        keys: &[usize],
        hashes: &mut Vec<u64>,
    ) -> DfResult<()> {
        hashes.clear();
        let n = batch.num_rows();
        let encoded = self.encode(batch, keys)?;
        hashes.extend((0..n).map(|i| self.random.hash_one(encoded.row(i))));
        self.encoded = Some(encoded);
        Ok(())
    }

    /// Adds keys known to be new (`drain_keys`' output, read back): encoded bytes.
    pub(super) fn remember(&mut self, keys: &LargeBinaryArray) -> DfResult<()> {
        for key in keys.iter().flatten() {
            let hash = self.random.hash_one(key);
            let id = self.push(key)?;
            let previous = self.first.insert(hash, id).unwrap_or(END);
            self.next.push(previous);
        }
        self.account()
    }

    /// Every key seen, in blocks of `KEY_BLOCK` keys or `KEY_BLOCK_BYTES` (encoded bytes, and
    /// their hashes as `hash_rows` gives them), read back from the spill file when spilled.
    pub(super) fn drain_keys(
        mut self,
        mut f: impl FnMut(LargeBinaryArray, &[u64]) -> DfResult<()>,
    ) -> DfResult<()> {
        let mut spilled = match self.spill.take() {
            Some(mut spill) => {
                spill.io.write_all_at(&spill.pending, spill.written)?;
                spill.pending = Vec::new();
                Some((std::io::BufReader::with_capacity(1 << 20, spill.io), spill._file))
            }
            None => None,
        };
        let mut block = LargeBinaryBuilder::with_capacity(KEY_BLOCK, KEY_BLOCK * 64);
        let mut block_bytes = 0;
        let mut hashes = Vec::with_capacity(KEY_BLOCK);
        let mut key = Vec::new();
        for id in 0..self.place.len() {
            let (place, len) = (self.place[id], self.len[id] as usize);
            let bytes: &[u8] = if place & SPILLED == 0 {
                let (chunk, at) = ((place >> 32) as usize, (place as u32) as usize);
                &self.chunks[chunk][at..at + len]
            } else {
                // spilled keys lie back to back in id order from the file's start
                let Some((reader, _)) = spilled.as_mut() else {
                    return Err(DataFusionError::Internal("a spilled key without its file".into()));
                };
                key.resize(len, 0);
                std::io::Read::read_exact(reader, &mut key)?;
                &key
            };
            hashes.push(self.random.hash_one(bytes));
            block.append_value(bytes);
            block_bytes += bytes.len();
            if hashes.len() == KEY_BLOCK || block_bytes >= KEY_BLOCK_BYTES {
                f(block.finish(), &hashes)?;
                hashes.clear();
                block_bytes = 0;
            }
        }
        if !hashes.is_empty() {
            f(block.finish(), &hashes)?;
        }
        Ok(())
    }

    /// `batch`'s keys encoded (in the buffers of the last batch's).
    fn encode(&mut self, batch: &RecordBatch, keys: &[usize]) -> DfResult<KeyRows> {
        let columns: Vec<ArrayRef> = keys.iter().map(|&k| Arc::clone(batch.column(k))).collect();
        self.encoder.encode(&columns, self.encoded.take())
    }

    /// Whether each row's key is new, adding the new keys.
    fn probe(&mut self, batch: &RecordBatch, keys: &[usize]) -> DfResult<Vec<bool>> {
        let n = batch.num_rows();
        let encoded = self.encode(batch, keys)?;
        let mut keep = Vec::with_capacity(n);
        for i in 0..n {
            let row = encoded.row(i);
            // the encoded bytes, not the columns: every key type hashes
            let hash = self.random.hash_one(row);
            let mut at = self.first.get(&hash).copied().unwrap_or(END);
            while at != END && !self.is(at, row)? {
                at = self.next[at as usize];
            }
            let new = at == END;
            if new {
                let id = self.push(row)?;
                let previous = self.first.insert(hash, id).unwrap_or(END);
                self.next.push(previous);
            }
            keep.push(new);
        }
        self.encoded = Some(encoded);
        Ok(keep)
    }

    /// Tells the memory pool what the keys hold; when it refuses, the keys' bytes move to a
    /// spill file, and when even the index does not fit, `outgrown` says so (the reservation
    /// keeps what the pool granted).
    fn account(&mut self) -> DfResult<()> {
        let in_memory: usize = self.chunks.iter().map(Vec::len).sum();
        if self.spill.is_none() && in_memory > self.keys_in_memory {
            self.spill_keys()?;
        }
        let held = self.memory();
        let grow = held.saturating_sub(self.reservation.size());
        if grow == 0 || self.reservation.try_grow(grow).is_ok() {
            return Ok(());
        }
        if self.spill.is_none() {
            self.spill_keys()?;
        }
        let held = self.memory();
        match held.checked_sub(self.reservation.size()) {
            Some(grow) => {
                self.refused |= self.reservation.try_grow(grow).is_err();
            }
            None => self.reservation.shrink(self.reservation.size() - held),
        }
        Ok(())
    }

    /// Bytes of the index (hash table, chains, places and lengths).
    fn index_bytes(&self) -> usize {
        self.place.capacity() * size_of::<u64>()
            + self.len.capacity() * size_of::<u32>()
            + self.next.capacity() * size_of::<u32>()
            + self.first.capacity() * (size_of::<(u64, u32)>() + 1)
    }

    /// Bytes held for the keys seen (what the memory pool is told).
    fn memory(&self) -> usize {
        let spill = self.spill.as_ref().map_or(0, |s| s.pending.capacity() + s.scratch.capacity());
        self.chunks.iter().map(Vec::capacity).sum::<usize>() + spill + self.index_bytes()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, UnboundedMemoryPool};

    use super::*;

    fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let names: Vec<String> = ids.clone().map(|i| format!("名前 {i} ").repeat(8)).collect();
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(StringArray::from(names))],
        )
        .unwrap()
    }

    /// With no pool limit, keys past the in-memory budget move to the spill file (none stay in
    /// memory) and every later repeat, in memory or spilled, is still found: repeats of the
    /// first keys, of the last ones and within one batch are all dropped.
    #[test]
    fn keys_past_the_budget_spill_and_repeats_are_still_found() {
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let types = vec![DataType::Int64, DataType::Utf8];
        let disk = Arc::new(DiskManager::builder().build().unwrap());
        let mut seen = Seen::new(types, MemoryConsumer::new("t").register(&pool), disk).unwrap();
        seen.keys_in_memory = 1 << 20;
        let mut kept = 0;
        for start in (0..20_000).step_by(1_000) {
            kept += seen.first_seen(&batch(start..start + 1_000), &[0, 1]).unwrap().num_rows();
        }
        assert_eq!(kept, 20_000);
        assert!(seen.spill.is_some() && seen.chunks.is_empty(), "~2.3 MB of keys spilled");
        for repeat in [0..1_000, 19_000..20_000, 500..1_500] {
            assert_eq!(seen.first_seen(&batch(repeat), &[0, 1]).unwrap().num_rows(), 0);
        }
        let new = batch(20_000..20_010);
        let fresh = arrow::compute::concat_batches(&new.schema(), [&new, &new]).unwrap();
        assert_eq!(seen.first_seen(&fresh, &[0, 1]).unwrap().num_rows(), 10, "new keys once");
    }
}
