//! Size-capped daemon logs: `NAME.log` grows to [`MAX_BYTES`], then becomes `NAME.log.1`
//! (the older `.1` becomes `.2`, and so on; the oldest beyond [`FILES`] is deleted). The
//! lab's logs live on tmpfs (/run), so an unbounded log eats memory: a daemon's log takes
//! at most `MAX_BYTES × FILES` (12 MiB). The supervisor owns each daemon's output through a
//! pipe and is the only writer, so rotation needs no signal to the daemon.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

/// Size at which a log is rotated (4 MiB).
pub const MAX_BYTES: u64 = 4 << 20;
/// Files kept per log, the current one included (`.log`, `.log.1`, `.log.2`).
pub const FILES: usize = 3;

/// A log file written through rotation.
pub struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    files: usize,
    file: File,
    size: u64,
}

impl Rotating {
    /// Opens (appends to) `path`, rotating at `max_bytes` and keeping `files` files.
    pub fn open(path: &Path, max_bytes: u64, files: usize) -> io::Result<Rotating> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Rotating {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            files: files.max(1),
            file,
            size,
        })
    }

    /// Appends `buf`, rotating first if it would take the file over the cap (a file is
    /// never rotated empty, so one chunk larger than the cap still lands whole).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.files == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(numbered(&self.path, self.files - 1));
        for k in (1..self.files - 1).rev() {
            let from = numbered(&self.path, k);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, k + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Copies `input` into the log until end of file, in chunks that end on a line
    /// boundary when the input has one (so a rotation does not split a line).
    pub fn copy_from(&mut self, input: impl io::Read) -> io::Result<()> {
        let mut r = io::BufReader::with_capacity(64 << 10, input);
        loop {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(());
            }
            let n = buf
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(buf.len(), |i| i + 1);
            // A full disk must not stop the daemon: its output is dropped, not blocked.
            let _ = self.write(&buf[..n]);
            r.consume(n);
        }
    }
}

/// `path` with `.k` appended (`bal1.agent.log.2`).
pub fn numbered(path: &Path, k: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

/// The files of one log that exist, oldest first: by modification time, so both our
/// shifting names (`.log.2`, `.log.1`, `.log`) and Apache rotatelogs' circular ones (the
/// current file may be `.log.1`) read in order; equal times keep the shifting order.
pub fn in_order(path: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(std::time::SystemTime, PathBuf)> = (1..FILES.max(2) + 8)
        .rev()
        .map(|k| numbered(path, k))
        .chain(std::iter::once(path.to_path_buf()))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    v.sort_by_key(|(t, _)| *t);
    v.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_cap_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.agent.log");
        let mut r = Rotating::open(&path, 100, 3).unwrap();
        let lines: Vec<String> = (0..20)
            .map(|i| format!("line {i:02} {}\n", "x".repeat(20)))
            .collect();
        for l in &lines {
            r.write(l.as_bytes()).unwrap();
        }
        // 30-byte lines, 3 per 100-byte file: 20 lines fill 7 files, the newest 3 are kept.
        assert!(path.exists() && numbered(&path, 1).exists() && numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists(), "only 3 files are kept");
        for f in in_order(&path) {
            let len = std::fs::metadata(&f).unwrap().len();
            assert!(len <= 100, "{} is {len} bytes", f.display());
        }
        let all: String = in_order(&path)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        // The last 20 % 3 = 2 lines are in the current file, 3 each in .1 and .2.
        assert_eq!(
            all,
            lines[12..].concat(),
            "oldest first, nothing lost in between"
        );
    }

    #[test]
    fn reopening_counts_the_existing_size_and_copy_keeps_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.serve.log");
        std::fs::write(&path, "0123456789\n").unwrap();
        let mut r = Rotating::open(&path, 25, 2).unwrap();
        r.copy_from(&b"aaaaaaaaa\nbbbbbbbbb\n"[..]).unwrap();
        // 11 + 20 > 25: the existing file is rotated before the chunk, which lands whole.
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 1)).unwrap(),
            "0123456789\n"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "aaaaaaaaa\nbbbbbbbbb\n"
        );
        assert_eq!(in_order(&path), vec![numbered(&path, 1), path.clone()]);
    }

    #[test]
    fn circular_names_read_by_time() {
        // rotatelogs -n 3 after one wrap: x.log.1 is the oldest, x.log.2 then x.log.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for (k, p) in [
            (0u64, numbered(&path, 1)),
            (10, numbered(&path, 2)),
            (20, path.clone()),
        ] {
            let f = File::create(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(k))
                .unwrap();
        }
        assert_eq!(
            in_order(&path),
            vec![numbered(&path, 1), numbered(&path, 2), path.clone()]
        );
    }

    #[test]
    fn one_file_means_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut r = Rotating::open(&path, 10, 1).unwrap();
        r.write(b"12345678\n").unwrap();
        r.write(b"abc\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc\n");
        assert!(!numbered(&path, 1).exists());
    }
}
