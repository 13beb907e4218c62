//! Interoperability with a ZeroMQ peer this project did not write: a Python program on pyzmq
//! (`tests/zmq_peer.py`) exchanges messages of 0 B to 3 MiB with a `ZmqTransport`, in both
//! directions, once binding and once connecting, over tcp and ipc.
//!
//! pyzmq comes from wherever `python3` finds it, else from `target/tmp/pyzmq`, where the first
//! run installs it with `python3 -m pip install --target` (PyPI). Without Python, pip or a
//! way to PyPI each test prints why it was skipped and passes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{ChildGuard, payload, with_deadline};
use switchboard::{Error, Transport, ZmqTransport};

const LIMIT: Duration = Duration::from_secs(120);
const SIZES: [usize; 9] = [0, 1, 250, 251, 65_535, 65_536, 1 << 20, (3 << 20) - 1, 3 << 20];

/// A Python that imports `zmq`, and the `PYTHONPATH` it needs for that.
struct PyZmq {
    python: String,
    path: Option<PathBuf>,
}

impl PyZmq {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.python);
        if let Some(path) = &self.path {
            cmd.env("PYTHONPATH", path);
        }
        cmd
    }

    fn imports_zmq(&self) -> bool {
        let mut cmd = self.command();
        cmd.args(["-c", "import zmq"]).stdout(Stdio::null()).stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    }
}

/// pyzmq, found or installed once per test run; `Err` says why there is none.
fn pyzmq() -> Result<&'static PyZmq, &'static str> {
    static FOUND: OnceLock<Result<PyZmq, String>> = OnceLock::new();
    FOUND.get_or_init(find_or_install).as_ref().map_err(String::as_str)
}

fn find_or_install() -> Result<PyZmq, String> {
    let python = std::env::var("SWITCHBOARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let system = PyZmq { python: python.clone(), path: None };
    if system.imports_zmq() {
        return Ok(system);
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pyzmq");
    let local = PyZmq { python, path: Some(dir.clone()) };
    if local.imports_zmq() {
        return Ok(local);
    }
    println!("zmq_interop: installing pyzmq into {} (python3 -m pip install --target)", dir.display());
    let mut pip = Command::new(&local.python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--target"])
        .arg(&dir)
        .arg("pyzmq")
        .stdin(Stdio::null());
    let child = pip.spawn().map_err(|e| format!("{} cannot be started: {e}", local.python))?;
    let status = ChildGuard::new(child, Duration::from_secs(300)).wait();
    if status.success() && local.imports_zmq() {
        Ok(local)
    } else {
        Err(format!(
            "no {} with pyzmq, and pip could not install it ({status}): no pip, or no way to PyPI",
            local.python
        ))
    }
}

/// Runs `test` with pyzmq, or prints why it is skipped. One at a time: three Python peers
/// moving 3 MiB messages at once on 2 cores can starve an I/O thread past the 1 s heartbeat
/// timeout, which is then a lost connection, as documented.
fn with_pyzmq(name: &str, test: fn(&'static PyZmq)) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match pyzmq() {
        Ok(py) => with_deadline(LIMIT, move || test(py)),
        Err(why) => println!("zmq_interop::{name}: SKIPPED: {why}"),
    }
}

/// Starts tests/zmq_peer.py; returns it, its stdout, and for `bind` the endpoint it bound.
fn start_peer(py: &PyZmq, mode: &str, endpoint: &str) -> (ChildGuard, BufReader<std::process::ChildStdout>, String) {
    let sizes: Vec<String> = SIZES.iter().map(ToString::to_string).collect();
    let mut cmd = py.command();
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zmq_peer.py"))
        .args([mode, endpoint, &sizes.join(",")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start tests/zmq_peer.py");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let child = ChildGuard::new(child, LIMIT);
    let mut endpoint = endpoint.to_owned();
    if mode == "bind" {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the peer's endpoint");
        endpoint = line.strip_prefix("ENDPOINT ").expect("the peer says ENDPOINT first").trim().to_owned();
    }
    (child, stdout, endpoint)
}

/// What the Python peer sends of `size` bytes: byte i is (i * 31 + size) % 251.
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + size) % 251) as u8).collect()
}

/// Our messages out and echoed back, then the peer's own, then goodbye.
fn exchange(t: &mut ZmqTransport, child: ChildGuard, mut stdout: BufReader<std::process::ChildStdout>) {
    let mut buf = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        let msg = payload(i as u64, size);
        t.send(&msg).unwrap();
        assert_eq!(t.recv_timeout(&mut buf, LIMIT).unwrap(), size);
        assert!(buf == msg, "{size}-byte message came back from pyzmq different");
    }
    t.send(b"switch").unwrap();
    for &size in &SIZES {
        assert_eq!(t.recv_timeout(&mut buf, LIMIT).unwrap(), size);
        assert!(buf == pattern(size), "pyzmq's {size}-byte message arrived different");
    }
    t.recv_timeout(&mut buf, LIMIT).unwrap();
    assert_eq!(buf, b"sent");
    t.send(b"bye").unwrap();
    child.wait_success();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("ECHOED {}", SIZES.len()));
    // The peer closed: we are told.
    assert!(matches!(t.recv_timeout(&mut buf, LIMIT), Err(Error::Disconnected)));
}

#[test]
fn python_binds_we_connect_over_tcp() {
    with_pyzmq("python_binds_we_connect_over_tcp", |py| {
        let (child, stdout, endpoint) = start_peer(py, "bind", "tcp://127.0.0.1:*");
        let mut t = ZmqTransport::connect(&endpoint, &common::options()).unwrap();
        exchange(&mut t, child, stdout);
    });
}

#[test]
fn we_bind_python_connects_over_ipc() {
    with_pyzmq("we_bind_python_connects_over_ipc", |py| {
        let name = format!("ipc://@switchboard-interop-{}", std::process::id());
        let mut t = ZmqTransport::bind(&name, &common::options()).unwrap();
        let (child, stdout, _) = start_peer(py, "connect", t.endpoint());
        exchange(&mut t, child, stdout);
    });
}

#[test]
fn killed_python_peer_is_disconnected() {
    with_pyzmq("killed_python_peer_is_disconnected", |py| {
        let (mut child, _stdout, endpoint) = start_peer(py, "bind", "tcp://127.0.0.1:*");
        let mut t = ZmqTransport::connect(&endpoint, &common::options()).unwrap();
        let mut buf = Vec::new();
        t.send(b"are you there").unwrap();
        t.recv_timeout(&mut buf, LIMIT).unwrap();
        child.kill();
        let started = Instant::now();
        let got = t.recv_timeout(&mut buf, Duration::from_secs(2));
        assert!(matches!(got, Err(Error::Disconnected)), "{got:?} after {:?}", started.elapsed());
        let _ = child.wait();
    });
}
