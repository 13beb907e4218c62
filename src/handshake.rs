//! The connection handshake on tcp and unix: the client's first frame says "switchboard",
//! the protocol version and, for a spawned child, the parent's secret token; the server
//! answers with one status frame.
//!
//! Hello payload: `b"SWBH"`, version `u16` LE, flags `u16` LE (bit 0: a token follows), then
//! 32 token bytes if flagged. Reply payload: `b"SWBR"`, version `u16` LE, status `u8`, one zero
//! byte. Everything here parses untrusted bytes and never panics on them.

use std::fmt;
use std::time::{Duration, Instant};

use crate::deadline;
use crate::error::{Error, Result};
use crate::frame::{self, Framed, PREFIX_LEN};
use crate::stream::Stream;

/// The wire protocol version this build speaks.
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
    match framed.recv(&mut reply, deadline::after(timeout)) {
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
    let result = framed.recv(&mut hello, deadline);
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
    match parse_hello(&hello) {
        Ok(Hello { token: Some(t), .. }) if token.ct_eq(&t) => Ok(true),
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
