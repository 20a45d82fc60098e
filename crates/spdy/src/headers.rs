//! SPDY/3 header blocks: the plain `count, (len name, len value)*` encoding and
//! the per-direction zlib contexts that compress it.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::Error;

/// The zlib dictionary of SPDY/3 (draft-mbelshe-httpbis-spdy-00 §2.6.10.1).
#[rustfmt::skip]
pub const DICTIONARY: &[u8; 1423] = b"\
\0\0\0\x07options\0\0\0\x04head\0\0\0\x04post\0\0\0\x03put\0\0\0\x06delete\
\0\0\0\x05trace\0\0\0\x06accept\0\0\0\x0eaccept-charset\0\0\0\x0faccept-encoding\
\0\0\0\x0faccept-language\0\0\0\x0daccept-ranges\0\0\0\x03age\0\0\0\x05allow\
\0\0\0\x0dauthorization\0\0\0\x0dcache-control\0\0\0\x0aconnection\
\0\0\0\x0ccontent-base\0\0\0\x10content-encoding\0\0\0\x10content-language\
\0\0\0\x0econtent-length\0\0\0\x10content-location\0\0\0\x0bcontent-md5\
\0\0\0\x0dcontent-range\0\0\0\x0ccontent-type\0\0\0\x04date\0\0\0\x04etag\
\0\0\0\x06expect\0\0\0\x07expires\0\0\0\x04from\0\0\0\x04host\0\0\0\x08if-match\
\0\0\0\x11if-modified-since\0\0\0\x0dif-none-match\0\0\0\x08if-range\
\0\0\0\x13if-unmodified-since\0\0\0\x0dlast-modified\0\0\0\x08location\
\0\0\0\x0cmax-forwards\0\0\0\x06pragma\0\0\0\x12proxy-authenticate\
\0\0\0\x13proxy-authorization\0\0\0\x05range\0\0\0\x07referer\0\0\0\x0bretry-after\
\0\0\0\x06server\0\0\0\x02te\0\0\0\x07trailer\0\0\0\x11transfer-encoding\
\0\0\0\x07upgrade\0\0\0\x0auser-agent\0\0\0\x04vary\0\0\0\x03via\0\0\0\x07warning\
\0\0\0\x10www-authenticate\0\0\0\x06method\0\0\0\x03get\0\0\0\x06status\
\0\0\0\x06200 OK\0\0\0\x07version\0\0\0\x08HTTP/1.1\0\0\0\x03url\0\0\0\x06public\
\0\0\0\x0aset-cookie\0\0\0\x0akeep-alive\0\0\0\x06origin\
100101201202205206300302303304305306307402405406407408409410411412413414415416417\
502504505203 Non-Authoritative Information204 No Content301 Moved Permanently\
400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error\
501 Not Implemented503 Service Unavailable\
Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 \
Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,\
text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch\
charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// Adler-32 of [`DICTIONARY`]: the DICTID every SPDY/3 header stream carries
/// after its zlib header (`78 f9 e3 c6 a7 c2` from Go's framer).
pub const DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// Largest decompressed header block accepted (a guard against zlib bombs).
const MAX_BLOCK: usize = 1 << 20;

/// Encodes headers in the uncompressed block format. Names should be lowercase;
/// several values for one name go into one value separated by NUL.
pub fn encode_block<N: AsRef<str>, V: AsRef<str>>(headers: &[(N, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        for s in [name.as_ref(), value.as_ref()] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Parses an uncompressed header block.
pub fn decode_block(mut b: &[u8]) -> Result<Vec<(String, String)>, Error> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
        if b.len() < n {
            return Err(Error::HeaderBlock("truncated header block".into()));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn u32_at(b: &mut &[u8]) -> Result<usize, Error> {
        let v = take(b, 4)?;
        Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as usize)
    }
    let count = u32_at(&mut b)?;
    if count > b.len() / 8 {
        return Err(Error::HeaderBlock(format!("{count} headers announced")));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let n = u32_at(&mut b)?;
        let name = String::from_utf8_lossy(take(&mut b, n)?).into_owned();
        let n = u32_at(&mut b)?;
        let value = String::from_utf8_lossy(take(&mut b, n)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

/// The outgoing zlib context: one per connection, used for every header block
/// we send, in order.
#[derive(Debug)]
pub struct HeaderCompressor(Compress);

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(DICTIONARY)
            .expect("setting a dictionary on a fresh deflate stream cannot fail");
        Self(c)
    }

    /// Compresses one header block, ending it with a sync flush so the peer can
    /// decode it on its own.
    pub fn compress<N: AsRef<str>, V: AsRef<str>>(
        &mut self,
        headers: &[(N, V)],
    ) -> Result<Vec<u8>, Error> {
        let raw = encode_block(headers);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.0.total_in();
        loop {
            let used = (self.0.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.0
                .compress_vec(&raw[used..], &mut out, FlushCompress::Sync)
                .map_err(|e| Error::HeaderBlock(e.to_string()))?;
            // Done once all input is in and the flush did not fill the output.
            if (self.0.total_in() - start) as usize == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The incoming zlib context: one per connection, fed every header block the
/// peer sends (SYN_STREAM, SYN_REPLY, HEADERS), in order.
#[derive(Debug)]
pub struct HeaderDecompressor(Decompress);

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        Self(Decompress::new(true))
    }

    /// Decompresses and parses one header block. An error leaves the context
    /// unusable (the connection must end).
    pub fn decompress(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_BLOCK {
                    return Err(Error::HeaderBlock("header block too large".into()));
                }
                out.reserve(out.capacity());
            }
            let (in0, out0) = (self.0.total_in(), self.0.total_out());
            let res = self
                .0
                .decompress_vec(&block[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.0.total_in() - in0) as usize;
            match res {
                Ok(Status::StreamEnd) => {
                    return Err(Error::HeaderBlock("peer ended its header stream".into()));
                }
                Ok(_) => {
                    let room = out.len() < out.capacity();
                    if pos == block.len() && room {
                        break;
                    }
                    if room && self.0.total_in() == in0 && self.0.total_out() == out0 {
                        return Err(Error::HeaderBlock("truncated compressed block".into()));
                    }
                }
                // zlib stops right after the DICTID of the first block.
                Err(e) => match e.needs_dictionary() {
                    Some(DICTIONARY_ID) => {
                        self.0
                            .set_dictionary(DICTIONARY)
                            .map_err(|e| Error::HeaderBlock(e.to_string()))?;
                    }
                    Some(id) => {
                        return Err(Error::HeaderBlock(format!("unknown dictionary {id:#x}")));
                    }
                    None => return Err(Error::HeaderBlock(e.to_string())),
                },
            }
        }
        decode_block(&out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(adler32(DICTIONARY), DICTIONARY_ID);
        let text = String::from_utf8_lossy(DICTIONARY);
        assert!(text.starts_with("\0\0\0\x07options\0\0\0\x04head"));
        assert!(text.contains("\0\0\0\x08HTTP/1.1"));
        assert!(text.ends_with("charset=iso-8859-1,utf-,*,enq=0."));
    }

    #[test]
    fn uses_the_zlib_rs_backend() {
        assert!(format!("{:?}", Decompress::new(true)).contains("zlib_rs"));
    }

    #[test]
    fn compressed_stream_names_the_dictionary() {
        let block = HeaderCompressor::new().compress::<&str, &str>(&[]).unwrap();
        assert_eq!(block[1] & 0x20, 0x20, "FDICT set");
        assert_eq!(block[2..6], DICTIONARY_ID.to_be_bytes());
    }

    #[test]
    fn round_trip_over_one_context() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        let blocks: [&[(&str, &str)]; 4] = [
            &[("streamtype", "error"), ("port", "80"), ("requestid", "0")],
            &[("streamtype", "data"), ("port", "80"), ("requestid", "0")],
            &[],
            &[("multi", "a\0b"), ("empty", "")],
        ];
        let mut sizes = Vec::new();
        for block in blocks {
            let z = c.compress(block).unwrap();
            sizes.push(z.len());
            let got = d.decompress(&z).unwrap();
            let want: Vec<_> = block
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want);
        }
        // The second block reuses the first's history, so it is much smaller.
        assert!(sizes[1] < sizes[0], "{sizes:?}");
    }

    #[test]
    fn decodes_chromium_syn_reply_block() {
        // The header block of Chromium's spdy_framer_test "SYN_REPLY frame, no
        // FIN" (bar: foo, foo: bar), compressed by another zlib with 2 KiB window.
        let block = [
            0x38, 0xea, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xe5, 0x0e, 0x50, 0xc2, 0x4b, 0x4a, 0x04,
            0xe5, 0x0b, 0x66, 0x80, 0x00, 0x4a, 0xcb, 0xcf, 0x07, 0x08, 0x20, 0x10, 0x95, 0x96,
            0x9f, 0x0f, 0xa2, 0x00, 0x02, 0x28, 0x29, 0xb1, 0x08, 0x20, 0x80, 0x00, 0x00, 0x00,
            0x00, 0xff, 0xff,
        ];
        let got = HeaderDecompressor::new().decompress(&block).unwrap();
        let want = [("bar", "foo"), ("foo", "bar")].map(|(n, v)| (n.to_string(), v.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn rejects_bad_blocks() {
        assert!(decode_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'x']).is_err());
        assert!(decode_block(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(HeaderDecompressor::new().decompress(b"garbage").is_err());
    }
}
