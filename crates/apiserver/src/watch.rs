//! Watches: the current objects as ADDED events when asked, then every change from the watch cache (or, for
//! a start older than its ring, from the store), seen through the label and field selectors, with bookmarks
//! when asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gantry_api::field::FieldError;
use gantry_api::{ApiError, GroupKind};
use gantry_store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};
use gantry_watch_cache::{Event, EventType, Object};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use crate::objects;
use crate::response::{self, Response};
use crate::rest::{Call, Output, Selectors, cached_value, parse_revision};

/// How often a watch that asked for bookmarks gets one (kube-apiserver: about a minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

impl Call<'_> {
    fn bookmark(&self, revision: Revision, initial_events_end: bool) -> Bytes {
        bookmark_line(
            self.resource.kind,
            &self.resource.api_version(),
            revision,
            initial_events_end,
        )
    }

    pub(crate) async fn watch(&self) -> Result<Response, ApiError> {
        let selectors = self.selectors()?;
        let timeout = self
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs);
        let flag = |name: &str| self.query.get(name).map(String::as_str) == Some("true");
        let (bookmarks, send_initial) = (flag("allowWatchBookmarks"), flag("sendInitialEvents"));
        let not_older_than =
            self.query.get("resourceVersionMatch").map(String::as_str) == Some("NotOlderThan");
        if send_initial && !(bookmarks && not_older_than) {
            return Err(ApiError::invalid(
                GroupKind::new("meta.k8s.io", "ListOptions"),
                "",
                &[FieldError::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents requires allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan",
                )],
            ));
        }
        // No resourceVersion (or "0"), or sendInitialEvents: the current objects as ADDED events first (ended
        // by a bookmark for sendInitialEvents), then changes after them.
        let output = self.output.clone();
        let initial_list = send_initial
            || matches!(
                self.query.get("resourceVersion").map(String::as_str),
                None | Some("" | "0")
            );
        let (after, mut initial) = match self.query.get("resourceVersion").map(String::as_str) {
            _ if initial_list && self.cache_ready().await? => {
                let listed = self.cache.list(&self.scope_prefix(), None, 0, |o| {
                    selectors.matches_cached(o)
                });
                let lines = listed
                    .objects
                    .iter()
                    .filter_map(|o| cached_watch_line(EventType::Added, o, &output))
                    .collect();
                (listed.revision, lines)
            }
            _ if initial_list => {
                let (revision, objects) = self.read_all(&selectors).await?;
                (
                    revision,
                    objects
                        .into_iter()
                        .map(|o| watch_line("ADDED", &output.one(o)))
                        .collect(),
                )
            }
            rv => (parse_revision(rv.unwrap_or_default())?, Vec::new()),
        };
        if send_initial {
            initial.push(self.bookmark(after, true));
        }
        let lines: Vec<Bytes> = initial;
        // The revision of the last change this watcher has passed (delivered or filtered out): where a
        // bookmark may say it is.
        let seen = Arc::new(AtomicI64::new(after));
        let error_line = |e: StoreError| watch_line("ERROR", &ApiError::from(e).to_status());
        // The cache serves watches from the revisions it still holds; older ones are the store's.
        let seen_by_events = seen.clone();
        let events: futures::stream::BoxStream<'static, Bytes> =
            if let Some(stream) = self.cache.watch(self.scope_prefix(), after) {
                stream
                    .filter_map(move |event| {
                        futures::future::ready(match event {
                            Ok(event) => {
                                seen_by_events.store(event.revision(), Ordering::Relaxed);
                                cached_watch_event(&event, &selectors, &output)
                            }
                            Err(e) => Some(error_line(e)),
                        })
                    })
                    .boxed()
            } else {
                match self.store.watch(self.scope_prefix(), after).await {
                    Ok(stream) => stream
                        .filter_map(move |event| {
                            futures::future::ready(match event {
                                Ok(event) => {
                                    seen_by_events.store(event.revision(), Ordering::Relaxed);
                                    watch_event(&event, &selectors, &output)
                                }
                                Err(e) => Some(error_line(e)),
                            })
                        })
                        .boxed(),
                    // A compacted start is reported in the stream, as Kubernetes does.
                    Err(e) => futures::stream::iter([error_line(e)]).boxed(),
                }
            };
        let events = if bookmarks {
            // Every BOOKMARK_INTERVAL a bookmark at the revision reached; the stream ends with the events.
            let (kind, api_version) = (self.resource.kind, self.resource.api_version());
            let ticks = futures::stream::unfold((), |()| async {
                tokio::time::sleep(BOOKMARK_INTERVAL).await;
                Some(((), ()))
            })
            .map(move |()| {
                Some(bookmark_line(
                    kind,
                    &api_version,
                    seen.load(Ordering::Relaxed),
                    false,
                ))
            });
            futures::stream::select(
                events
                    .map(Some)
                    .chain(futures::stream::once(async { None })),
                ticks,
            )
            .take_while(|line| futures::future::ready(line.is_some()))
            .filter_map(futures::future::ready)
            .boxed()
        } else {
            events
        };
        let stream = futures::stream::iter(lines).chain(events);
        let stream = match timeout {
            Some(timeout) => stream.take_until(tokio::time::sleep(timeout)).boxed(),
            None => stream.boxed(),
        };
        // Counted as open until the client goes away and the body (with the guard) is dropped.
        let open = crate::metrics::OpenWatch::new(self.metrics.clone(), self.resource.plural);
        let body = StreamBody::new(stream.map(move |line| {
            let _open = &open;
            Ok::<_, std::convert::Infallible>(Frame::data(line))
        }));
        let mut response = http::Response::new(BodyExt::boxed_unsync(body));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(response::JSON),
        );
        Ok(response)
    }
}

/// The watch line for a cached object; objects go out as the bytes the cache holds.
pub(crate) fn cached_watch_line(
    kind: EventType,
    object: &Object,
    output: &Output,
) -> Option<Bytes> {
    match output {
        Output::Objects => {
            let mut line = Vec::with_capacity(object.json.len() + 32);
            line.extend_from_slice(br#"{"type":""#);
            line.extend_from_slice(kind.as_str().as_bytes());
            line.extend_from_slice(br#"","object":"#);
            line.extend_from_slice(&object.json);
            line.extend_from_slice(b"}\n");
            Some(line.into())
        }
        _ => Some(watch_line(
            kind.as_str(),
            &output.one(cached_value(object).ok()?),
        )),
    }
}

/// [`watch_event`] for the cache's events.
fn cached_watch_event(event: &Event, selectors: &Selectors, output: &Output) -> Option<Bytes> {
    let before = event
        .prev
        .as_ref()
        .is_some_and(|p| selectors.matches_cached(p));
    let deleted = event.kind == EventType::Deleted;
    let now = !deleted && selectors.matches_cached(&event.object);
    let kind = seen_as(deleted, now, before)?;
    cached_watch_line(kind, &event.object, output)
}

/// One line of a watch stream.
pub(crate) fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    line.into()
}

/// The watch line for a store event, as seen through the selectors: an object that stops matching is
/// DELETED for this watcher, one that starts matching ADDED.
fn watch_event(event: &WatchEvent, selectors: &Selectors, output: &Output) -> Option<Bytes> {
    let decode = |kv: &KeyValue| objects::decode(kv).ok();
    let previous = event
        .prev
        .as_ref()
        .and_then(decode)
        .filter(|o| selectors.matches(o));
    match event.kind {
        EventKind::Put => {
            let object = decode(&event.kv)?;
            let kind = seen_as(false, selectors.matches(&object), previous.is_some())?;
            Some(watch_line(kind.as_str(), &output.one(object)))
        }
        EventKind::Delete => {
            let mut object = previous?;
            objects::set_resource_version(&mut object, event.revision());
            Some(watch_line("DELETED", &output.one(object)))
        }
    }
}

/// What a change is to a watcher with selectors, from whether the object matched before and matches now: an
/// object that starts matching is ADDED, one that stops is DELETED, one that matches neither time is not seen.
fn seen_as(deleted: bool, matches_now: bool, matched_before: bool) -> Option<EventType> {
    match (deleted, matches_now, matched_before) {
        (true, _, true) | (false, false, true) => Some(EventType::Deleted),
        (false, true, true) => Some(EventType::Modified),
        (false, true, false) => Some(EventType::Added),
        (_, false, false) | (true, true, false) => None,
    }
}

/// A watch `BOOKMARK` event at `revision`; the one ending a watch's initial events says so.
fn bookmark_line(
    kind: &str,
    api_version: &str,
    revision: Revision,
    initial_events_end: bool,
) -> Bytes {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    watch_line(
        "BOOKMARK",
        &json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}),
    )
}
