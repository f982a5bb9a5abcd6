//! Small-packet load for `cargo xtask bench datapath`: a UDP sender that batches 64 datagrams
//! per `sendmmsg` call and a receiver that counts them with `recvmmsg`, so the packet rate is
//! bounded by the path between them rather than by one system call per packet (iperf3's UDP
//! mode sends one datagram per call and saturates at the sender).
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

const BATCH: usize = 64;

#[derive(Debug, Serialize)]
pub struct Blast {
    pub packets: u64,
    pub secs: f64,
    pub pps: f64,
}

/// Sends `len`-byte datagrams to `to` as fast as possible for `secs` seconds.
pub fn send(to: SocketAddr, len: usize, secs: f64) -> Result<Blast> {
    let sock = UdpSocket::bind("0.0.0.0:0").context("bind")?;
    sock.connect(to).with_context(|| format!("connect {to}"))?;
    let payload = vec![0x5au8; len];
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    let mut msgs = mmsg_headers(&mut iov);
    let fd = sock.as_raw_fd();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        // SAFETY: msgs/iov/payload outlive the call.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent += n as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Blast {
        packets: sent,
        secs,
        pps: sent as f64 / secs,
    })
}

/// Counts datagrams arriving on `listen` for `secs` seconds after the first one (gives up
/// after `wait` without any).
pub fn sink(listen: SocketAddr, secs: f64, wait: Duration) -> Result<Blast> {
    let sock = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    let fd = sock.as_raw_fd();
    let big: libc::c_int = 8 << 20;
    // SAFETY: valid option pointer and length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut msgs = mmsg_headers(&mut iov);
    let opened = Instant::now();
    let mut first: Option<Instant> = None;
    let mut got = 0u64;
    loop {
        let now = Instant::now();
        match first {
            None if now - opened > wait => break,
            Some(t) if now - t >= Duration::from_secs_f64(secs) => break,
            _ => {}
        }
        // SAFETY: msgs/iov/bufs outlive the call.
        let n =
            unsafe { libc::recvmmsg(fd, msgs.as_mut_ptr(), BATCH as u32, 0, std::ptr::null_mut()) };
        if n > 0 {
            first.get_or_insert(now);
            got += n as u64;
        }
    }
    let secs = first.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    Ok(Blast {
        packets: got,
        secs,
        pps: if secs > 0.0 { got as f64 / secs } else { 0.0 },
    })
}

/// One message header per iovec, each pointing at its own (the caller keeps `iov` and the
/// buffers alive while the headers are used).
fn mmsg_headers(iov: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iov.iter_mut()
        .map(|v| {
            // SAFETY: an all-zero mmsghdr is a valid empty header.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect()
}
