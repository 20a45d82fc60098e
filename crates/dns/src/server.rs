//! Serving the zone over UDP and TCP, and forwarding every other query upstream.
//!
//! Path of a query: one parse of the request ([`Message::from_vec`]) → the zone's lookup under its read lock
//! → the answer encoded straight from the zone's records into a reused buffer (one encode, no copies of the
//! records) → the lock released → the send. A query that is not the zone's is relayed byte for byte to the
//! first upstream that answers (a fresh socket per query, so its port is random, as resolvers expect), over
//! the client's transport, and the upstream's answer goes back unchanged (truncated ones too: the client
//! then retries over TCP, which is forwarded over TCP). No answer within the timeout from any upstream:
//! SERVFAIL. A CNAME (ExternalName Service) whose target is outside the zone is followed upstream and the
//! answer carries both.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_proto::ProtoError;
use hickory_proto::op::{
    Edns, EmitAndCount, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{DNSClass, Name, Record};
use hickory_proto::serialize::binary::BinEncoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::zone::{Lookup, Zone};

/// The zone as the server and its feeder share it. Nobody holds the lock across an await.
pub type SharedZone = Arc<RwLock<Zone>>;

/// How a DNS query without EDNS is limited over UDP (RFC 1035).
const CLASSIC_UDP_SIZE: u16 = 512;
/// How long a TCP connection may sit idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once; more are closed at once.
const TCP_CONNECTIONS: usize = 1024;
/// UDP queries waiting for an upstream at once (each holds a socket and a buffer); more get SERVFAIL.
const UDP_FORWARDS: usize = 1024;
/// CNAMEs followed inside the zone before giving up.
const MAX_CNAME_HOPS: usize = 8;

/// How the server answers what is not the zone's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Resolvers asked, in order, for names outside the zone.
    pub upstreams: Vec<SocketAddr>,
    /// How long each upstream gets to answer.
    pub timeout: Duration,
    /// The largest UDP answer this server sends (and offers in EDNS); 1232 avoids IP fragmentation.
    pub max_udp_payload: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            upstreams: Vec::new(),
            timeout: Duration::from_secs(2),
            max_udp_payload: 1232,
        }
    }
}

/// The sockets the server answers on.
#[derive(Debug, Default)]
pub struct Listeners {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
}

impl Listeners {
    /// UDP and TCP on each address. Port 0 picks a port free for both.
    pub async fn bind(addresses: &[SocketAddr]) -> io::Result<Listeners> {
        let mut listeners = Listeners::default();
        for address in addresses {
            let mut tries = 0;
            loop {
                let udp = UdpSocket::bind(address).await?;
                let port = udp.local_addr()?.port();
                match TcpListener::bind(SocketAddr::new(address.ip(), port)).await {
                    Ok(tcp) => {
                        listeners.udp.push(udp);
                        listeners.tcp.push(tcp);
                        break;
                    }
                    Err(e) if address.port() == 0 && tries < 16 => {
                        tries += 1;
                        tracing::debug!("TCP port {port} taken ({e}), picking another");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(listeners)
    }

    /// Sockets bound by the caller.
    pub fn new(udp: Vec<UdpSocket>, tcp: Vec<TcpListener>) -> Listeners {
        Listeners { udp, tcp }
    }

    pub fn udp_addresses(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    pub fn tcp_addresses(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// Serves `zone` on `listeners` until one of them fails.
pub async fn serve(zone: SharedZone, config: ServerConfig, listeners: Listeners) -> io::Result<()> {
    let server = Arc::new(Server::new(zone, config));
    let mut tasks = JoinSet::new();
    for socket in listeners.udp {
        tasks.spawn(udp_loop(server.clone(), Arc::new(socket)));
    }
    let connections = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    for listener in listeners.tcp {
        tasks.spawn(tcp_loop(server.clone(), listener, connections.clone()));
    }
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What to do with a query once parsed.
#[derive(Debug)]
enum Outcome {
    /// The answer is in the output buffer.
    Reply,
    /// Not the zone's: relay the query upstream.
    Forward(Message),
    /// A CNAME of the zone that points outside it.
    Chase(Chase),
    /// Not worth an answer (a response, or not DNS).
    Drop,
}

#[derive(Debug)]
struct Chase {
    request: Message,
    /// The zone's part of the answer (the CNAMEs, in order).
    chain: Vec<Record>,
    target: Name,
}

#[derive(Debug)]
struct Server {
    zone: SharedZone,
    config: ServerConfig,
    edns: Edns,
    /// Room for UDP queries waiting for an upstream.
    forwards: Arc<Semaphore>,
}

impl Server {
    fn new(zone: SharedZone, config: ServerConfig) -> Server {
        let mut edns = Edns::new();
        edns.set_max_payload(config.max_udp_payload.max(CLASSIC_UDP_SIZE));
        Server {
            zone,
            config,
            edns,
            forwards: Arc::new(Semaphore::new(UDP_FORWARDS)),
        }
    }

    /// SERVFAIL at once for a UDP query when [`UDP_FORWARDS`] already wait upstream.
    async fn refuse_forward(
        &self,
        socket: &UdpSocket,
        request: &Message,
        peer: SocketAddr,
        out: &mut Vec<u8>,
    ) {
        tracing::debug!("DNS: {UDP_FORWARDS} queries already wait upstream");
        self.error(request, ResponseCode::ServFail, out);
        if let Err(e) = socket.send_to(out, peer).await {
            tracing::debug!("DNS UDP send to {peer}: {e}");
        }
    }

    /// The largest answer the client takes.
    fn max_size(&self, request: &Message, transport: Transport) -> u16 {
        match transport {
            Transport::Tcp => u16::MAX,
            Transport::Udp => request.edns.as_ref().map_or(CLASSIC_UDP_SIZE, |e| {
                e.max_payload()
                    .min(self.config.max_udp_payload)
                    .max(CLASSIC_UDP_SIZE)
            }),
        }
    }

    /// Answers `query` into `out` when the zone can; `turn` rotates multi-address answers.
    fn respond(
        &self,
        query: &[u8],
        transport: Transport,
        turn: usize,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(_) => return format_error(query, out),
        };
        if request.metadata.message_type != MessageType::Query {
            return Outcome::Drop;
        }
        if request.metadata.op_code != OpCode::Query {
            self.error(&request, ResponseCode::NotImp, out);
            return Outcome::Reply;
        }
        let [question] = request.queries.as_slice() else {
            self.error(&request, ResponseCode::FormErr, out);
            return Outcome::Reply;
        };
        if question.query_class != DNSClass::IN {
            return Outcome::Forward(request);
        }
        let max = self.max_size(&request, transport);
        let zone = self.zone.read().unwrap_or_else(PoisonError::into_inner);
        let answer = match zone.lookup(&question.name, question.query_type) {
            Lookup::Forward => {
                drop(zone);
                return Outcome::Forward(request);
            }
            Lookup::NotReady => {
                drop(zone);
                self.error(&request, ResponseCode::ServFail, out);
                return Outcome::Reply;
            }
            Lookup::Answer(answer) => answer,
        };
        let Some(mut target) = answer.cname_target else {
            self.encode(
                out,
                &request,
                answer.code,
                true,
                answer.answers(turn),
                answer.soa.as_slice(),
                &answer.additionals,
                max,
            );
            return Outcome::Reply;
        };
        // A CNAME: follow it while it stays in the zone.
        let mut chain = answer.answer_records();
        for _ in 0..MAX_CNAME_HOPS {
            match zone.lookup(target, question.query_type) {
                Lookup::Answer(next) => {
                    chain.extend(next.answers(turn).cloned());
                    match next.cname_target {
                        Some(next_target) => target = next_target,
                        None => {
                            let code = next.code;
                            let soa: Vec<Record> = next.soa.into_iter().cloned().collect();
                            drop(next);
                            drop(zone);
                            let chain: Vec<&Record> = chain.iter().collect();
                            let soa: Vec<&Record> = soa.iter().collect();
                            self.encode(
                                out,
                                &request,
                                code,
                                true,
                                chain.iter().copied(),
                                &soa,
                                &[],
                                max,
                            );
                            return Outcome::Reply;
                        }
                    }
                }
                Lookup::Forward => {
                    let target = target.clone();
                    drop(zone);
                    return Outcome::Chase(Chase {
                        request,
                        chain,
                        target,
                    });
                }
                Lookup::NotReady => break,
            }
        }
        drop(zone);
        self.error(&request, ResponseCode::ServFail, out);
        Outcome::Reply
    }

    /// Encodes an answer to `request`; when it does not fit in `max` bytes, without the additional section,
    /// then with the truncation bit and no records.
    #[allow(clippy::too_many_arguments)]
    fn encode<'r>(
        &self,
        out: &mut Vec<u8>,
        request: &Message,
        code: ResponseCode,
        authoritative: bool,
        answers: impl Iterator<Item = &'r Record> + Clone,
        authority: &[&Record],
        additionals: &[&Record],
        max: u16,
    ) {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = authoritative;
        metadata.recursion_available = true;
        metadata.response_code = code;
        let edns = request.edns.as_ref().map(|_| &self.edns);
        let questions = || request.queries.iter();
        let emit_with = |out: &mut Vec<u8>, additionals: &[&Record]| {
            emit(
                out,
                &metadata,
                &mut questions(),
                &mut answers.clone(),
                &mut authority.iter().copied(),
                &mut additionals.iter().copied(),
                edns,
                max,
            )
        };
        // The additional section is optional: drop it before truncating (RFC 2181 9).
        let cut = emit_with(out, additionals).and_then(|cut| {
            if cut && !additionals.is_empty() {
                emit_with(out, &[])
            } else {
                Ok(cut)
            }
        });
        match cut {
            Ok(false) => return,
            Ok(true) => metadata.truncation = true,
            Err(e) => {
                tracing::warn!("cannot encode the answer to {:?}: {e}", request.queries);
                metadata.response_code = ResponseCode::ServFail;
            }
        }
        let result = emit(
            out,
            &metadata,
            &mut questions(),
            &mut std::iter::empty::<&Record>(),
            &mut std::iter::empty::<&Record>(),
            &mut std::iter::empty::<&Record>(),
            edns,
            max,
        );
        if result.is_err() {
            out.clear();
        }
    }

    /// An answer with `code` and no records.
    fn error(&self, request: &Message, code: ResponseCode, out: &mut Vec<u8>) {
        self.encode(
            out,
            request,
            code,
            false,
            std::iter::empty(),
            &[],
            &[],
            CLASSIC_UDP_SIZE,
        );
    }

    fn error_bytes(&self, request: &Message, code: ResponseCode) -> Vec<u8> {
        let mut out = Vec::new();
        self.error(request, code, &mut out);
        out
    }

    /// The first upstream's answer to `query`, over `transport`.
    async fn exchange(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        for upstream in &self.config.upstreams {
            let attempt = match transport {
                Transport::Udp => {
                    tokio::time::timeout(self.config.timeout, exchange_udp(*upstream, query)).await
                }
                Transport::Tcp => {
                    tokio::time::timeout(self.config.timeout, exchange_tcp(*upstream, query)).await
                }
            };
            match attempt {
                Ok(Ok(reply)) => return Some(reply),
                Ok(Err(e)) => tracing::debug!("upstream {upstream}: {e}"),
                Err(_) => tracing::debug!(
                    "upstream {upstream}: no answer in {:?}",
                    self.config.timeout
                ),
            }
        }
        None
    }

    /// Relays a query that is not the zone's; SERVFAIL when no upstream answers.
    async fn forward(&self, query: &[u8], request: &Message, transport: Transport) -> Vec<u8> {
        match self.exchange(query, transport).await {
            Some(reply) => reply,
            None => self.error_bytes(request, ResponseCode::ServFail),
        }
    }

    /// Resolves a CNAME's target upstream and answers with the zone's CNAMEs followed by what came back.
    async fn chase(&self, chase: Chase, transport: Transport) -> Vec<u8> {
        let request = &chase.request;
        let Some(question) = request.queries.first() else {
            return self.error_bytes(request, ResponseCode::ServFail);
        };
        let mut query = Message::query();
        query.metadata.id = request.metadata.id;
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(chase.target.clone(), question.query_type));
        query.set_edns(self.edns.clone());
        let Ok(bytes) = query.to_vec() else {
            return self.error_bytes(request, ResponseCode::ServFail);
        };
        let mut reply = self.exchange(&bytes, Transport::Udp).await;
        if reply
            .as_deref()
            .is_some_and(|r| r.len() > 2 && r[2] & 0x02 != 0)
        {
            reply = self.exchange(&bytes, Transport::Tcp).await;
        }
        let Some(reply) = reply.and_then(|r| Message::from_vec(&r).ok()) else {
            return self.error_bytes(request, ResponseCode::ServFail);
        };
        let answers: Vec<&Record> = chase.chain.iter().chain(reply.answers.iter()).collect();
        let authority: Vec<&Record> = reply.authorities.iter().collect();
        let mut out = Vec::new();
        self.encode(
            &mut out,
            request,
            reply.metadata.response_code,
            false,
            answers.iter().copied(),
            &authority,
            &[],
            self.max_size(request, transport),
        );
        out
    }
}

/// Emits one message; whether it was cut to fit `max`.
#[allow(clippy::too_many_arguments)]
fn emit(
    out: &mut Vec<u8>,
    metadata: &Metadata,
    questions: &mut impl EmitAndCount,
    answers: &mut impl EmitAndCount,
    authority: &mut impl EmitAndCount,
    additionals: &mut impl EmitAndCount,
    edns: Option<&Edns>,
    max: u16,
) -> Result<bool, ProtoError> {
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(max);
    let header = hickory_proto::op::emit_message_parts(
        metadata,
        questions,
        answers,
        authority,
        additionals,
        edns,
        None,
        &mut encoder,
    )?;
    Ok(header.metadata.truncation)
}

/// FORMERR for a query that does not parse, if its header does.
fn format_error(query: &[u8], out: &mut Vec<u8>) -> Outcome {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Outcome::Drop;
    }
    out.clear();
    out.extend_from_slice(&query[..2]);
    // QR, the opcode and RD as asked; RA; FORMERR; no records.
    out.push(0x80 | (query[2] & 0x79));
    out.push(0x80 | ResponseCode::FormErr.low());
    out.extend_from_slice(&[0; 8]);
    Outcome::Reply
}

fn unspecified_for(upstream: SocketAddr) -> SocketAddr {
    match upstream {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// Whether `reply` answers `query` (same ID, a response).
fn answers_query(reply: &[u8], query: &[u8]) -> bool {
    reply.len() >= 12 && query.len() >= 2 && reply[..2] == query[..2] && reply[2] & 0x80 != 0
}

async fn exchange_udp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let socket = UdpSocket::bind(unspecified_for(upstream)).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0; usize::from(u16::MAX)];
    loop {
        let len = socket.recv(&mut buf).await?;
        if answers_query(&buf[..len], query) {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    write_framed(&mut stream, query).await?;
    let len = stream.read_u16().await?;
    let mut reply = vec![0; usize::from(len)];
    stream.read_exact(&mut reply).await?;
    if !answers_query(&reply, query) {
        return Err(io::Error::other("the answer is not for this query"));
    }
    Ok(reply)
}

/// Writes a DNS message with its TCP length prefix, in one write.
async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len()).map_err(|_| io::Error::other("message too long"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

async fn udp_loop(server: Arc<Server>, socket: Arc<UdpSocket>) -> io::Result<()> {
    let mut buf = vec![0; usize::from(u16::MAX)];
    let mut out = Vec::with_capacity(usize::from(CLASSIC_UDP_SIZE));
    let mut turn = 0usize;
    let mut failures = 0u32;
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => {
                failures = 0;
                received
            }
            Err(e) => {
                // Errors reported for earlier sends (ICMP) are not the socket's end; a stream of them is.
                failures += 1;
                if failures > 1000 {
                    return Err(e);
                }
                tracing::debug!("DNS UDP receive: {e}");
                continue;
            }
        };
        turn = turn.wrapping_add(1);
        let query = &buf[..len];
        match server.respond(query, Transport::Udp, turn, &mut out) {
            Outcome::Reply => {
                if let Err(e) = socket.send_to(&out, peer).await {
                    tracing::debug!("DNS UDP send to {peer}: {e}");
                }
            }
            Outcome::Forward(request) => {
                let Ok(permit) = server.forwards.clone().try_acquire_owned() else {
                    server
                        .refuse_forward(&socket, &request, peer, &mut out)
                        .await;
                    continue;
                };
                let (server, socket, query) = (server.clone(), socket.clone(), query.to_vec());
                tokio::spawn(async move {
                    let reply = server.forward(&query, &request, Transport::Udp).await;
                    drop(permit);
                    if let Err(e) = socket.send_to(&reply, peer).await {
                        tracing::debug!("DNS UDP send to {peer}: {e}");
                    }
                });
            }
            Outcome::Chase(chase) => {
                let Ok(permit) = server.forwards.clone().try_acquire_owned() else {
                    server
                        .refuse_forward(&socket, &chase.request, peer, &mut out)
                        .await;
                    continue;
                };
                let (server, socket) = (server.clone(), socket.clone());
                tokio::spawn(async move {
                    let reply = server.chase(chase, Transport::Udp).await;
                    drop(permit);
                    if let Err(e) = socket.send_to(&reply, peer).await {
                        tracing::debug!("DNS UDP send to {peer}: {e}");
                    }
                });
            }
            Outcome::Drop => {}
        }
    }
}

async fn tcp_loop(
    server: Arc<Server>,
    listener: TcpListener,
    connections: Arc<Semaphore>,
) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait for some to be given back.
                tracing::warn!("DNS TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!("DNS TCP: too many connections, closing the one from {peer}");
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = tcp_connection(&server, stream).await {
                tracing::debug!("DNS TCP connection from {peer}: {e}");
            }
            drop(permit);
        });
    }
}

/// Answers the queries of one TCP connection in turn until it closes or idles.
async fn tcp_connection(server: &Server, mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut query = Vec::new();
    let mut out = Vec::new();
    let mut turn = 0usize;
    loop {
        let Ok(len) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return Ok(());
        };
        let len = match len {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        query.resize(usize::from(len), 0);
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "query not sent in time"))??;
        turn = turn.wrapping_add(1);
        match server.respond(&query, Transport::Tcp, turn, &mut out) {
            Outcome::Reply => write_framed(&mut stream, &out).await?,
            Outcome::Forward(request) => {
                let reply = server.forward(&query, &request, Transport::Tcp).await;
                write_framed(&mut stream, &reply).await?;
            }
            Outcome::Chase(chase) => {
                let reply = server.chase(chase, Transport::Tcp).await;
                write_framed(&mut stream, &reply).await?;
            }
            Outcome::Drop => return Ok(()),
        }
    }
}
