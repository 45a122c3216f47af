//! The two system calls the router needs that no safe wrapper here offers: entering a network
//! namespace (`setns`) and making a TUN device (`ioctl(TUNSETIFF)`). Linux only.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// Moves the calling thread into the network namespace `ns` (an open `/run/netns/NAME`, or
/// `/proc/self/ns/net` opened earlier to come back).
pub fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: `setns` takes a file descriptor, valid for the call since `ns` lives across it,
    // and a flag; it changes only this thread's network namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the rest of the union
/// padding).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens a new TUN device called `name` (IP packets, no extra header) in the calling thread's
/// network namespace, non-blocking. It exists while the returned file is open.
pub fn open_tun(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` has its layout (40 bytes:
    // the name, the flags, the padding of the union) and outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}
