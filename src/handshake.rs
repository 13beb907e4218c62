//! The connection handshake on tcp and unix: the client's first frame says "switchboard",
//! the protocol version and, for a spawned child, the parent's secret token; the server
//! answers with one status frame.
//!
//! Hello payload: `b"SWBH"`, version `u16` LE, flags `u16` LE (bit 0: a token follows), then
//! 32 token bytes if flagged. Reply payload: `b"SWBR"`, version `u16` LE, status `u8`, one zero
//! byte. Everything here parses untrusted bytes and never panics on them.

use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::deadline;
use crate::error::{Error, Result};
use crate::frame::{self, Framed, PREFIX_LEN, Stream};

/// The wire protocol version this build speaks.
///
/// A client sends it in its hello; a server of another version answers "wrong version" and
/// closes the connection (the README's "Wire format" has every byte).
///
/// # Examples
/// A client in another language needs only these bytes. Here a plain [`TcpStream`] does the
/// handshake with a switchboard [`Listener`](crate::Listener):
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use switchboard::{Address, Listener, Options, PROTOCOL_VERSION, Transport};
///
/// let listener = Listener::bind_tcp(&Options::new())?;
/// let Address::Tcp(addr) = *listener.local_addr() else { unreachable!("a tcp listener") };
/// let client = std::thread::spawn(move || -> std::io::Result<(TcpStream, [u8; 12])> {
///     let mut stream = TcpStream::connect(addr)?;
///     // One frame: u32 LE length 8, then magic, version (u16 LE) and flags (u16 LE, 0: no token).
///     let mut hello = 8u32.to_le_bytes().to_vec();
///     hello.extend_from_slice(b"SWBH");
///     hello.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
///     hello.extend_from_slice(&0u16.to_le_bytes());
///     stream.write_all(&hello)?;
///     let mut reply = [0u8; 12];
///     stream.read_exact(&mut reply)?;
///     Ok((stream, reply))
/// });
/// let mut conn = listener.accept()?;
/// let (_stream, reply) = client.join().expect("the client thread panicked")?;
/// // The reply frame: length 8, magic, version (u16 LE), status (0: accepted), 0.
/// assert_eq!(reply[..4], 8u32.to_le_bytes());
/// assert_eq!(reply[4..8], *b"SWBR");
/// assert_eq!(reply[8..10], PROTOCOL_VERSION.to_le_bytes());
/// assert_eq!(reply[10..], [0, 0]);
/// conn.send(b"welcome")?;
/// # Ok::<(), switchboard::Error>(())
/// ```
///
/// [`TcpStream`]: std::net::TcpStream
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes in a spawn token: 256 random bits.
pub(crate) const TOKEN_LEN: usize = 32;

const HELLO_MAGIC: [u8; 4] = *b"SWBH";
const REPLY_MAGIC: [u8; 4] = *b"SWBR";
const FLAG_TOKEN: u16 = 1;
const HELLO_BASE: usize = 8;

/// The largest hello payload: the base plus a token.
pub(crate) const HELLO_MAX: usize = HELLO_BASE + TOKEN_LEN;

/// Bytes in a reply payload.
pub(crate) const REPLY_LEN: usize = 8;

/// A secret shared by a parent and the child it spawned, so that no other local process can
/// take the child's place on a tcp or unix connection.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token([u8; TOKEN_LEN]);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A fresh token from the operating system's random source.
    pub(crate) fn random() -> Result<Self> {
        let mut bytes = [0; TOKEN_LEN];
        random_bytes(&mut bytes)?;
        Ok(Token(bytes))
    }

    pub(crate) fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn from_hex(s: &str) -> Result<Self> {
        let bad = || Error::Config("SWITCHBOARD_TOKEN is not 64 hex digits".into());
        if s.len() != 2 * TOKEN_LEN || !s.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0; TOKEN_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Token(bytes))
    }

    /// Compares in constant time, so that timing does not reveal how many bytes matched.
    pub(crate) fn ct_eq(&self, other: &[u8; TOKEN_LEN]) -> bool {
        let diff = self.0.iter().zip(other).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// Fills `buf` from the operating system's random source (`getrandom(2)`).
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Io(e.into()))
}

/// What a client said in its hello.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) version: u16,
    pub(crate) token: Option<[u8; TOKEN_LEN]>,
}

/// The server's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    Accepted = 0,
    BadVersion = 1,
    BadToken = 2,
    Malformed = 3,
    Forbidden = 4,
}

impl Status {
    fn describe(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::BadVersion => "the server speaks another protocol version",
            Status::BadToken => "the server refused the token",
            Status::Malformed => "the server could not parse the hello",
            Status::Forbidden => "the server does not accept connections from this user",
        }
    }
}

pub(crate) fn encode_hello(token: Option<&Token>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HELLO_MAX);
    out.extend_from_slice(&HELLO_MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out.extend_from_slice(&(if token.is_some() { FLAG_TOKEN } else { 0 }).to_le_bytes());
    if let Some(token) = token {
        out.extend_from_slice(&token.0);
    }
    out
}

/// Whether a frame of `len` bytes can be a hello (checked before reading it).
pub(crate) fn hello_len_ok(len: usize) -> bool {
    len == HELLO_BASE || len == HELLO_MAX
}

/// Parses a hello payload; the error carries the status to send back.
pub(crate) fn parse_hello(payload: &[u8]) -> Result<Hello, Status> {
    if !hello_len_ok(payload.len()) || payload[..4] != HELLO_MAGIC {
        return Err(Status::Malformed);
    }
    let version = u16::from_le_bytes([payload[4], payload[5]]);
    let flags = u16::from_le_bytes([payload[6], payload[7]]);
    let token = match (flags, payload.len()) {
        (0, HELLO_BASE) => None,
        (FLAG_TOKEN, HELLO_MAX) => Some(payload[HELLO_BASE..].try_into().map_err(|_| Status::Malformed)?),
        _ => return Err(Status::Malformed),
    };
    if version != PROTOCOL_VERSION {
        return Err(Status::BadVersion);
    }
    Ok(Hello { version, token })
}

pub(crate) fn encode_reply(status: Status) -> [u8; REPLY_LEN] {
    let v = PROTOCOL_VERSION.to_le_bytes();
    let [m0, m1, m2, m3] = REPLY_MAGIC;
    [m0, m1, m2, m3, v[0], v[1], status as u8, 0]
}

/// A whole reply frame (prefix and payload), as the server writes it.
pub(crate) fn reply_frame(status: Status) -> [u8; PREFIX_LEN + REPLY_LEN] {
    let mut out = [0; PREFIX_LEN + REPLY_LEN];
    out[..PREFIX_LEN].copy_from_slice(&frame::encode_prefix(REPLY_LEN));
    out[PREFIX_LEN..].copy_from_slice(&encode_reply(status));
    out
}

/// Parses the server's reply: `Ok` only for an accepting reply of this protocol.
pub(crate) fn parse_reply(payload: &[u8]) -> Result<()> {
    if payload.len() != REPLY_LEN || payload[..4] != REPLY_MAGIC {
        return Err(Error::Handshake("the server's reply is not a switchboard reply".into()));
    }
    let version = u16::from_le_bytes([payload[4], payload[5]]);
    let status = match payload[6] {
        0 => Status::Accepted,
        1 => Status::BadVersion,
        2 => Status::BadToken,
        3 => Status::Malformed,
        4 => Status::Forbidden,
        other => {
            return Err(Error::Handshake(format!("unknown status {other} in the server's reply")));
        }
    };
    if status != Status::Accepted {
        return Err(Error::Handshake(format!(
            "{} (server version {version}, ours {PROTOCOL_VERSION})",
            status.describe()
        )));
    }
    if version != PROTOCOL_VERSION {
        return Err(Error::Handshake(format!("server speaks version {version}, we speak {PROTOCOL_VERSION}")));
    }
    Ok(())
}

/// The client's side: sends the hello and waits (at most `timeout`) for an accepting reply.
pub(crate) fn client<S: Stream>(framed: &mut Framed<S>, token: Option<&Token>, timeout: Duration) -> Result<()> {
    // The handshake frames pass whatever the user's maximum is; it applies from then on.
    let user_max = framed.max_message_size();
    framed.set_max_message_size(REPLY_LEN);
    let result = client_exchange(framed, token, timeout);
    framed.set_max_message_size(user_max);
    result
}

fn client_exchange<S: Stream>(framed: &mut Framed<S>, token: Option<&Token>, timeout: Duration) -> Result<()> {
    framed.send_frame(&encode_hello(token))?;
    let mut reply = Vec::with_capacity(REPLY_LEN);
    match framed.recv(&mut reply, None, deadline::after(timeout)) {
        Ok(_) => parse_reply(&reply),
        Err(Error::Disconnected) => {
            Err(Error::Handshake("the server closed the connection during the handshake".into()))
        }
        Err(Error::Timeout) => Err(Error::Handshake(format!("no reply from the server within {timeout:?}"))),
        Err(Error::FrameTooLarge { .. } | Error::Truncated { .. }) => {
            Err(Error::Handshake("the server's reply is not a switchboard reply".into()))
        }
        Err(e) => Err(e),
    }
}

/// The server's half on a listener: reads a client's hello frame from a non-blocking socket as
/// it arrives, never past its end, so one `ppoll` loop can serve many handshakes at once.
#[derive(Debug, Default)]
pub(crate) struct HelloReader {
    /// The frame so far, prefix included.
    buf: Vec<u8>,
}

/// What reading a client's hello produced.
pub(crate) enum Progress {
    /// Not all of it has arrived yet.
    More,
    /// A well-formed hello of this version, with its token if it carried one.
    Hello(Option<[u8; TOKEN_LEN]>),
    /// Not a hello this server accepts: answer with this status and close.
    Refuse(Status),
    /// The client closed or reset the connection: nobody to answer.
    Gone,
}

impl HelloReader {
    /// Whether the client has sent nothing yet.
    pub(crate) fn is_silent(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads what is available from `conn` (non-blocking).
    pub(crate) fn read_from(&mut self, conn: &mut impl Read) -> Progress {
        loop {
            let want = if self.buf.len() < PREFIX_LEN {
                PREFIX_LEN
            } else {
                let mut prefix = [0; PREFIX_LEN];
                prefix.copy_from_slice(&self.buf[..PREFIX_LEN]);
                let len = frame::decode_prefix(prefix);
                if !hello_len_ok(len) {
                    return Progress::Refuse(Status::Malformed);
                }
                PREFIX_LEN + len
            };
            let mut chunk = [0u8; PREFIX_LEN + HELLO_MAX];
            let have = self.buf.len();
            match conn.read(&mut chunk[..want - have]) {
                Ok(0) if have == 0 => return Progress::Gone,
                Ok(0) => return Progress::Refuse(Status::Malformed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    return Progress::More;
                }
                Err(_) => return Progress::Gone,
            }
            if self.buf.len() < want {
                return Progress::More;
            }
            if want > PREFIX_LEN {
                return match parse_hello(&self.buf[PREFIX_LEN..]) {
                    Ok(hello) => Progress::Hello(hello.token),
                    Err(status) => Progress::Refuse(status),
                };
            }
            // The prefix just completed: the body may well be readable at once.
        }
    }
}

/// The server's side over a stream that needs no reply (a spawned child's pipe): waits until
/// `deadline` for the child's hello and checks its version and token.
///
/// Returns `Ok(false)` if the deadline passed first (the caller decides whether to wait more).
pub(crate) fn expect_hello<S: Stream>(
    framed: &mut Framed<S>,
    token: &Token,
    deadline: Option<Instant>,
) -> Result<bool> {
    let user_max = framed.max_message_size();
    framed.set_max_message_size(HELLO_MAX);
    let mut hello = Vec::with_capacity(HELLO_MAX);
    let result = framed.recv(&mut hello, None, deadline);
    framed.set_max_message_size(user_max);
    match result {
        Ok(_) => {}
        Err(Error::Timeout) => return Ok(false),
        Err(Error::Disconnected) => {
            return Err(Error::Handshake("the child closed its connection before saying hello".into()));
        }
        Err(Error::FrameTooLarge { .. } | Error::Truncated { .. }) => {
            return Err(Error::Handshake("the child's hello is not a switchboard hello".into()));
        }
        Err(e) => return Err(e),
    }
    check_child_hello(&hello, token).map(|()| true)
}

/// Checks a spawned child's hello payload: this protocol version and the parent's `token`.
pub(crate) fn check_child_hello(hello: &[u8], token: &Token) -> Result<()> {
    match parse_hello(hello) {
        Ok(Hello { token: Some(t), .. }) if token.ct_eq(&t) => Ok(()),
        Ok(_) => Err(Error::Handshake("the child presented a wrong token".into())),
        Err(Status::BadVersion) => Err(Error::Handshake("the child speaks another protocol version".into())),
        Err(_) => Err(Error::Handshake("the child's hello is not a switchboard hello".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips() {
        let token = Token::random().unwrap();
        let parsed = parse_hello(&encode_hello(Some(&token))).unwrap();
        assert!(token.ct_eq(&parsed.token.unwrap()));
        assert_eq!(parse_hello(&encode_hello(None)).unwrap().token, None);
        assert_eq!(Token::from_hex(&token.to_hex()).unwrap(), token);
        assert_ne!(Token::random().unwrap(), token, "two tokens from the OS must differ");
    }

    #[test]
    fn bad_hellos_are_refused() {
        let good = encode_hello(None);
        let mut wrong_version = good.clone();
        wrong_version[4] ^= 0xff;
        assert_eq!(parse_hello(&wrong_version), Err(Status::BadVersion));
        let mut flag_without_token = good.clone();
        flag_without_token[6] = 1;
        assert_eq!(parse_hello(&flag_without_token), Err(Status::Malformed));
        assert_eq!(parse_hello(b""), Err(Status::Malformed));
        assert_eq!(parse_hello(b"GET / HT"), Err(Status::Malformed));
        let mut seed = 1u32;
        for len in 0..64 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            assert!(parse_hello(&junk).is_err());
            assert!(parse_reply(&junk).is_err());
        }
    }

    /// Hands out one byte per read, with a "would block" between bytes.
    struct Trickle(Vec<u8>, bool);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if self.0.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0.remove(0);
            Ok(1)
        }
    }

    #[test]
    fn hello_reader_takes_a_hello_one_byte_at_a_time() {
        let token = Token::random().unwrap();
        let hello = encode_hello(Some(&token));
        let mut wire = frame::encode_prefix(hello.len()).to_vec();
        wire.extend_from_slice(&hello);
        wire.extend_from_slice(b"first message, not read");
        let mut conn = Trickle(wire, false);
        let mut reader = HelloReader::default();
        assert!(reader.is_silent());
        let mut reads = 0;
        let got = loop {
            match reader.read_from(&mut conn) {
                Progress::More => reads += 1,
                other => break other,
            }
        };
        assert!(matches!(got, Progress::Hello(Some(t)) if token.ct_eq(&t)));
        assert!(reads >= PREFIX_LEN + HELLO_MAX && !reader.is_silent());
        assert_eq!(conn.0, b"first message, not read", "nothing past the hello is read");
        let mut closed = HelloReader::default();
        assert!(matches!(closed.read_from(&mut Trickle(Vec::new(), true)), Progress::Gone));
        let mut huge = HelloReader::default();
        assert!(matches!(huge.read_from(&mut &[255u8, 255, 255, 255][..]), Progress::Refuse(Status::Malformed)));
    }

    #[test]
    fn token_comparison_and_hex() {
        let token = Token::random().unwrap();
        let mut other = token.0;
        assert!(token.ct_eq(&other));
        other[TOKEN_LEN - 1] ^= 1;
        assert!(!token.ct_eq(&other));
        assert!(Token::from_hex("zz").is_err());
        assert!(Token::from_hex(&"é".repeat(32)).is_err());
        assert_eq!(parse_reply(&encode_reply(Status::Accepted)).map_err(|e| e.to_string()), Ok(()));
        assert!(matches!(parse_reply(&encode_reply(Status::BadToken)), Err(Error::Handshake(_))));
    }
}
