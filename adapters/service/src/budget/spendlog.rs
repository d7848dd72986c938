//! The SQLite store's spend log: a fixed ring of 4 KiB blocks beside the budget file, where a
//! window of spends becomes durable with one write and one `fdatasync`. The spends are folded
//! into the SQLite file later, many windows per transaction; the file records the sequence
//! number of the last block folded, in the same transaction, so a restart replays exactly the
//! blocks after it.
//!
//! **Format.** Block `seq` lives at offset `(seq % blocks) * BLOCK`. Its header: magic, CRC-32
//! of the rest of the header and the payload, `seq`, the first block of its window, the log's
//! id (random, kept in the SQLite file: a log left beside a deleted or replaced budget file is
//! not read into the new one), how many blocks of the window follow it, and the payload
//! length. The payload holds whole records, so a block boundary is always a header: a string
//! in a spend (a user id, a tool) can never be read as one. Replay starts at the block after the last folded one and takes whole
//! windows while every block has the expected number and checksum: a window torn by a crash
//! (never answered) ends it, and so does a block left from an earlier lap (its number is
//! `blocks` lower).

use super::SpendKind;
use std::fs::File;
use std::io;
use std::path::Path;
use warden_engine::budget::Money;

/// Size of a block, the unit of the ring.
pub(super) const BLOCK: usize = 4096;

/// Blocks in a new log (4 MiB): far more than the windows written between two folds.
pub(super) const NEW_LOG_BLOCKS: u64 = 1024;

const MAGIC: u32 = 0x5753_504c;
const HEADER: usize = 40;
const PAYLOAD: usize = BLOCK - HEADER;

/// A spend as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spend {
    pub user: String,
    pub period: String,
    pub llm: Money,
    pub purchase: Money,
    pub tool: String,
    pub corr_id: Option<String>,
    pub now_secs: i64,
}

impl Spend {
    /// Whether a spend with these strings fits in one block (the service accepts strings of
    /// 256 bytes: about a quarter of that).
    pub(super) fn fits(user: &str, period: &str, tool: &str, corr_id: Option<&str>) -> bool {
        encoded_len(user, period, tool, corr_id) <= PAYLOAD
    }

    fn encoded_len(&self) -> usize {
        encoded_len(&self.user, &self.period, &self.tool, self.corr_id.as_deref())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for s in [&self.user, &self.period, &self.tool] {
            put_str(out, s.len(), s);
        }
        match &self.corr_id {
            // Lengths are below PAYLOAD: one more than the length says "present".
            Some(c) => put_str(out, c.len().saturating_add(1), c),
            None => out.extend_from_slice(&0u16.to_le_bytes()),
        }
        for n in [self.llm.micros(), self.purchase.micros(), self.now_secs] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn decode(r: &mut Reader<'_>) -> Option<Spend> {
        let user = r.string()?;
        let period = r.string()?;
        let tool = r.string()?;
        let corr_id = match r.u16()? {
            0 => None,
            n => Some(r.str_of(usize::from(n) - 1)?),
        };
        Some(Spend {
            user,
            period,
            tool,
            corr_id,
            llm: Money::from_micros(r.i64()?),
            purchase: Money::from_micros(r.i64()?),
            now_secs: r.i64()?,
        })
    }

    /// The transactions this spend adds, in the order they are numbered.
    pub(super) fn entries(&self) -> impl Iterator<Item = (SpendKind, Money)> {
        [(SpendKind::Llm, self.llm), (SpendKind::Purchase, self.purchase)].into_iter().filter(|(_, m)| *m > Money::ZERO)
    }
}

fn encoded_len(user: &str, period: &str, tool: &str, corr_id: Option<&str>) -> usize {
    3 * 8 + 4 * 2 + user.len() + period.len() + tool.len() + corr_id.map_or(0, str::len)
}

fn put_str(out: &mut Vec<u8>, len: usize, s: &str) {
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str_of(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u16()?;
        self.str_of(usize::from(n))
    }
}

/// The open log: where the next window goes.
#[derive(Debug)]
pub(super) struct SpendLog {
    file: File,
    blocks: u64,
    /// The id every block carries.
    id: u64,
    /// Sequence number of the next block written.
    next: u64,
    /// The window [`SpendLog::stage`] encoded, and its number of blocks.
    buf: Vec<u8>,
    staged: u64,
}

impl SpendLog {
    /// Opens the log at `path` (creating a zeroed ring first if there is none) and reads back
    /// the windows written after block `folded`. Returns the log, positioned after them, and
    /// their spends in order with the number of the last block they came from.
    pub(super) fn open(path: &Path, id: u64, folded: u64) -> io::Result<(SpendLog, Vec<Spend>, u64)> {
        if !path.exists() {
            create(path)?;
        }
        let file = File::options().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let blocks = len / BLOCK as u64;
        if blocks < 2 || len % BLOCK as u64 != 0 {
            return Err(io::Error::other(format!(
                "{} is not a spend log ({len} bytes, not whole {BLOCK}-byte blocks)",
                path.display()
            )));
        }
        let mut log =
            SpendLog { file, blocks, id, next: folded.saturating_add(1), buf: Vec::with_capacity(BLOCK), staged: 0 };
        let spends = log.replay()?;
        let last = log.next.saturating_sub(1);
        Ok((log, spends, last))
    }

    fn replay(&mut self) -> io::Result<Vec<Spend>> {
        let mut spends = Vec::new();
        let mut block = vec![0u8; BLOCK];
        // At most one lap: a full ring holds `blocks` blocks after the last fold.
        let end = self.next.saturating_add(self.blocks);
        'windows: while self.next < end {
            let first = self.next;
            let mut window = Vec::new();
            let mut seq = first;
            loop {
                read_at(&self.file, &mut block, self.offset(seq))?;
                let Some((rest, payload)) = check(&block, self.id, seq, first) else { break 'windows };
                let mut r = Reader { rest: payload };
                while !r.rest.is_empty() {
                    match Spend::decode(&mut r) {
                        Some(s) => window.push(s),
                        None => break 'windows,
                    }
                }
                seq = seq.saturating_add(1);
                if rest == 0 {
                    break;
                }
                if seq >= end {
                    break 'windows;
                }
            }
            spends.append(&mut window);
            self.next = seq;
        }
        Ok(spends)
    }

    fn offset(&self, seq: u64) -> u64 {
        (seq % self.blocks).saturating_mul(BLOCK as u64)
    }

    /// Blocks written and not yet folded, given the last block folded.
    pub(super) fn unfolded(&self, folded: u64) -> u64 {
        self.next.saturating_sub(1).saturating_sub(folded)
    }

    /// Blocks the ring has.
    pub(super) fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Encodes one window of spends (each one [`Spend::fits`]) as the next blocks and returns
    /// how many it takes, so the caller can make room first; [`SpendLog::write_staged`] writes
    /// them.
    pub(super) fn stage<'a>(&mut self, spends: impl Iterator<Item = &'a Spend>) -> u64 {
        let first = self.next;
        self.buf.clear();
        // Where each block starts and where its payload ends.
        let mut blocks = Vec::new();
        let mut start = self.begin_block(first, first);
        for s in spends {
            if self.buf.len() - start + s.encoded_len() > BLOCK {
                blocks.push((start, self.buf.len()));
                self.buf.resize(self.buf.len().next_multiple_of(BLOCK), 0);
                start = self.begin_block(first.saturating_add(blocks.len() as u64), first);
            }
            s.encode(&mut self.buf);
        }
        blocks.push((start, self.buf.len()));
        let count = blocks.len();
        for (i, (start, end)) in blocks.into_iter().enumerate() {
            self.end_block(start, end, count - 1 - i);
        }
        self.staged = count as u64;
        self.staged
    }

    /// Writes the window [`SpendLog::stage`] encoded and waits until it is durable. The caller
    /// checks first that the ring has room ([`SpendLog::unfolded`]). Returns the number of the
    /// window's last block.
    pub(super) fn write_staged(&mut self) -> io::Result<u64> {
        let first = self.next;
        // A window that wraps around the ring's end is written in two parts.
        let at_end = (self.blocks - first % self.blocks).saturating_mul(BLOCK as u64);
        let split = usize::try_from(at_end).unwrap_or(usize::MAX).min(self.buf.len());
        let (head, tail) = self.buf.split_at(split);
        write_at(&self.file, head, self.offset(first))?;
        if !tail.is_empty() {
            write_at(&self.file, tail, 0)?;
        }
        self.file.sync_data()?;
        self.next = first.saturating_add(self.staged);
        Ok(self.next - 1)
    }

    /// Starts block `seq` of the window begun at `first`; [`SpendLog::end_block`] completes
    /// its header.
    fn begin_block(&mut self, seq: u64, first: u64) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&MAGIC.to_le_bytes());
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(&first.to_le_bytes());
        self.buf.extend_from_slice(&self.id.to_le_bytes());
        self.buf.extend_from_slice(&[0; 8]);
        start
    }

    /// Fills in how many blocks of its window follow, the payload length and the checksum of
    /// the block begun at `start` whose payload ends at `end`.
    fn end_block(&mut self, start: usize, end: usize, rest: usize) {
        let rest = u32::try_from(rest).unwrap_or(u32::MAX);
        let len = u32::try_from(end - start - HEADER).unwrap_or(0);
        for (at, value) in [(start + 32, rest), (start + 36, len)] {
            if let Some(field) = self.buf.get_mut(at..at + 4) {
                field.copy_from_slice(&value.to_le_bytes());
            }
        }
        let crc = self.buf.get(start + 8..end).map_or(0, crc32);
        if let Some(field) = self.buf.get_mut(start + 4..start + 8) {
            field.copy_from_slice(&crc.to_le_bytes());
        }
    }
}

/// Validates the block read at `seq` of the window begun at `first`: returns how many
/// blocks of the window follow it and its payload.
fn check(block: &[u8], id: u64, seq: u64, first: u64) -> Option<(u32, &[u8])> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(block.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(block.get(i..i + 8)?.try_into().ok()?));
    let len = usize::try_from(u32_at(36)?).ok()?;
    if u32_at(0)? != MAGIC || u64_at(8)? != seq || u64_at(16)? != first || u64_at(24)? != id || len > PAYLOAD {
        return None;
    }
    let covered = block.get(8..HEADER + len)?;
    if crc32(covered) != u32_at(4)? {
        return None;
    }
    Some((u32_at(32)?, block.get(HEADER..HEADER + len)?))
}

/// Writes a zeroed ring next to `path` and renames it into place, so a log that exists is
/// whole: writes into it change no file size (`fdatasync` then writes no metadata).
fn create(path: &Path) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    let file = File::create(&tmp)?;
    let zeros = vec![0u8; BLOCK * 64];
    let mut at = 0u64;
    while at < NEW_LOG_BLOCKS * BLOCK as u64 {
        write_at(&file, &zeros, at)?;
        at += zeros.len() as u64;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(at))?;
    file.read_exact(buf)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    use std::io::{Seek, Write};
    file.seek(io::SeekFrom::Start(at))?;
    file.write_all(buf)
}

/// CRC-32 (IEEE), for torn blocks: a block the crash left half written.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, b| {
        let i = usize::from((crc as u8) ^ b);
        CRC_TABLE.get(i).copied().unwrap_or(0) ^ (crc >> 8)
    })
}

// Indexing in a constant cannot panic at run time: an index out of range fails the build.
#[allow(clippy::indexing_slicing)]
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn spend(user: &str, micros: i64) -> Spend {
        Spend {
            user: user.to_owned(),
            period: String::from("2026-12"),
            llm: Money::from_micros(micros),
            purchase: Money::ZERO,
            tool: String::from("t"),
            corr_id: (micros % 2 == 0).then(|| format!("c{micros}")),
            now_secs: 1_764_547_200 + micros,
        }
    }

    fn append(log: &mut SpendLog, window: &[Spend]) -> u64 {
        log.stage(window.iter());
        log.write_staged().unwrap()
    }

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "warden-spendlog-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn windows_read_back_in_order_across_the_rings_end_and_blocks() {
        let path = dir().join("log");
        let (mut log, spends, last) = SpendLog::open(&path, 7, 0).unwrap();
        assert!(spends.is_empty());
        assert_eq!(last, 0);
        let long = "u".repeat(1024);
        let (mut written, mut lasts) = (Vec::new(), Vec::new());
        // Past the end of the ring: the last windows wrap around, some take several blocks.
        for w in 0..NEW_LOG_BLOCKS + 7 {
            let window: Vec<Spend> =
                (0..1 + w % 9).map(|i| spend(if w % 5 == 0 { &long } else { "u" }, (w * 10 + i) as i64)).collect();
            lasts.push(append(&mut log, &window));
            written.push(window);
        }
        let end = log.next - 1;
        assert!(lasts.windows(2).any(|w| w[1] - w[0] > 1), "some windows take several blocks");
        // Replay from a fold in the last lap returns exactly the windows after it.
        let folded = lasts[lasts.len() - 41];
        let expected: Vec<Spend> = written[written.len() - 40..].concat();
        let (log, spends, last) = SpendLog::open(&path, 7, folded).unwrap();
        assert_eq!(last, end);
        assert_eq!(spends, expected);
        assert_eq!(log.unfolded(folded), end - folded);
    }

    #[test]
    fn a_torn_window_and_blocks_of_an_earlier_lap_end_the_replay() {
        let path = dir().join("log");
        let (mut log, _, _) = SpendLog::open(&path, 7, 0).unwrap();
        let one = vec![spend("a", 1)];
        append(&mut log, &one);
        let big: Vec<Spend> = (0..12).map(|i| spend(&"b".repeat(1024), i)).collect();
        let last = append(&mut log, &big);
        assert!(last >= 3, "the window takes several blocks");
        append(&mut log, &one);
        // The second block of the big window is torn: the replay keeps only the first window.
        let mut byte = [0u8; 1];
        let at = log.offset(3) + 100;
        read_at(&log.file, &mut byte, at).unwrap();
        write_at(&log.file, &[byte[0] ^ 1], at).unwrap();
        let (_, spends, last) = SpendLog::open(&path, 7, 0).unwrap();
        assert_eq!((spends, last), (one.clone(), 1));
        // A log of another budget file (another id) has nothing to replay.
        let (_, spends, last) = SpendLog::open(&path, 8, 0).unwrap();
        assert_eq!((spends.len(), last), (0, 0));
        // Nothing after a fold past everything written: the blocks there are a lap old.
        let (_, spends, last) = SpendLog::open(&path, 7, 1 + NEW_LOG_BLOCKS).unwrap();
        assert_eq!((spends.len(), last), (0, 1 + NEW_LOG_BLOCKS));
    }

    #[test]
    fn a_spend_cannot_forge_a_block() {
        let path = dir().join("log");
        let (mut log, _, _) = SpendLog::open(&path, 7, 0).unwrap();
        // A user id holding a valid-looking header for block 2, so that it would start at a
        // block boundary if records could span blocks.
        let mut forger =
            SpendLog { file: File::open(&path).unwrap(), blocks: 8, id: 7, next: 2, buf: Vec::new(), staged: 0 };
        forger.stage([spend("victim", 999_000_000)].iter());
        let fake = forger.buf;
        let user = String::from_utf8_lossy(&fake).into_owned();
        let window: Vec<Spend> = (0..4).map(|i| Spend { user: user.clone(), ..spend("x", i) }).collect();
        append(&mut log, &window);
        let (_, spends, _) = SpendLog::open(&path, 7, 0).unwrap();
        assert_eq!(spends, window);
    }

    #[test]
    fn a_file_that_is_not_a_ring_is_refused() {
        let path = dir().join("log");
        std::fs::write(&path, b"not a log").unwrap();
        let e = SpendLog::open(&path, 7, 0).unwrap_err();
        assert!(e.to_string().contains("is not a spend log"), "{e}");
    }
}
