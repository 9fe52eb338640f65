//! Files in the page cache: `CreateFile`, `WriteFile` (`pwrite`), `Sendfile` (file pages
//! into the socket, by reference) and `RemoveFile`.
//!
//! Why a module: the files live in one temporary directory on tmpfs, created on first
//! use, and are named by the policy's [`FileId`]s; only these operations touch them.

use super::buffer::fill;
use super::{Executor, Halt, Step};
use crate::sys;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use zcsafe_policy::{FileId, Outcome, Region};

/// The run's files and the directory that holds them.
#[derive(Default)]
pub(super) struct Files {
    dir: Option<tempfile::TempDir>,
    open: HashMap<FileId, (PathBuf, File)>,
}

impl Executor {
    /// The open file `file`, or a policy bug saying what it tried (`wrote`, `sent`).
    fn file(&self, file: FileId, verb: &str) -> Result<&File, Halt> {
        match self.files.open.get(&file) {
            Some((_, f)) => Ok(f),
            None => Err(Halt::Failed(format!(
                "policy {verb} file{file}, which does not exist"
            ))),
        }
    }

    /// `Op::CreateFile`: an empty file (truncated if it existed).
    pub(super) fn create_file(&mut self, file: FileId) -> Step {
        if self.files.dir.is_none() {
            // tmpfs, so pages live in the page cache only (`shmem_file_splice_read`).
            let dir = tempfile::Builder::new()
                .prefix("zcsafe-")
                .tempdir_in("/dev/shm")
                .or_else(|_| tempfile::Builder::new().prefix("zcsafe-").tempdir())
                .map_err(|e| Halt::Failed(format!("temp dir: {e}")))?;
            self.files.dir = Some(dir);
        }
        let path = self
            .files
            .dir
            .as_ref()
            .expect("created above")
            .path()
            .join(format!("file{file}"));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Halt::Failed(format!("create {}: {e}", path.display())))?;
        // Re-creating truncates: the old pages leave the page cache.
        self.reuses.release_file(file);
        self.files.open.insert(file, (path, f));
        Ok(Outcome::Ok)
    }

    /// `Op::WriteFile`: stream bytes from offset `at` into `region` of the file.
    pub(super) fn write_file(&mut self, file: FileId, region: Region, at: u64) -> Step {
        let f = self.file(file, "wrote")?;
        let mut data = vec![0u8; region.len as usize];
        fill(&mut data, at, self.seed);
        match f.write_all_at(&data, region.offset) {
            Ok(()) => {
                // Measured just after the write: the receiver only gets further, so this
                // never counts a reuse as exposed that was not.
                self.reuses.write_file(file, region, at);
                Ok(Outcome::Ok)
            }
            Err(e) => Ok(self.err("pwrite", &e)),
        }
    }

    /// `Op::Sendfile`: one blocking `sendfile` of `region` of the file.
    pub(super) fn sendfile(&mut self, file: FileId, region: Region) -> Step {
        let ffd = self.file(file, "sent")?.as_raw_fd();
        let fd = self.fd();
        let mut off = region.offset as libc::off_t;
        let n = sys::retry_eintr(|| sys::sendfile(fd, ffd, &mut off, region.len as usize));
        self.blocking_write("sendfile", n)
    }

    /// `Op::RemoveFile`: closes and unlinks it.
    pub(super) fn remove_file(&mut self, file: FileId) -> Step {
        let Some((path, f)) = self.files.open.remove(&file) else {
            return Err(Halt::Failed(format!(
                "policy removed file{file}, which does not exist"
            )));
        };
        drop(f);
        let _ = std::fs::remove_file(path);
        self.reuses.release_file(file);
        Ok(Outcome::Ok)
    }
}
