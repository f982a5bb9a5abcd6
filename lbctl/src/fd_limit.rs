//! The open-file limit: each proxied connection costs two descriptors (client and
//! backend), so the 1024 soft limit many systems start a process with would stop the
//! proxy near 500 connections, far below `limits.max_conns`. The soft limit is raised to
//! the hard one, which needs no privilege.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// RLIMIT_NOFILE before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit if it is lower.
pub fn raise() -> nix::Result<NoFile> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (now, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(NoFile {
        before: soft,
        now,
        hard,
    })
}

/// Descriptors the proxy may need at its connection limit: two per connection (client
/// and backend) and a margin for listeners, health checks, the admin port and logs.
pub fn wanted(max_conns: usize) -> u64 {
    max_conns as u64 * 2 + 256
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_leaves_soft_at_hard() {
        let l = raise().unwrap();
        assert_eq!(l.now, l.hard);
        assert!(l.now >= l.before);
        assert_eq!(wanted(4096), 8448);
    }
}
