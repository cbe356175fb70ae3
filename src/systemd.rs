//! systemd's service protocol for `Type=notify` units: `READY=1` once the pipeline is open,
//! `WATCHDOG=1` while the loop turns (`WatchdogSec=`), `STOPPING=1` at the end.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` to the socket systemd named in `NOTIFY_SOCKET` (a path, or `@name` for an
/// abstract socket); false when there is none or the send failed (not under systemd).
pub fn notify(state: &str) -> bool {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return false;
    };
    let target = target.to_string_lossy().into_owned();
    let sent = if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &target)
    };
    sent.is_ok()
}

/// How often systemd expects `WATCHDOG=1` (half its `WatchdogSec=`), when it watches this
/// process.
pub fn watchdog_every() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
