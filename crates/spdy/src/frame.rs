//! SPDY/3 framing. Control frames are
//! `1 | version:15 | type:16 | flags:8 | length:24 | payload`, data frames
//! `0 | stream-id:31 | flags:8 | length:24 | data`. Header blocks stay
//! compressed here; [`crate::headers`] owns the zlib contexts.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Error;

pub const VERSION: u16 = 3;
/// FIN on data frames, SYN_STREAM, SYN_REPLY and HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// On SYN_STREAM: the recipient may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_CANCEL: u32 = 5;
/// Largest payload a frame's 24-bit length can describe.
pub const MAX_LENGTH: usize = 0xff_ffff;

const ID_MASK: u32 = 0x7fff_ffff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    SynStream {
        stream_id: u32,
        assoc_id: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        block: Bytes,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        block: Bytes,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// Entries are kept raw: nothing here acts on them.
    Settings {
        flags: u8,
        payload: Bytes,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        block: Bytes,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame of a type SPDY/3 does not define (to be ignored).
    Unknown {
        kind: u16,
        flags: u8,
        payload: Bytes,
    },
}

impl Frame {
    /// Takes one whole frame off the front of `src`, or returns `None` (and
    /// consumes nothing) until enough bytes have arrived.
    pub fn decode(src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if src.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, src[5], src[6], src[7]]) as usize;
        if src.len() < 8 + len {
            src.reserve(8 + len - src.len());
            return Ok(None);
        }
        let mut head = src.split_to(8);
        let mut p = src.split_to(len).freeze();
        let first = head.get_u32();
        let flags = head[0];
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: first & ID_MASK,
                flags,
                data: p,
            }));
        }
        let version = (first >> 16) as u16 & 0x7fff;
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let kind = first as u16;
        let check = |name: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidFrame { kind: name, len })
            }
        };
        Ok(Some(match kind {
            1 => {
                check("SYN_STREAM", len >= 10)?;
                Frame::SynStream {
                    stream_id: p.get_u32() & ID_MASK,
                    assoc_id: p.get_u32() & ID_MASK,
                    priority: p.get_u8() >> 5,
                    slot: p.get_u8(),
                    flags,
                    block: p,
                }
            }
            2 => {
                check("SYN_REPLY", len >= 4)?;
                Frame::SynReply {
                    stream_id: p.get_u32() & ID_MASK,
                    flags,
                    block: p,
                }
            }
            3 => {
                check("RST_STREAM", len == 8)?;
                Frame::RstStream {
                    stream_id: p.get_u32() & ID_MASK,
                    status: p.get_u32(),
                }
            }
            4 => Frame::Settings { flags, payload: p },
            6 => {
                check("PING", len == 4)?;
                Frame::Ping { id: p.get_u32() }
            }
            7 => {
                check("GOAWAY", len == 8)?;
                Frame::GoAway {
                    last_good_stream_id: p.get_u32() & ID_MASK,
                    status: p.get_u32(),
                }
            }
            8 => {
                check("HEADERS", len >= 4)?;
                Frame::Headers {
                    stream_id: p.get_u32() & ID_MASK,
                    flags,
                    block: p,
                }
            }
            9 => {
                check("WINDOW_UPDATE", len == 8)?;
                Frame::WindowUpdate {
                    stream_id: p.get_u32() & ID_MASK,
                    delta: p.get_u32() & ID_MASK,
                }
            }
            kind => Frame::Unknown {
                kind,
                flags,
                payload: p,
            },
        }))
    }

    /// Appends the frame's wire form to `dst`. Payloads must fit in 24 bits.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                dst.put_u32(stream_id & ID_MASK);
                flags_len(dst, *flags, data.len());
                dst.put_slice(data);
            }
            Frame::SynStream {
                stream_id,
                assoc_id,
                priority,
                slot,
                flags,
                block,
            } => {
                control(dst, 1, *flags, 10 + block.len());
                dst.put_u32(stream_id & ID_MASK);
                dst.put_u32(assoc_id & ID_MASK);
                dst.put_u8(priority << 5);
                dst.put_u8(*slot);
                dst.put_slice(block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                block,
            } => {
                control(dst, 2, *flags, 4 + block.len());
                dst.put_u32(stream_id & ID_MASK);
                dst.put_slice(block);
            }
            Frame::RstStream { stream_id, status } => {
                control(dst, 3, 0, 8);
                dst.put_u32(stream_id & ID_MASK);
                dst.put_u32(*status);
            }
            Frame::Settings { flags, payload } => {
                control(dst, 4, *flags, payload.len());
                dst.put_slice(payload);
            }
            Frame::Ping { id } => {
                control(dst, 6, 0, 4);
                dst.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control(dst, 7, 0, 8);
                dst.put_u32(last_good_stream_id & ID_MASK);
                dst.put_u32(*status);
            }
            Frame::Headers {
                stream_id,
                flags,
                block,
            } => {
                control(dst, 8, *flags, 4 + block.len());
                dst.put_u32(stream_id & ID_MASK);
                dst.put_slice(block);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(dst, 9, 0, 8);
                dst.put_u32(stream_id & ID_MASK);
                dst.put_u32(delta & ID_MASK);
            }
            Frame::Unknown {
                kind,
                flags,
                payload,
            } => {
                control(dst, *kind, *flags, payload.len());
                dst.put_slice(payload);
            }
        }
    }
}

fn control(dst: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(kind);
    flags_len(dst, flags, len);
}

fn flags_len(dst: &mut BytesMut, flags: u8, len: usize) {
    debug_assert!(len <= MAX_LENGTH, "frame payload of {len} bytes");
    dst.put_u32(u32::from(flags) << 24 | (len as u32 & 0xff_ffff));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn samples() -> Vec<Frame> {
        let b = |s: &'static [u8]| Bytes::from_static(s);
        vec![
            Frame::SynStream {
                stream_id: 1,
                assoc_id: 0,
                priority: 7,
                slot: 0,
                flags: FLAG_FIN,
                block: b(b"compressed"),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                block: b(b"z"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: b(b"hello"),
            },
            Frame::Data {
                stream_id: 0x7fff_ffff,
                flags: 0,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL,
            },
            Frame::Settings {
                flags: 1,
                payload: b(&[0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0]),
            },
            Frame::Ping { id: 0x1234_5679 },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: 0,
            },
            Frame::Headers {
                stream_id: 9,
                flags: FLAG_FIN,
                block: b(b"hb"),
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 65536,
            },
            Frame::Unknown {
                kind: 10,
                flags: 0,
                payload: b(b"cred"),
            },
        ]
    }

    fn wire(frames: &[Frame]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for f in frames {
            f.encode(&mut buf);
        }
        buf.to_vec()
    }

    fn drain(buf: &mut BytesMut, out: &mut Vec<Frame>) {
        while let Some(f) = Frame::decode(buf).unwrap() {
            out.push(f);
        }
    }

    #[test]
    fn known_bytes() {
        // Chromium's spdy_framer_test vectors for PING and RST_STREAM.
        let mut buf = BytesMut::new();
        Frame::Ping { id: 0x1234_5678 }.encode(&mut buf);
        assert_eq!(buf[..], [0x80, 3, 0, 6, 0, 0, 0, 4, 0x12, 0x34, 0x56, 0x78]);
        buf.clear();
        Frame::RstStream {
            stream_id: 0x7fff_ffff,
            status: 1,
        }
        .encode(&mut buf);
        let want = [
            0x80, 3, 0, 3, 0, 0, 0, 8, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1,
        ];
        assert_eq!(buf[..], want);
    }

    #[test]
    fn split_at_every_boundary() {
        let frames = samples();
        let bytes = wire(&frames);
        for cut in 0..=bytes.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            buf.extend_from_slice(&bytes[..cut]);
            drain(&mut buf, &mut got);
            buf.extend_from_slice(&bytes[cut..]);
            drain(&mut buf, &mut got);
            assert_eq!(got, frames, "cut at {cut}");
            assert!(buf.is_empty());
        }
        // And one byte at a time.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &bytes {
            buf.put_u8(byte);
            drain(&mut buf, &mut got);
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn rejects_bad_frames() {
        let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(Frame::decode(&mut v2), Err(Error::Version(2))));
        let mut short = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 2, 0, 1][..]);
        assert!(matches!(
            Frame::decode(&mut short),
            Err(Error::InvalidFrame { kind: "PING", .. })
        ));
    }
}
