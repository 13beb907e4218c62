//! An echo server on tokio: one task per client, no thread per client and no thread blocked
//! per message (the endpoints' readiness descriptors are registered with tokio's reactor).
//!
//! ```text
//! cargo run --release --features tokio --example tokio_echo                      # demo: 16 client processes
//! cargo run --release --features tokio --example tokio_echo -- --transport shm --clients 64
//! ```
//!
//! The clients are copies of this program in client mode (plain blocking code), so that the
//! server is measured against real processes.

mod common;

use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::Parser;
use switchboard::{Address, AsyncListener, Error as SbError, Kind, Listener, Options, Transport, connect};

/// An echo server on tokio (one task per client) and the client processes that check it.
#[derive(Parser, Debug)]
#[command(name = "tokio_echo")]
struct Args {
    /// tcp, unix or shm
    #[arg(long, default_value = "unix")]
    transport: Kind,
    /// Client processes to start
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Messages each client sends and checks
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Run as a client of the server at this address (used by the demo itself)
    #[arg(long, hide = true)]
    client: Option<Address>,
}

fn main() -> ExitCode {
    common::exit_code(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(address) = &args.client {
        return client(address, args.messages);
    }
    let listener = match args.transport {
        Kind::Tcp => Listener::bind_tcp(&Options::new())?,
        Kind::Unix => Listener::bind_unix_private(&Options::new())?,
        Kind::Shm => {
            Listener::bind(&format!("shm:@switchboard-tokio-echo-{}", std::process::id()).parse()?, &Options::new())?
        }
        Kind::Seqpacket => Listener::bind_seqpacket_private(&Options::new())?,
        other => return Err(format!("{other} has no listener: use tcp, unix, shm or seqpacket").into()),
    };
    let address = listener.local_addr().clone();
    println!("listening on {address}; starting {} client processes", args.clients);
    let children = (0..args.clients)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .args(["--client", &address.to_string(), "--messages", &args.messages.to_string()])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;

    // The server: a current-thread runtime, one task per client.
    let (started, cpu_before) = (Instant::now(), server_cpu());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let echoed = runtime.block_on(async {
        let listener = AsyncListener::new(listener)?;
        let mut tasks = Vec::new();
        for _ in 0..args.clients {
            let mut conn = listener.accept().await?;
            tasks.push(tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut echoed = 0u64;
                loop {
                    match conn.recv(&mut buf).await {
                        Ok(_) => {
                            conn.send(&buf).await?;
                            echoed += 1;
                        }
                        Err(SbError::Disconnected) => return Ok::<u64, SbError>(echoed),
                        Err(e) => return Err(e),
                    }
                }
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.map_err(|e| SbError::Io(std::io::Error::other(e)))??;
        }
        Ok::<u64, SbError>(total)
    })?;
    let (took, cpu) = (started.elapsed(), server_cpu().saturating_sub(cpu_before));
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a client failed: {status}").into());
        }
    }
    println!(
        "{echoed} messages echoed to {} clients from one thread in {:.2} s, all verified\n\
         server (Tokio): {:.0} messages/s, {:.2} µs of server CPU per message",
        args.clients,
        took.as_secs_f64(),
        echoed as f64 / took.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / echoed.max(1) as f64,
    );
    Ok(())
}

/// User and system CPU time of this process so far (the server: the clients are other
/// processes).
fn server_cpu() -> std::time::Duration {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let secs =
                |t: nix::sys::time::TimeVal| std::time::Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
            secs(u.user_time()) + secs(u.system_time())
        })
        .unwrap_or_default()
}

/// A plain blocking client: sends numbered messages and checks each echo.
fn client(address: &Address, messages: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = connect(address, &Options::new())?;
    let mut reply = Vec::new();
    for i in 0..messages {
        let msg: Vec<u8> = (0..256).map(|j| (i * 31 + j) as u8).collect();
        conn.send(&msg)?;
        conn.recv(&mut reply)?;
        if reply != msg {
            return Err(format!("echo {i} differs").into());
        }
    }
    Ok(())
}
