//! A new file being written with its digests computed on the way: what every upload, part and
//! copy streams into before `FileStore::commit` puts it in place.
//!
//! MD5 (the ETag) is inherently serial and the slowest step, about 600 MB/s here, so once an
//! upload passes one buffer it is split into lanes that run at once: a thread that only runs MD5,
//! a thread that writes the file (and flushes it to disk as it goes, so the final fsync the
//! response waits for has little left), and the caller's thread, which decodes the body and runs
//! the fast checksums (CRC, SHA-256). Small uploads never start a thread.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;
use md5::{Digest, Md5};
use sha2::Sha256;

use super::checksum::{Algorithm, Hasher};

/// Bytes gathered before they are handed to the lanes.
pub const BUFFER_BYTES: usize = 1024 * 1024;
/// Buffers queued per lane: an upload holds at most about this many MiB in memory.
const QUEUE_BUFFERS: usize = 8;
/// The writer lane flushes to disk after this many bytes.
const SYNC_EVERY_BYTES: usize = 16 * 1024 * 1024;

pub struct Staging {
    path: tempfile::TempPath,
    size: u64,
    pending: Vec<u8>,
    sha256: Option<Sha256>,
    checksum: Option<(Algorithm, Hasher)>,
    lanes: Lanes,
}

/// A complete, fsynced file not yet in place; removed if dropped before `FileStore::commit`.
pub struct Staged {
    pub(super) path: tempfile::TempPath,
    pub size: u64,
    pub md5: [u8; 16],
    /// SHA-256 of the bytes, when asked for (to check `x-amz-content-sha256`).
    pub sha256: Option<[u8; 32]>,
    pub checksum: Option<(Algorithm, Vec<u8>)>,
}

enum Lanes {
    /// Nothing handed off yet: `pending` holds every byte so far.
    Inline {
        file: File,
        md5: Md5,
    },
    Threads {
        md5: Lane<Md5>,
        writer: Lane<File>,
    },
    /// A lane failed; the staging file is unusable.
    Broken,
}

/// A thread fed buffers through a bounded queue, returning its result when the queue closes.
struct Lane<T> {
    queue: SyncSender<Bytes>,
    thread: JoinHandle<io::Result<T>>,
}

impl<T: Send + 'static> Lane<T> {
    fn spawn(
        name: &str,
        mut state: T,
        mut work: impl FnMut(&mut T, &[u8]) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Self> {
        let (queue, rx) = sync_channel::<Bytes>(QUEUE_BUFFERS);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            for buffer in rx {
                work(&mut state, &buffer)?;
            }
            Ok(state)
        })?;
        Ok(Lane { queue, thread })
    }

    /// Close the queue and wait for the result.
    fn join(self) -> io::Result<T> {
        drop(self.queue);
        self.thread.join().map_err(|_| io::Error::other("an upload thread panicked"))?
    }
}

impl Staging {
    pub(super) fn new(file: File, path: tempfile::TempPath, checksum: Option<Algorithm>, sha256: bool) -> Staging {
        Staging {
            path,
            size: 0,
            pending: Vec::with_capacity(BUFFER_BYTES),
            sha256: sha256.then(Sha256::new),
            checksum: checksum.map(|a| (a, a.hasher())),
            lanes: Lanes::Inline { file, md5: Md5::new() },
        }
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(h) = self.sha256.as_mut() {
            h.update(data);
        }
        if let Some((_, h)) = self.checksum.as_mut() {
            h.update(data);
        }
        self.pending.extend_from_slice(data);
        self.size += data.len() as u64;
        if self.pending.len() >= BUFFER_BYTES {
            let full = std::mem::replace(&mut self.pending, Vec::with_capacity(BUFFER_BYTES));
            self.hand_off(Bytes::from(full))?;
        }
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn hand_off(&mut self, buffer: Bytes) -> io::Result<()> {
        if let Lanes::Inline { .. } = self.lanes {
            let Lanes::Inline { file, md5 } = std::mem::replace(&mut self.lanes, Lanes::Broken) else {
                unreachable!("matched above")
            };
            let md5 = Lane::spawn("object-md5", md5, |h, b| {
                h.update(b);
                Ok(())
            })?;
            let mut unsynced = 0;
            let writer = Lane::spawn("object-writer", file, move |f, b| {
                f.write_all(b)?;
                unsynced += b.len();
                if unsynced >= SYNC_EVERY_BYTES {
                    f.sync_data()?;
                    unsynced = 0;
                }
                Ok(())
            })?;
            self.lanes = Lanes::Threads { md5, writer };
        }
        let Lanes::Threads { md5, writer } = &self.lanes else {
            return Err(io::Error::other("the staging file failed earlier"));
        };
        if md5.queue.send(buffer.clone()).is_ok() && writer.queue.send(buffer).is_ok() {
            return Ok(());
        }
        // A lane stopped, which only an error does: report it.
        let Lanes::Threads { md5, writer } = std::mem::replace(&mut self.lanes, Lanes::Broken) else {
            unreachable!("matched above")
        };
        writer.join()?;
        md5.join()?;
        Err(io::Error::other("an upload thread stopped early"))
    }

    /// Writes the last bytes and fsyncs the file; the digests are final.
    pub fn finish(mut self) -> io::Result<Staged> {
        let last = std::mem::take(&mut self.pending);
        let (file, md5) = match std::mem::replace(&mut self.lanes, Lanes::Broken) {
            Lanes::Inline { mut file, mut md5 } => {
                md5.update(&last);
                file.write_all(&last)?;
                (file, md5)
            }
            lanes @ Lanes::Threads { .. } => {
                self.lanes = lanes;
                if !last.is_empty() {
                    self.hand_off(Bytes::from(last))?;
                }
                let Lanes::Threads { md5, writer } = std::mem::replace(&mut self.lanes, Lanes::Broken) else {
                    unreachable!("set above")
                };
                (writer.join()?, md5.join()?)
            }
            Lanes::Broken => return Err(io::Error::other("the staging file failed earlier")),
        };
        file.sync_all()?;
        drop(file);
        Ok(Staged {
            path: self.path,
            size: self.size,
            md5: md5.finalize().into(),
            sha256: self.sha256.map(|h| h.finalize().into()),
            checksum: self.checksum.map(|(a, h)| (a, h.finish())),
        })
    }
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged").field("size", &self.size).field("md5", &hex::encode(self.md5)).finish()
    }
}
