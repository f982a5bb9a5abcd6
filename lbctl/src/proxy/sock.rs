//! Writes to proxied sockets as `send(2)` / `sendmsg(2)` instead of the `write(2)` /
//! `writev(2)` that tokio issues: the socket calls go straight to the protocol, without
//! the file layer's checks and accounting that a generic write passes through (HAProxy
//! sends the same way). The profile of the proxy under `cargo xtask bench proxy` showed
//! `vfs_writev`, `fdget_pos` and `sock_write_iter` on every response and request head.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use tokio::net::TcpStream;

/// `bufs` in one `send`/`sendmsg` on `stream` if it is writable (WouldBlock otherwise,
/// and then tokio waits for the next write readiness); the bytes taken.
pub fn send_vectored(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let fd = stream.as_raw_fd();
    stream.try_io(tokio::io::Interest::WRITABLE, || send_raw(fd, bufs))
}

/// Upper bound on the slices of one call (the kernel's UIO_MAXIOV).
const MAX_IOV: usize = 1024;

fn send_raw(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let bufs = &bufs[..bufs.len().min(MAX_IOV)];
    let n = match bufs {
        [] => return Ok(0),
        // SAFETY: fd is an open socket; the slice is valid for its length.
        [one] => unsafe {
            libc::send(
                fd,
                one.as_ptr() as *const libc::c_void,
                one.len(),
                libc::MSG_NOSIGNAL,
            )
        },
        many => {
            // SAFETY: an all-zero msghdr is valid (no address, no control data).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            // IoSlice is ABI-compatible with iovec on Unix (std guarantees it); sendmsg
            // only reads the vectors.
            msg.msg_iov = many.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = many.len() as _;
            // SAFETY: fd is an open socket; msg points at `many`, valid for the call.
            unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
        }
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn one_or_many_slices_arrive_in_order() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        c.writable().await.unwrap();
        assert_eq!(send_vectored(&c, &[IoSlice::new(b"head ")]).unwrap(), 5);
        let parts = [
            IoSlice::new(b"GET "),
            IoSlice::new(b""),
            IoSlice::new(b"/x"),
        ];
        assert_eq!(send_vectored(&c, &parts).unwrap(), 6);
        assert_eq!(send_vectored(&c, &[]).unwrap(), 0);
        let mut got = vec![0u8; 11];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"head GET /x");
        // A closed peer: an error, not a SIGPIPE.
        drop(s);
        let mut err = None;
        for _ in 0..50 {
            match send_vectored(&c, &[IoSlice::new(b"more")]) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                    err = Some(e);
                    break;
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        assert!(err.is_some(), "writing to a closed peer never failed");
    }
}
