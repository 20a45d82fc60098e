//! The [`Store`] backend for an external etcd cluster (v3 API, through `etcd-client`).
//!
//! Revisions are etcd's own. Every write is one etcd transaction that compares the key's create or mod
//! revision, so compare-and-swap happens inside etcd. etcd's errors lack two numbers the store reports; they
//! are looked up on the error path only: the compaction revision (a watch from revision 1 is told it) and, for
//! `FutureRevision`, the current revision.
//!
//! Requests that could not connect to the member they were sent to are repeated (nothing reached etcd, so
//! this is safe for writes too); others fail with `Unavailable` and are the caller's to retry. A watch whose
//! connection breaks ends with an `Unavailable` item: watch again after the last revision seen.

#[cfg(feature = "testing")]
pub mod testing;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, GetResponse, KvClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchClient, WatchOptions,
};
use futures::StreamExt;
use gantry_store::{
    Deleted, EtcdTls, EventKind, KeyValue, RangePage, RangeRequest, Result, Revision, Store,
    StoreError, StoreUrl, WatchEvent, WatchStream, check_key, prefix_end,
};

/// How long to wait for a TCP (and TLS) connection to an endpoint, and for the first answer on connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may take before the store reports etcd unavailable. Generous: a leader election in a
/// healthy cluster takes a second or two, a large range longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest gRPC message sent or received: etcd's own limit on replies, well above the values' size.
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;
/// How hyper (under tonic) reports a failed TCP connect, in the error chain of a request that was never sent.
const CONNECT_ERROR: &str = "tcp connect error";
/// The smallest key: etcd reads "from `\0` to the end `\0`" as every key.
const FIRST_KEY: &[u8] = b"\0";

/// A [`Store`] on an etcd cluster. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    /// The endpoints, for error messages.
    endpoints: String,
    /// How many times to try a request that could not connect (see [`EtcdStore::call`]).
    attempts: usize,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the etcd cluster behind `endpoints` (`http://` or, with `tls`, `https://` URLs) and checks
    /// that it answers: `Unavailable` within a few seconds if it does not, `InvalidArgument` for unusable
    /// settings (e.g. a TLS file that cannot be read).
    pub async fn connect(endpoints: &[String], tls: Option<&EtcdTls>) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidArgument(
                "no etcd endpoints given".into(),
            ));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            // Pings only while a stream (a watch) is open: etcd answers idle pings with "too many pings".
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(false);
        if let Some(tls) = tls {
            options = options.with_tls(tls_options(tls)?);
        }
        let shown = endpoints.join(",");
        // Nothing is sent yet (the client connects lazily): what fails here are the settings.
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| {
                StoreError::InvalidArgument(format!("etcd endpoints {shown}: {}", describe(&e)))
            })?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            endpoints: shown,
            attempts: 2 * endpoints.len() + 1,
        };
        // The client connects lazily: ask something to know that etcd is there.
        let probe = store.get_raw(FIRST_KEY, GetOptions::new().with_count_only());
        match tokio::time::timeout(CONNECT_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(f)) => Err(store.failure_to_error(f)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd at {} did not answer within {CONNECT_TIMEOUT:?}: {}",
                store.endpoints,
                diagnose(endpoints).await
            ))),
        }
    }

    /// Connects to the etcd cluster a [`StoreUrl::Etcd`] names.
    pub async fn open(url: &StoreUrl) -> Result<EtcdStore> {
        match url {
            StoreUrl::Etcd { endpoints, tls } => Self::connect(endpoints, tls.as_ref()).await,
            other => Err(StoreError::InvalidArgument(format!(
                "not an etcd store URL: {other:?}"
            ))),
        }
    }

    /// Runs one request, built afresh by `request` for each attempt, with [`REQUEST_TIMEOUT`] in all. Attempts
    /// that failed to connect are repeated: the client balances over the endpoints and keeps trying members
    /// that are down, and such a request never reached etcd, so repeating it (even a write) is safe.
    async fn call<T, F: Future<Output = Result<T, etcd_client::Error>>>(
        &self,
        mut request: impl FnMut() -> F,
    ) -> Result<T, Failure> {
        let attempts = async {
            for _ in 1..self.attempts {
                match request().await {
                    Err(e) if never_sent(&e) => {
                        tracing::debug!(endpoints = %self.endpoints, error = %describe(&e),
                            "an etcd request could not connect; trying again");
                    }
                    reply => return reply,
                }
            }
            request().await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, attempts).await {
            Ok(reply) => reply.map_err(|e| self.failure(e)),
            Err(_) => Err(Failure::Error(StoreError::Unavailable(format!(
                "etcd at {} did not answer within {REQUEST_TIMEOUT:?}",
                self.endpoints
            )))),
        }
    }

    async fn get_raw(&self, key: &[u8], options: GetOptions) -> Result<GetResponse, Failure> {
        self.call(|| {
            let (mut kv, key, options) = (self.kv.clone(), key.to_vec(), options.clone());
            async move { kv.get(key, Some(options)).await }
        })
        .await
    }

    async fn watch_raw(
        &self,
        key: &[u8],
        options: WatchOptions,
    ) -> Result<etcd_client::WatchStream> {
        self.call(|| {
            let (mut watch, key, options) = (self.watch.clone(), key.to_vec(), options.clone());
            async move { watch.watch(key, Some(options)).await }
        })
        .await
        .map_err(|f| self.failure_to_error(f))
    }

    /// Runs one write (which etcd never reports as compacted or in the future).
    async fn write(&self, txn: Txn) -> Result<TxnResponse> {
        self.call(|| {
            let (mut kv, txn) = (self.kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(|f| self.failure_to_error(f))
    }

    fn failure(&self, error: etcd_client::Error) -> Failure {
        let what = describe(&error);
        Failure::Error(match error {
            etcd_client::Error::GRpcStatus(status) => {
                return classify(status.code() as i32, &what, &self.endpoints);
            }
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
                StoreError::Unavailable(format!("etcd at {}: {what}", self.endpoints))
            }
            _ => StoreError::Internal(format!("etcd at {}: {what}", self.endpoints)),
        })
    }

    /// Completes a failed read or compaction of `requested` into the store's error.
    async fn resolve(&self, failure: Failure, requested: Revision) -> StoreError {
        match failure {
            Failure::Error(e) => e,
            Failure::Compacted => match self.compaction_revision().await {
                Ok(compacted) => StoreError::Compacted {
                    requested,
                    compacted,
                },
                Err(e) => e,
            },
            Failure::FutureRevision => match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(e) => e,
            },
        }
    }

    /// The revision etcd compacted to (0 for none; a compaction at revision 1, which drops nothing, reads as 0).
    async fn compaction_revision(&self) -> Result<Revision> {
        // Revision 1 is readable unless something was compacted, and that is the common case.
        let at_one = GetOptions::new().with_count_only().with_revision(1);
        match self.get_raw(FIRST_KEY, at_one).await {
            Ok(_) | Err(Failure::FutureRevision) => return Ok(0),
            Err(Failure::Error(e)) => return Err(e),
            Err(Failure::Compacted) => {}
        }
        // A watch that starts below the compaction is canceled with the compaction revision. Revision 1 is
        // below it, so etcd replays nothing; the key hardly matters.
        let options = WatchOptions::new().with_start_revision(1);
        let mut watch = self.watch_raw(FIRST_KEY, options).await?;
        let answer = async {
            loop {
                match watch.message().await {
                    Ok(Some(reply)) if reply.compact_revision() > 0 => {
                        return Ok(reply.compact_revision());
                    }
                    Ok(Some(reply)) if reply.canceled() => {
                        return Err(StoreError::Internal(format!(
                            "etcd canceled a watch from revision 1 without a compaction revision: {}",
                            reply.cancel_reason()
                        )));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(StoreError::Unavailable(format!(
                            "etcd at {} closed a watch",
                            self.endpoints
                        )));
                    }
                    Err(e) => return Err(self.failure_to_error(self.failure(e))),
                }
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd at {} did not report its compaction revision within {REQUEST_TIMEOUT:?}",
                self.endpoints
            ))),
        }
    }

    fn failure_to_error(&self, failure: Failure) -> StoreError {
        match failure {
            Failure::Error(e) => e,
            other => StoreError::Internal(format!(
                "unexpected reply from etcd at {}: {other:?}",
                self.endpoints
            )),
        }
    }

    /// Reads `[key, end)` (or the single `key` when `end` is `None`) at `revision` (the latest if `None`).
    /// Returns the key-values, whether more follow `limit`, and the revision read.
    async fn read(
        &self,
        key: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<(Vec<KeyValue>, bool, Revision)> {
        if let Some(revision) = revision.filter(|&r| r < 1) {
            // etcd reads "revision <= 0" as the latest; the store has nothing before revision 1.
            let compacted = self.compaction_revision().await?;
            if revision < compacted {
                return Err(StoreError::Compacted {
                    requested: revision,
                    compacted,
                });
            }
            return Ok((Vec::new(), false, revision));
        }
        let limit = i64::try_from(limit)
            .map_err(|_| StoreError::InvalidArgument(format!("limit {limit} is too large")))?;
        let mut options = GetOptions::new()
            .with_limit(limit)
            .with_revision(revision.unwrap_or(0));
        if let Some(end) = end {
            options = options.with_range(end);
        }
        match self.get_raw(&key, options).await {
            Ok(mut reply) => {
                let read_at = match revision {
                    Some(r) => r,
                    None => header_revision(reply.header())?,
                };
                let more = reply.more();
                let kvs = reply.take_kvs().into_iter().map(key_value).collect();
                Ok((kvs, more, read_at))
            }
            Err(f) => Err(self.resolve(f, revision.unwrap_or(0)).await),
        }
    }

    /// `Compacted` if a watch after `after` would miss compacted changes (etcd itself allows one revision
    /// more: a watch may start at the compaction revision, i.e. after the revision before it).
    async fn check_watchable(&self, after: Revision) -> Result<()> {
        if after < 1 {
            let compacted = self.compaction_revision().await?;
            return match after < compacted {
                true => Err(StoreError::Compacted {
                    requested: after,
                    compacted,
                }),
                false => Ok(()),
            };
        }
        let at = GetOptions::new().with_count_only().with_revision(after);
        match self.get_raw(FIRST_KEY, at).await {
            // A future `after` is fine: the watch waits for it.
            Ok(_) | Err(Failure::FutureRevision) => Ok(()),
            Err(f) => Err(self.resolve(f, after).await),
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        let options = GetOptions::new().with_count_only();
        match self.get_raw(FIRST_KEY, options).await {
            Ok(reply) => header_revision(reply.header()),
            Err(f) => Err(self.failure_to_error(f)),
        }
    }

    async fn get(&self, key: &[u8], revision: Option<Revision>) -> Result<Option<KeyValue>> {
        check_key(key)?;
        let (kvs, _, _) = self.read(key.to_vec(), None, 0, revision).await?;
        Ok(kvs.into_iter().next())
    }

    async fn range(&self, request: RangeRequest) -> Result<RangePage> {
        let (start, end, revision) = request.bounds()?;
        let start = if start.is_empty() {
            FIRST_KEY.to_vec()
        } else {
            start
        };
        let end = end.unwrap_or_else(|| FIRST_KEY.to_vec());
        let (kvs, more, revision) = self.read(start, Some(end), request.limit, revision).await?;
        Ok(RangePage::new(kvs, revision, more))
    }

    async fn create(&self, key: Bytes, value: Bytes) -> Result<KeyValue> {
        check_key(&key)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.to_vec(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.to_vec(), value.to_vec(), None)]);
        let reply = self.write(txn).await?;
        if !reply.succeeded() {
            return Err(StoreError::AlreadyExists { key });
        }
        let revision = header_revision(reply.header())?;
        Ok(KeyValue {
            key,
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(&self, key: Bytes, value: Bytes, expected: Revision) -> Result<KeyValue> {
        check_key(&key)?;
        let txn = Txn::new()
            .when(unchanged_since(&key, expected))
            .and_then([TxnOp::put(
                key.to_vec(),
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key.to_vec(), None)]);
        let reply = self.write(txn).await?;
        if !reply.succeeded() {
            return Err(refused(key, expected, &reply));
        }
        let revision = header_revision(reply.header())?;
        let prev = match reply.op_responses().first() {
            Some(TxnOpResponse::Put(put)) => put.prev_key().map(|kv| kv.create_revision()),
            _ => None,
        };
        let create_revision = prev.ok_or_else(|| {
            StoreError::Internal("etcd's reply to an update lacks the previous value".into())
        })?;
        Ok(KeyValue {
            key,
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: Bytes, expected: Option<Revision>) -> Result<Deleted> {
        check_key(&key)?;
        let delete = TxnOp::delete(key.to_vec(), Some(DeleteOptions::new().with_prev_key()));
        let txn = match expected {
            Some(expected) => Txn::new()
                .when(unchanged_since(&key, expected))
                .and_then([delete])
                .or_else([TxnOp::get(key.to_vec(), None)]),
            None => Txn::new().and_then([delete]),
        };
        let reply = self.write(txn).await?;
        if let (false, Some(expected)) = (reply.succeeded(), expected) {
            return Err(refused(key, expected, &reply));
        }
        let prev = match reply.op_responses().into_iter().next() {
            Some(TxnOpResponse::Delete(mut deleted)) => deleted.take_prev_kvs().into_iter().next(),
            _ => None,
        };
        match prev {
            Some(prev) => Ok(Deleted {
                prev: key_value(prev),
                revision: header_revision(reply.header())?,
            }),
            None => Err(StoreError::NotFound { key }),
        }
    }

    async fn watch(&self, prefix: Bytes, after: Revision) -> Result<WatchStream> {
        let (key, end) = match prefix_end(&prefix) {
            _ if prefix.is_empty() => (FIRST_KEY.to_vec(), FIRST_KEY.to_vec()),
            Some(end) => (prefix.to_vec(), end),
            None => (prefix.to_vec(), FIRST_KEY.to_vec()),
        };
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(after.saturating_add(1).max(1))
            .with_prev_key();
        // Watch first, check second: a compaction in between is then seen by one or the other.
        let stream = self.watch_raw(&key, options).await?;
        self.check_watchable(after).await?;
        let watcher = Watcher {
            stream,
            pending: VecDeque::new(),
            last: after,
            error: None,
            finished: false,
            endpoints: self.endpoints.clone(),
        };
        Ok(futures::stream::unfold(watcher, |mut w| async move {
            w.next().await.map(|item| (item, w))
        })
        .boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        if revision < 1 {
            // etcd would accept it; nothing before revision 1 is left to compact.
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: self.compaction_revision().await?,
            });
        }
        let options = CompactionOptions::new().with_physical();
        let compact = self.call(|| {
            let (mut kv, options) = (self.kv.clone(), options.clone());
            async move { kv.compact(revision, Some(options)).await }
        });
        match compact.await {
            Ok(_) => Ok(()),
            Err(f) => Err(self.resolve(f, revision).await),
        }
    }
}

/// The compares of a compare-and-swap: the key exists and its mod revision is `expected`.
fn unchanged_since(key: &[u8], expected: Revision) -> [Compare; 2] {
    [
        Compare::version(key.to_vec(), CompareOp::Greater, 0),
        Compare::mod_revision(key.to_vec(), CompareOp::Equal, expected),
    ]
}

/// The error for a compare-and-swap whose compares failed; the `or_else` branch read the key.
fn refused(key: Bytes, expected: Revision, reply: &TxnResponse) -> StoreError {
    let current = match reply.op_responses().into_iter().next() {
        Some(TxnOpResponse::Get(mut get)) => get.take_kvs().into_iter().next(),
        _ => None,
    };
    match current {
        Some(current) => StoreError::Conflict {
            key,
            expected,
            current: Box::new(key_value(current)),
        },
        None => StoreError::NotFound { key },
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Internal("etcd replied without a header".into()))
}

fn key_value(kv: etcd_client::KeyValue) -> KeyValue {
    let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision,
        mod_revision,
    }
}

fn copy_key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: Bytes::copy_from_slice(kv.key()),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

fn watch_event(event: &etcd_client::Event) -> Result<WatchEvent> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Internal("etcd sent a watch event without a key".into()))?;
    let prev = event.prev_kv().map(copy_key_value);
    Ok(match (event.event_type(), prev) {
        (EventType::Put, prev) => WatchEvent {
            kind: EventKind::Put,
            kv: copy_key_value(kv),
            prev,
        },
        (EventType::Delete, Some(prev)) => WatchEvent::deleted(prev, kv.mod_revision()),
        // The previous value was compacted before the watcher read this event.
        (EventType::Delete, None) => WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: Bytes::copy_from_slice(kv.key()),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: kv.mod_revision(),
            },
            prev: None,
        },
    })
}

/// The state behind a [`WatchStream`]. Owns the etcd watch stream: dropping it closes the gRPC stream, which
/// cancels the watch in etcd.
struct Watcher {
    stream: etcd_client::WatchStream,
    pending: VecDeque<WatchEvent>,
    /// Revision of the last event queued for the consumer.
    last: Revision,
    /// The stream's last item, delivered after the pending events.
    error: Option<StoreError>,
    finished: bool,
    endpoints: String,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(error) = self.error.take() {
                self.finished = true;
                return Some(Err(error));
            }
            if self.finished {
                return None;
            }
            self.error = Some(match self.stream.message().await {
                Ok(Some(reply)) if reply.compact_revision() > 0 => StoreError::Compacted {
                    requested: self.last,
                    compacted: reply.compact_revision(),
                },
                Ok(Some(reply)) if reply.canceled() => StoreError::Unavailable(format!(
                    "etcd at {} canceled the watch: {}",
                    self.endpoints,
                    reply.cancel_reason()
                )),
                Ok(Some(reply)) => {
                    for event in reply.events() {
                        match watch_event(event) {
                            Ok(event) => {
                                self.last = event.revision();
                                self.pending.push_back(event);
                            }
                            // Deliver the events before it, then the error.
                            Err(e) => {
                                self.error = Some(e);
                                break;
                            }
                        }
                    }
                    continue;
                }
                Ok(None) => {
                    StoreError::Unavailable(format!("etcd at {} ended the watch", self.endpoints))
                }
                Err(e) => StoreError::Unavailable(format!(
                    "watch on etcd at {} failed: {}",
                    self.endpoints,
                    describe(&e)
                )),
            });
        }
    }
}

/// A failed etcd call, before the revisions etcd's error text lacks are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// "required revision has been compacted".
    Compacted,
    /// "required revision is a future revision".
    FutureRevision,
    Error(StoreError),
}

/// Maps a gRPC status from etcd (its numeric code and message) to what it means for the store.
fn classify(code: i32, message: &str, endpoints: &str) -> Failure {
    // gRPC status codes.
    const CANCELLED: i32 = 1;
    const UNKNOWN: i32 = 2;
    const INVALID_ARGUMENT: i32 = 3;
    const DEADLINE_EXCEEDED: i32 = 4;
    const RESOURCE_EXHAUSTED: i32 = 8;
    const FAILED_PRECONDITION: i32 = 9;
    const ABORTED: i32 = 10;
    const OUT_OF_RANGE: i32 = 11;
    const UNAVAILABLE: i32 = 14;

    if message.contains("required revision has been compacted") {
        return Failure::Compacted;
    }
    if message.contains("required revision is a future revision") {
        return Failure::FutureRevision;
    }
    let what = format!("etcd at {endpoints}: {message}");
    Failure::Error(match code {
        INVALID_ARGUMENT | FAILED_PRECONDITION | OUT_OF_RANGE => StoreError::InvalidArgument(what),
        // RESOURCE_EXHAUSTED: etcd's "database space exceeded", which an operator fixes.
        CANCELLED | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED | UNAVAILABLE => {
            StoreError::Unavailable(what)
        }
        // tonic reports transport failures (connection refused, reset) as UNKNOWN.
        UNKNOWN if is_transport_failure(message) => StoreError::Unavailable(what),
        _ => StoreError::Internal(what),
    })
}

/// Whether a request failed before it reached etcd: no TCP connection to the member it was sent to.
fn never_sent(error: &etcd_client::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match error {
        etcd_client::Error::GRpcStatus(status) if status.message() == CONNECT_ERROR => return true,
        etcd_client::Error::GRpcStatus(status) => Some(status),
        etcd_client::Error::TransportError(e) => Some(e),
        _ => None,
    };
    while let Some(error) = cause {
        if error.to_string() == CONNECT_ERROR {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The error's message and its causes', without etcd-client's and tonic's wrapping.
fn describe(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            with_causes(status.message(), std::error::Error::source(status))
        }
        etcd_client::Error::TransportError(e) => with_causes("", Some(e)),
        other => other.to_string(),
    }
}

/// `message`, followed by the messages of the error's causes that it does not already include.
fn with_causes(message: &str, mut cause: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut text = message.to_string();
    while let Some(error) = cause {
        let more = error.to_string();
        if !text.contains(&more) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&more);
        }
        cause = error.source();
    }
    text
}

fn is_transport_failure(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["transport", "connect", "broken pipe", "timed out"]
        .iter()
        .any(|m| message.contains(m))
}

/// TLS settings from PEM files. A file that cannot be read is an `InvalidArgument` naming it.
fn tls_options(tls: &EtcdTls) -> Result<etcd_client::TlsOptions> {
    let read = |what: &str, path: &std::path::Path| {
        let invalid = |why: String| {
            StoreError::InvalidArgument(format!("etcd {what} file {}: {why}", path.display()))
        };
        let pem = std::fs::read(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
        // The TLS library's own complaint about a bad file does not say which one.
        if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(invalid("not a PEM file".into()));
        }
        Ok(pem)
    };
    let mut options = etcd_client::TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(etcd_client::Certificate::from_pem(read("CA", ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            options = options.identity(etcd_client::Identity::from_pem(
                read("client certificate", cert)?,
                read("client key", key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::InvalidArgument(
                "etcd TLS: a client certificate and its key must be given together".into(),
            ));
        }
    }
    Ok(options)
}

/// Why no endpoint answered, as far as a plain TCP connection can tell (used on the connect error path).
async fn diagnose(endpoints: &[String]) -> String {
    let causes = futures::future::join_all(endpoints.iter().map(|endpoint| async move {
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        let connect = tokio::net::TcpStream::connect(authority);
        let cause = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(_)) => "accepts connections but does not answer gRPC requests".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no TCP connection within {CONNECT_TIMEOUT:?}"),
        };
        format!("{endpoint}: {cause}")
    }))
    .await;
    causes.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_etcd_errors() {
        let e = "http://e:2379";
        assert_eq!(
            classify(
                11,
                "etcdserver: mvcc: required revision has been compacted",
                e
            ),
            Failure::Compacted
        );
        assert_eq!(
            classify(
                11,
                "etcdserver: mvcc: required revision is a future revision",
                e
            ),
            Failure::FutureRevision
        );
        assert!(matches!(
            classify(14, "etcdserver: leader changed", e),
            Failure::Error(StoreError::Unavailable(m)) if m.contains("leader changed") && m.contains(e)
        ));
        assert!(matches!(
            classify(2, "transport error", e),
            Failure::Error(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            classify(3, "etcdserver: request is too large", e),
            Failure::Error(StoreError::InvalidArgument(_))
        ));
        assert!(matches!(
            classify(7, "etcdserver: permission denied", e),
            Failure::Error(StoreError::Internal(_))
        ));
    }

    #[test]
    fn unreadable_tls_files_are_named() {
        let tls = EtcdTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..EtcdTls::default()
        };
        let err = tls_options(&tls).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidArgument(m) if m.contains("/nonexistent/ca.pem")),
            "{err}"
        );
        let not_pem = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_pem.path(), "hello").unwrap();
        let tls = EtcdTls {
            ca_file: Some(not_pem.path().into()),
            ..EtcdTls::default()
        };
        let err = tls_options(&tls).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidArgument(m) if m.contains("not a PEM file")),
            "{err}"
        );
        let half = EtcdTls {
            cert_file: Some("/c.pem".into()),
            ..EtcdTls::default()
        };
        assert!(matches!(
            tls_options(&half),
            Err(StoreError::InvalidArgument(_))
        ));
    }
}
