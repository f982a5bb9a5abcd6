//! What the kernel knows about a TCP connection (TCP_INFO), for the decisions that need
//! it: whether the peer acknowledged what we sent (a silent backend), and whether a
//! connect needed retransmissions (Karn's rule: such a connect's time is not a sample of
//! the backend's connect time).

use std::os::fd::AsRawFd;

/// The kernel's TCP_INFO of `s`, None when it cannot be read.
fn read(s: &impl AsRawFd) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain integers, for which all-zero bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: valid fd; `info` and `len` describe a writable buffer of that size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

/// Whether the peer's TCP stack has acknowledged everything written on `s`. When the
/// kernel cannot tell, yes: the caller then waits for the answer rather than sending a
/// request twice.
pub fn acknowledged(s: &impl AsRawFd) -> bool {
    read(s).is_none_or(|i| i.tcpi_unacked == 0)
}

/// Whether anything on `s` (its SYN included) had to be retransmitted. Unknown: yes (the
/// connect's time is then not used as a sample).
pub fn retransmitted(s: &impl AsRawFd) -> bool {
    read(s).is_none_or(|i| i.tcpi_total_retrans > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loopback_connection_is_acknowledged_without_retransmissions() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (_s, _) = l.accept().await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let t = std::time::Instant::now();
        while !acknowledged(&c) && t.elapsed() < std::time::Duration::from_secs(2) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(acknowledged(&c));
        assert!(!retransmitted(&c));
    }
}
