//! An echo server with one thread per client, as in the socket HOWTO: the listening socket
//! only produces client connections, and each connection gets its own thread.
//!
//! ```text
//! cargo run --release --example echo_server                       # demo: server + 16 client processes
//! cargo run --release --example echo_server -- serve --transport unix
//! cargo run --release --example echo_server -- client unix:@switchboard-...   # the address serve printed
//! ```

mod common;

use std::collections::HashMap;
use std::error::Error;
use std::io::{self, Write};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use switchboard::{Address, Error as SbError, Kind, Listener, Options, Selector, Transport, connect};

/// An echo server, with one thread per client or one thread for all of them, and the clients
/// that check it.
///
/// Without a command, runs the demo: a server and 16 client processes (copies of this
/// program) that each send messages and check every echo. `serve` runs a server until
/// killed; `client` checks a running server. `--model select` serves every client from one
/// thread through a `Selector` (the HOWTO's non-blocking sockets multiplexed with select).
#[derive(Parser, Debug)]
#[command(name = "echo_server")]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Start a server and N client processes, check every echo, report (the default).
    Demo {
        /// tcp, unix or shm
        #[arg(long, default_value = "tcp")]
        transport: Kind,
        /// Client processes to start
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Messages each client sends and checks
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// thread (one per client) or select (one thread for all)
        #[arg(long, default_value = "thread")]
        model: Model,
    },
    /// Serve until killed, printing the address to connect to.
    Serve {
        /// tcp, unix or shm
        #[arg(long, default_value = "tcp")]
        transport: Kind,
        /// thread (one per client) or select (one thread for all)
        #[arg(long, default_value = "thread")]
        model: Model,
    },
    /// Connect to a server, send messages, check the echoes.
    Client {
        /// tcp:HOST:PORT or unix:PATH
        address: Address,
        /// Messages to send and check
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// Message size in bytes
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Print nothing on success
        #[arg(long)]
        quiet: bool,
    },
}

/// User and system CPU time of this process's threads so far (the server: the clients are
/// other processes).
fn server_cpu() -> Duration {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let secs = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
            secs(u.user_time()) + secs(u.system_time())
        })
        .unwrap_or_default()
}

/// How the server serves its clients.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Model {
    /// A thread per client, blocked in `recv`.
    Thread,
    /// One thread for every client, waiting on all of them with a `Selector`.
    Select,
}

/// Serves the listener's clients from this one thread: the listener and every connection in
/// one `Selector`; each ready connection is drained with `recv_timeout(ZERO)`. Returns after
/// `stop_after` clients have come and gone (never, for `None`).
fn serve_selected(listener: &Listener, stop_after: Option<usize>, echoed: &AtomicU64) -> Result<(), SbError> {
    const LISTENER: u64 = u64::MAX;
    let mut selector = Selector::new()?;
    selector.add(listener, LISTENER)?;
    let mut conns: HashMap<u64, Box<dyn Transport>> = HashMap::new();
    let (mut next, mut gone) = (0u64, 0usize);
    let (mut ready, mut buf) = (Vec::new(), Vec::new());
    while stop_after.is_none_or(|n| gone < n) {
        selector.wait(&mut ready, None)?;
        for &key in &ready {
            if key == LISTENER {
                while let Ok(conn) = listener.accept_timeout(Duration::ZERO) {
                    selector.add(conn.as_ref(), next)?;
                    conns.insert(next, conn);
                    next += 1;
                }
                continue;
            }
            let Some(conn) = conns.get_mut(&key) else { continue };
            loop {
                match conn.recv_timeout(&mut buf, Duration::ZERO) {
                    // A blocking send: fine for echoes smaller than the socket buffer, which
                    // the client reads before it sends again.
                    Ok(_) => match conn.send(&buf) {
                        Ok(()) => {
                            echoed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            conns.remove(&key);
                            gone += 1;
                            break;
                        }
                    },
                    Err(SbError::Timeout) => break,
                    Err(e) => {
                        if !matches!(e, SbError::Disconnected) {
                            let _ = writeln!(io::stderr(), "client error: {e}");
                        }
                        // Dropping the connection takes it out of the selector.
                        conns.remove(&key);
                        gone += 1;
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

fn bind(kind: Kind) -> Result<Listener, Box<dyn Error>> {
    let options = Options::new();
    Ok(match kind {
        Kind::Tcp => Listener::bind_tcp(&options)?,
        Kind::Unix => Listener::bind_unix_private(&options)?,
        // Shared memory for unrelated processes: clients meet the server at an abstract Unix
        // socket and each gets a sealed memfd of its own over it. Nothing in /dev/shm.
        Kind::Shm => Listener::bind(&format!("shm:@switchboard-echo-{}", std::process::id()).parse()?, &options)?,
        Kind::Seqpacket => Listener::bind_seqpacket_private(&options)?,
        other => return Err(format!("{other} has no listener: use tcp, unix, shm or seqpacket").into()),
    })
}

/// One connection's life: echo every message until the client hangs up.
fn serve_client(mut conn: Box<dyn Transport>, echoed: &AtomicU64) -> Result<(), SbError> {
    let mut buf = Vec::new();
    loop {
        match conn.recv(&mut buf) {
            Ok(_) => conn.send(&buf)?,
            Err(SbError::Disconnected) => return Ok(()),
            Err(e) => return Err(e),
        }
        echoed.fetch_add(1, Ordering::Relaxed);
    }
}

fn client(address: &Address, messages: usize, size: usize, quiet: bool) -> Result<(), Box<dyn Error>> {
    let mut conn = connect(address, &Options::new())?;
    let mut reply = Vec::new();
    for i in 0..messages {
        let msg: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
        conn.send(&msg)?;
        conn.recv(&mut reply)?;
        if reply != msg {
            return Err(format!("echo {i} differs").into());
        }
    }
    if !quiet {
        writeln!(io::stdout().lock(), "{messages} messages of {size} B echoed by {address}, all verified")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    common::exit_code(run())
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    match args.mode.unwrap_or(Mode::Demo { transport: Kind::Tcp, clients: 16, messages: 1000, model: Model::Thread }) {
        Mode::Client { address, messages, size, quiet } => client(&address, messages, size, quiet),
        Mode::Serve { transport, model } => {
            // A private unix listener is an abstract socket: Ctrl-C or SIGTERM leave nothing
            // behind, so there is nothing to clean up. Out of file descriptors, or flooded
            // with connections, `incoming()` sheds and backs off instead of failing.
            let listener = bind(transport)?;
            // Whoever started us needs this address; if they have stopped reading, stop too.
            writeln!(io::stdout().lock(), "listening on {}", listener.local_addr())?;
            let echoed = Arc::new(AtomicU64::new(0));
            if let Model::Select = model {
                serve_selected(&listener, None, &echoed)?;
                return Ok(());
            }
            for conn in listener.incoming() {
                let conn = conn?;
                let echoed = echoed.clone();
                thread::spawn(move || {
                    if let Err(e) = serve_client(conn, &echoed) {
                        let _ = writeln!(io::stderr(), "client error: {e}");
                    }
                });
            }
            Ok(())
        }
        Mode::Demo { transport, clients, messages, model } => {
            let listener = bind(transport)?;
            let address = listener.local_addr().clone();
            writeln!(io::stdout().lock(), "listening on {address}; starting {clients} client processes")?;
            // Each client is this program in client mode.
            let children: Vec<_> = (0..clients)
                .map(|_| {
                    Command::new(std::env::current_exe()?)
                        .args(["client", &address.to_string(), "--quiet", "--messages", &messages.to_string()])
                        .spawn()
                })
                .collect::<Result<_, _>>()?;
            let echoed = Arc::new(AtomicU64::new(0));
            let (started, cpu_before) = (Instant::now(), server_cpu());
            match model {
                Model::Select => serve_selected(&listener, Some(clients), &echoed)?,
                Model::Thread => {
                    let workers: Vec<_> = (0..clients)
                        .map(|_| {
                            let conn = listener.accept()?;
                            let echoed = echoed.clone();
                            Ok(thread::spawn(move || serve_client(conn, &echoed)))
                        })
                        .collect::<Result<_, SbError>>()?;
                    for w in workers {
                        w.join().map_err(|_| "server thread panicked")??;
                    }
                }
            }
            for mut child in children {
                let status = child.wait()?;
                if !status.success() {
                    return Err(format!("a client failed: {status}").into());
                }
            }
            let (took, cpu) = (started.elapsed(), server_cpu().saturating_sub(cpu_before));
            let n = echoed.load(Ordering::Relaxed);
            writeln!(
                io::stdout().lock(),
                "{n} messages echoed to {clients} clients, all verified; {} refused\n\
                 server ({model:?}): {:.0} messages/s, {:.2} µs of server CPU per message",
                listener.refused(),
                n as f64 / took.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
            )?;
            Ok(())
        }
    }
}
