//! Helpers shared by the integration tests: deadlines, child guards, payloads, leak checks.
#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use switchboard::{Error, Options, Transport};

/// Options for tests: a 9 MiB maximum (so 8 MiB messages fit and max+1 stays cheap), short
/// handshake timeout.
pub fn options() -> Options {
    Options::new().max_message_size(MAX).handshake_timeout(Duration::from_secs(20))
}

pub const MAX: usize = 9 << 20;

/// Runs `f` on its own thread; panics (failing the test) if it does not finish by `limit`.
pub fn with_deadline<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => {
            let _ = handle.join();
            value
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("test did not finish within {limit:?}: a transport call hung"),
    }
}

/// A seeded generator (xorshift64) for reproducible random tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Overwrites a few random bytes of `data`.
    pub fn mutate(&mut self, data: &mut [u8]) {
        if data.is_empty() {
            return;
        }
        for _ in 0..=self.next() % 3 {
            let at = (self.next() as usize) % data.len();
            data[at] = self.next() as u8;
        }
    }
}

/// A deterministic payload: `len` bytes derived from `seed`, so the receiver can check it.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A sequenced, checksummed message: seq (8 B), FNV-1a of the body (8 B), body.
pub fn sequenced(seq: u64, len: usize) -> Vec<u8> {
    let body = payload(seq, len);
    let mut out = Vec::with_capacity(16 + len);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&fnv(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks a message made by [`sequenced`]; returns its sequence number.
pub fn check_sequenced(msg: &[u8]) -> Result<u64, String> {
    if msg.len() < 16 {
        return Err(format!("message of {} bytes is too short to be sequenced", msg.len()));
    }
    let seq = u64::from_le_bytes(msg[..8].try_into().unwrap());
    let sum = u64::from_le_bytes(msg[8..16].try_into().unwrap());
    if fnv(&msg[16..]) != sum || msg[16..] != payload(seq, msg.len() - 16)[..] {
        return Err(format!("message {seq} is corrupt"));
    }
    Ok(seq)
}

pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// The library's `ChildGuard` with the test habits: a deadline always, and a panic (failing
/// the test) instead of an error when the child had to be killed at it.
pub struct ChildGuard(switchboard::ChildGuard);

impl ChildGuard {
    pub fn new(child: Child, limit: Duration) -> Self {
        ChildGuard(switchboard::ChildGuard::with_deadline(child, limit))
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
    }

    /// Waits for the child; panics if the watchdog had to kill it.
    pub fn wait(self) -> ExitStatus {
        match self.0.wait() {
            Ok(status) => status,
            Err(Error::Timeout) => panic!("child hung and was killed at its deadline"),
            Err(e) => panic!("waiting for the child: {e}"),
        }
    }

    /// Waits and asserts a zero exit status.
    pub fn wait_success(self) {
        let status = self.wait();
        assert!(status.success(), "child failed: {status}");
    }
}

/// A command that re-runs this test binary as the child in `role`.
pub fn child_command(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.env(ROLE_ENV, role);
    cmd
}

pub const ROLE_ENV: &str = "SWITCHBOARD_TEST_ROLE";

/// Open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Entries in /dev/shm whose name mentions switchboard.
pub fn shm_entries() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("switchboard"))
                .collect()
        })
        .unwrap_or_default()
}

/// Sends 8 sequenced 1 MiB messages before reading, then reads and checks the peer's 8: both
/// ends doing this at once deadlocks unless a blocked send keeps reading.
pub fn flood(t: &mut dyn Transport) {
    for seq in 0..8u64 {
        t.send(&sequenced(seq, 1 << 20)).unwrap();
    }
    let mut buf = Vec::new();
    for expected in 0..8u64 {
        t.recv(&mut buf).unwrap();
        assert_eq!(check_sequenced(&buf).unwrap(), expected);
    }
}

/// Receives until `Disconnected`, which must come within `limit`; fails on anything else.
pub fn expect_disconnected(t: &mut dyn Transport, limit: Duration) {
    let end = Instant::now() + limit;
    let mut buf = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match t.recv_timeout(&mut buf, left) {
            Err(Error::Disconnected) => return,
            Err(Error::Timeout) => panic!("no Disconnected within {limit:?}"),
            Ok(_) => continue,
            Err(e) => panic!("expected Disconnected, got {e:?}"),
        }
    }
}

/// Sends until `Disconnected`; fails if it does not come within `limit` or another error does.
pub fn send_until_disconnected(t: &mut dyn Transport, limit: Duration) {
    let end = Instant::now() + limit;
    let msg = vec![0u8; 4096];
    while Instant::now() < end {
        match t.send(&msg) {
            Ok(()) => {}
            Err(Error::Disconnected) => return,
            Err(e) => panic!("expected Disconnected from send, got {e:?}"),
        }
    }
    panic!("send never reported Disconnected within {limit:?}");
}

/// A test for the `harness = false` runners.
pub type NamedTest = (String, Box<dyn Fn() + Send + Sync>);

/// Runs `tests` (filtered by the command line's free arguments) one after another, each on a
/// thread with a deadline; prints `N passed, N failed` and exits non-zero on any failure.
pub fn run_tests(tests: Vec<NamedTest>, limit: Duration, after_all: impl FnOnce() -> Vec<String>) -> ! {
    use std::io::Write as _;
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<_> =
        tests.into_iter().filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f))).collect();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in selected {
        let test: &'static (dyn Fn() + Send + Sync) = Box::leak(test);
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| with_deadline(limit, test)));
        let secs = started.elapsed().as_secs_f64();
        if result.is_ok() {
            passed += 1;
            println!("test {name} ... ok ({secs:.2} s)");
        } else {
            failed += 1;
            println!("test {name} ... FAILED ({secs:.2} s)");
        }
        let _ = std::io::stdout().flush();
    }
    for problem in after_all() {
        failed += 1;
        println!("test after_all ... FAILED: {problem}");
    }
    println!("\n{passed} passed, {failed} failed");
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

/// Zombie children of this process (state Z in /proc).
pub fn zombies() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse::<u32>().ok()));
        if state == Some("Z") && ppid == Some(me) {
            out.push(pid);
        }
    }
    out
}

/// Private socket directories this process created and left behind.
pub fn socket_dirs() -> Vec<String> {
    let prefix = format!("switchboard-{}-", std::process::id());
    let mut out = Vec::new();
    let mut bases = vec![std::env::temp_dir()];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        bases.push(x.into());
    }
    for base in bases {
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                out.push(name);
            }
        }
    }
    out
}

/// A raw socket to a listener's address, for speaking bytes that are not switchboard's.
pub enum RawConn {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl RawConn {
    pub fn connect(addr: &switchboard::Address) -> std::io::Result<RawConn> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixStream};
        Ok(match addr {
            switchboard::Address::Tcp(a) => RawConn::Tcp(std::net::TcpStream::connect(a)?),
            switchboard::Address::Unix(p) => RawConn::Unix(UnixStream::connect(p)?),
            switchboard::Address::UnixAbstract(name) => {
                RawConn::Unix(UnixStream::connect_addr(&SocketAddr::from_abstract_name(name)?)?)
            }
            other => panic!("no raw connection to {other}"),
        })
    }

    pub fn shutdown_write(&self) -> std::io::Result<()> {
        match self {
            RawConn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            RawConn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl std::io::Read for RawConn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RawConn::Tcp(s) => s.read(buf),
            RawConn::Unix(s) => s.read(buf),
        }
    }
}

impl std::io::Write for RawConn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            RawConn::Tcp(s) => s.write(buf),
            RawConn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fresh directory under the temporary directory, named by pid and counter, removed with
/// everything in it on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("switchboard-test-{what}-{}-{n}", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every transport to test, shm once per wait strategy, each with `base` options: labels
/// like "tcp" and "shm-spin".
pub fn transport_configs(base: &Options) -> Vec<(String, switchboard::Kind, Options)> {
    let mut out = Vec::new();
    for kind in switchboard::Kind::ALL {
        if kind == switchboard::Kind::Shm {
            for wait in switchboard::WaitStrategy::ALL {
                out.push((format!("shm-{wait}"), kind, base.clone().wait_strategy(wait)));
            }
        } else {
            out.push((kind.to_string(), kind, base.clone()));
        }
    }
    out
}
