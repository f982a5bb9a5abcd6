//! BPDUs in and out of one bridge port: an AF_PACKET socket bound to the port with
//! `ETH_P_ALL`, so it sees every frame the port receives *before* the bridge does (and
//! before the BPF gate at TC ingress drops the BPDU so the bridge never floods it).
//!
//! The socket ignores what leaves the port (`PACKET_IGNORE_OUTGOING`: our own BPDUs, frames
//! the bridge forwards) and a classic BPF filter lets through only frames for the STP group
//! address, so a busy port costs the daemon nothing. Being bound to the port, it never sees
//! the copies the bridge delivers to its own device. What passes is decoded with
//! [`crate::rstp::bpdu::decode_frame`]; a frame it refuses is counted under its reason.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use tokio::io::unix::AsyncFd;

use crate::rstp::bpdu::{self, DropReason};
use crate::rstp::types::Bpdu;

/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h, since 4.20; absent from older libc crates).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Largest frame we read: a BPDU fits in 64 bytes; anything longer is truncated and then
/// refused by the codec (its 802.3 length does not match).
const FRAME_MAX: usize = 1518;

/// One port's BPDU socket.
pub struct PortSocket {
    fd: AsyncFd<OwnedFd>,
    /// The port's MAC: the source of every BPDU we send on it.
    pub mac: [u8; 6],
    pub ifindex: u32,
}

/// The filter: accept (whole frame) when the destination MAC is 01:80:c2:00:00:00, else drop.
fn stp_group_filter() -> [libc::sock_filter; 6] {
    let g = bpdu::STP_GROUP;
    let hi = u32::from_be_bytes([g[0], g[1], g[2], g[3]]);
    let lo = u32::from(u16::from_be_bytes([g[4], g[5]]));
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    [
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 3, hi),
        op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 4),
        op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, lo),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0xffff),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ]
}

fn check(r: libc::c_int, what: &str) -> Result<()> {
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

impl PortSocket {
    /// Opens the socket of port `ifindex` (whose MAC is `mac`): filter and options first,
    /// then the bind, so it never holds a frame of another port.
    pub fn open(ifindex: u32, mac: [u8; 6]) -> Result<PortSocket> {
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        check(raw, "opening an AF_PACKET socket (needs CAP_NET_RAW)")?;
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let filter = stp_group_filter();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads exactly the given sizes from live locals; the kernel
        // copies the filter program before returning.
        unsafe {
            check(
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ATTACH_FILTER,
                    (&prog as *const libc::sock_fprog).cast(),
                    std::mem::size_of::<libc::sock_fprog>() as u32,
                ),
                "attaching the STP group filter",
            )?;
            check(
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    PACKET_IGNORE_OUTGOING,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                ),
                "PACKET_IGNORE_OUTGOING",
            )?;
        }
        bind(&fd, ifindex)?;
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until dropped; nothing
        // else closes or replaces the descriptor.
        let fd =
            unsafe { AsyncFd::register(fd) }.context("registering the port socket with tokio")?;
        Ok(PortSocket { fd, mac, ifindex })
    }

    /// The next frame for the STP group address, decoded (or the reason it was refused).
    pub async fn recv(&self) -> std::io::Result<Result<Bpdu, DropReason>> {
        let mut buf = [0u8; FRAME_MAX];
        loop {
            let mut g = self.fd.readable().await?;
            let r = g.try_io(|fd| {
                // SAFETY: recv writes at most buf.len() bytes into buf.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(Ok(n)) => return Ok(bpdu::decode_frame(&buf[..n])),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENETDOWN) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one BPDU from this port (its MAC as the source).
    pub fn send(&self, b: &Bpdu) -> std::io::Result<()> {
        let frame = bpdu::encode_frame(self.mac, b);
        // SAFETY: send reads exactly frame.len() bytes from frame.
        let n = unsafe {
            libc::send(
                self.fd.get_ref().as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Binds a packet socket to one interface, all protocols.
fn bind(fd: &OwnedFd, ifindex: u32) -> Result<()> {
    // SAFETY: sockaddr_ll is plain old data, zeroed then filled; bind reads exactly its size.
    let r = unsafe {
        let mut sa: libc::sockaddr_ll = std::mem::zeroed();
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sa.sll_ifindex = ifindex as i32;
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    check(
        r,
        &format!("binding the packet socket to ifindex {ifindex}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter program, run by hand on two destination MACs: the STP group passes whole,
    /// anything else (here LLDP's 01:80:c2:00:00:0e) is dropped.
    #[test]
    fn filter_accepts_only_the_stp_group() {
        let prog = stp_group_filter();
        let run = |dst: [u8; 6]| -> u32 {
            let mut acc = 0u32;
            let mut pc = 0usize;
            loop {
                let i = prog[pc];
                let class = u32::from(i.code) & 0x07;
                match class {
                    c if c == libc::BPF_LD => {
                        let k = i.k as usize;
                        acc = if u32::from(i.code) & 0x18 == libc::BPF_W {
                            u32::from_be_bytes([dst[k], dst[k + 1], dst[k + 2], dst[k + 3]])
                        } else {
                            u32::from(u16::from_be_bytes([dst[k], dst[k + 1]]))
                        };
                        pc += 1;
                    }
                    c if c == libc::BPF_JMP => {
                        pc += 1 + usize::from(if acc == i.k { i.jt } else { i.jf });
                    }
                    _ => return i.k,
                }
            }
        };
        assert_eq!(run(bpdu::STP_GROUP), 0xffff);
        assert_eq!(run([0x01, 0x80, 0xc2, 0, 0, 0x0e]), 0);
        assert_eq!(run([0x02, 0x80, 0xc2, 0, 0, 0]), 0);
    }
}
