//! The CronJob controller, with upstream's (1.33) semantics: creates a Job from `spec.jobTemplate` at each time
//! of the schedule (standard five-field cron, names, ranges, steps, lists and the `@hourly`… macros; in
//! `spec.timeZone` or else the server's local zone), named `<cronjob>-<scheduled time in minutes since the
//! epoch>` so that creating it twice (after a restart) is harmless; honours `suspend`, `concurrencyPolicy`
//! (Allow, Forbid, Replace), `startingDeadlineSeconds` (a start later than that is missed) and the history
//! limits; keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`; Events as upstream's.
//!
//! One task owns the state (the CronJobs and the Jobs the watches show, a [`WorkQueue`] of CronJob keys); each
//! key taken off the queue is synced by a task of its own (at most [`SYNCS_IN_FLIGHT`] at a time, never two
//! for one CronJob), which reports when to look at the CronJob again: its next schedule time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gantry_client::k8s_openapi::api::batch::v1::{CronJob, Job};
use gantry_client::k8s_openapi::api::core::v1::ObjectReference;
use gantry_client::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use gantry_client::k8s_openapi::jiff::civil::{Date, DateTime};
use gantry_client::k8s_openapi::jiff::tz::{AmbiguousOffset, TimeZone};
use gantry_client::k8s_openapi::jiff::{Timestamp, ToSpan};
use gantry_client::kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use gantry_client::kube::runtime::watcher;
use gantry_client::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{
    api_message, controller_ref, involved, is_already_exists, is_not_found, key, namespace_of,
    revision,
};
use crate::cache::watch_all;
use crate::pods;
use crate::queue::{Backoff, WorkQueue};
use gantry_client::events::{Event, Recorder};

/// The controller's name: the events' source.
pub const COMPONENT: &str = "cronjob-controller";
/// CronJobs being synced at once.
pub const SYNCS_IN_FLIGHT: usize = 16;
/// The annotation of a Job with the time it was scheduled for (RFC 3339, in the CronJob's time zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's `nextScheduleDelta`: a CronJob is looked at again this long after its next schedule time.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
/// More missed start times than this is "too many" (upstream's 100).
const TOO_MANY_MISSED: i64 = 100;
/// The longest wait before a failed sync is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

// ---- schedules ----------------------------------------------------------------------------------------------

pub use gantry_api::cron::{Fields, Schedule};

/// Parses a schedule (surrounding whitespace aside) as robfig/cron v3's `ParseStandard` does; a leading
/// `TZ=<zone> ` or `CRON_TZ=<zone> ` (which validation refuses in new CronJobs but older ones may hold) is
/// returned as the zone it names, which [`time_zone`] loads.
pub fn parse(spec: &str) -> Result<(Option<String>, Schedule), String> {
    let (zone, schedule) = gantry_api::cron::parse(spec.trim(), |_| Ok(()))?;
    Ok((zone.map(str::to_owned), schedule))
}

/// The lowest set bit of `bits` at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let masked = bits & (u64::MAX << from);
    (masked != 0).then(|| masked.trailing_zeros())
}

/// Civil-time matching of the parsed fields.
trait CivilFields {
    fn day_matches(&self, date: Date) -> bool;
    fn next_civil(&self, from: DateTime) -> Option<DateTime>;
}

impl CivilFields for Fields {
    fn day_matches(&self, date: Date) -> bool {
        let dom = self.dom & (1 << date.day()) != 0;
        let dow = self.dow & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first civil minute at or after `from` the fields match (within five years, as robfig's).
    fn next_civil(&self, from: DateTime) -> Option<DateTime> {
        let limit = from.year() + 5;
        let mut date = from.date();
        let (mut hour, mut minute) = (from.hour() as u32, from.minute() as u32);
        loop {
            if date.year() > limit {
                return None;
            }
            if self.months & (1 << date.month()) == 0 {
                date = date.first_of_month().checked_add(1.month()).ok()?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.day_matches(date) {
                date = date.tomorrow().ok()?;
                (hour, minute) = (0, 0);
                continue;
            }
            while let Some(h) = next_bit(self.hours, hour).filter(|h| *h < 24) {
                if h != hour {
                    minute = 0;
                }
                if let Some(m) = next_bit(self.minutes, minute).filter(|m| *m < 60) {
                    return DateTime::new(
                        date.year(),
                        date.month(),
                        date.day(),
                        h as i8,
                        m as i8,
                        0,
                        0,
                    )
                    .ok();
                }
                (hour, minute) = (h + 1, 0);
            }
            date = date.tomorrow().ok()?;
            (hour, minute) = (0, 0);
        }
    }
}

/// How far back in civil time a later instant can be (a fold when clocks go back).
const FOLD_WINDOW: i64 = 3 * 3600;

/// The times of a parsed schedule.
pub trait NextTime {
    /// The first time of the schedule strictly after `after`, in `tz`: civil times in a gap (clocks going
    /// forward) are skipped, those in a fold (clocks going back) happen twice, as with robfig's.
    fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp>;
}

impl NextTime for Schedule {
    fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(delay) => {
                let whole = Timestamp::from_second(after.as_second()).ok()?;
                whole.checked_add(*delay).ok()
            }
            Schedule::Cron(fields) => {
                let fixed = tz.to_fixed_offset().is_ok();
                let window = if fixed { 0 } else { FOLD_WINDOW };
                let start = tz.to_datetime(after.checked_sub(window.seconds()).ok()?);
                let mut civil = start.with().second(0).subsec_nanosecond(0).build().ok()?;
                let mut best: Option<Timestamp> = None;
                let mut stop: Option<DateTime> = None;
                loop {
                    civil = fields.next_civil(civil)?;
                    if stop.is_some_and(|s| civil > s) {
                        return best;
                    }
                    for t in instants(tz, civil) {
                        if t > after && best.is_none_or(|b| t < b) {
                            best = Some(t);
                        }
                    }
                    if best.is_some() && stop.is_none() {
                        if fixed {
                            return best;
                        }
                        stop = civil.checked_add(window.seconds()).ok();
                    }
                    civil = civil.checked_add(1.minute()).ok()?;
                }
            }
        }
    }
}

/// The instants a civil time is in `tz`: none in a gap, two in a fold.
fn instants(tz: &TimeZone, civil: DateTime) -> Vec<Timestamp> {
    match tz.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            offset.to_timestamp(civil).ok().into_iter().collect()
        }
        AmbiguousOffset::Gap { .. } => Vec::new(),
        AmbiguousOffset::Fold { before, after } => [before, after]
            .into_iter()
            .filter_map(|o| o.to_timestamp(civil).ok())
            .collect(),
    }
}

// ---- time zones ---------------------------------------------------------------------------------------------

const ZONEINFO: &[&str] = &[
    "/usr/share/zoneinfo",
    "/usr/share/lib/zoneinfo",
    "/usr/lib/locale/TZ",
    "/etc/zoneinfo",
];

/// The IANA time zone `name` (Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" the server's zone),
/// from the system's tz database.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => return Ok(TimeZone::UTC),
        "Local" => return Ok(local_time_zone()),
        _ => {}
    }
    let plausible = !name.starts_with('/')
        && !name.contains('\\')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != ".." && part != ".");
    if plausible {
        let dirs = std::env::var("ZONEINFO").ok().into_iter();
        for dir in dirs.chain(ZONEINFO.iter().map(|d| (*d).to_owned())) {
            if let Ok(data) = std::fs::read(std::path::Path::new(&dir).join(name)) {
                return TimeZone::tzif(name, &data)
                    .map_err(|e| format!("unknown time zone {name}: {e}"));
            }
        }
    }
    Err(format!("unknown time zone {name}"))
}

/// The server's own time zone: `$TZ`, else `/etc/localtime`, else UTC (as Go's `time.Local`).
pub fn local_time_zone() -> TimeZone {
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.strip_prefix(':').unwrap_or(&tz);
        return if tz.is_empty() || tz == "Local" {
            TimeZone::UTC
        } else {
            time_zone(tz).unwrap_or(TimeZone::UTC)
        };
    }
    std::fs::read("/etc/localtime")
        .ok()
        .and_then(|data| TimeZone::tzif("Local", &data).ok())
        .unwrap_or(TimeZone::UTC)
}

// ---- missed schedules ---------------------------------------------------------------------------------------

/// How many start times were missed (upstream's `missedSchedulesType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// Upstream's `mostRecentScheduleTime`: the time the schedule counts from (last schedule, else creation,
/// or now - startingDeadlineSeconds when `with_deadline` and later), the most recent schedule time not after
/// `now` since then (if any), and how many were missed (approximated from the interval, as upstream).
pub fn most_recent_schedule_time(
    earliest: Timestamp,
    starting_deadline: Option<i64>,
    now: Timestamp,
    schedule: &Schedule,
    tz: &TimeZone,
) -> Result<(Timestamp, Option<Timestamp>, Missed), String> {
    let mut earliest = earliest;
    if let Some(deadline) = starting_deadline
        && let Ok(limit) = now.checked_sub(deadline.seconds())
        && limit > earliest
    {
        earliest = limit;
    }
    let Some(t1) = schedule.next(earliest, tz) else {
        return Ok((earliest, None, Missed::None));
    };
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let Some(t2) = schedule.next(t1, tz) else {
        return Ok((earliest, Some(t1), Missed::None));
    };
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    let between = (t2.as_millisecond() - t1.as_millisecond() + 500) / 1000;
    if between < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let elapsed = (now.as_millisecond() - t1.as_millisecond()) / 1000;
    let missed_count = elapsed / between + 1;
    let potential = t1
        .checked_add(((missed_count - 2) * between).seconds())
        .map_err(|e| e.to_string())?;
    let mut most_recent = None;
    let mut t = schedule.next(potential, tz);
    while let Some(at) = t.filter(|at| *at <= now) {
        most_recent = Some(at);
        t = schedule.next(at, tz);
    }
    let missed = match missed_count {
        n if n > TOO_MANY_MISSED => Missed::Many,
        n if n > 1 => Missed::Few,
        _ => Missed::None,
    };
    Ok((earliest, most_recent, missed))
}

// ---- the controller -----------------------------------------------------------------------------------------

/// Runs the controller until its watches end (they do not: they retry on their own).
pub async fn run(client: Client) {
    let mut cron_events = watch_all::<CronJob>(&client);
    let mut job_events = watch_all::<Job>(&client);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut controller = Controller::new(client, done_tx);
    loop {
        let can_sync = controller.can_sync();
        let wakeup = controller
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            Some(done) = done_rx.recv() => controller.done(done),
            Some(event) = cron_events.next() => match event {
                Ok(event) => controller.cron_event(event),
                Err(e) => tracing::warn!("cronjob controller: watching cronjobs: {e}"),
            },
            Some(event) = job_events.next() => match event {
                Ok(event) => controller.job_event(event),
                Err(e) => tracing::warn!("cronjob controller: watching jobs: {e}"),
            },
            () = tokio::time::sleep_until(wakeup) => controller.queue.tick(Instant::now()),
            () = std::future::ready(()), if can_sync => controller.sync_next(),
        }
    }
}

#[derive(Debug)]
struct Done {
    key: String,
    /// Look again after this long (the next schedule time).
    requeue: Option<Duration>,
    /// The CronJob as its status write left it.
    written: Option<CronJob>,
    retry: bool,
}

struct Controller {
    client: Client,
    events: Recorder,
    cron_jobs: HashMap<String, Arc<CronJob>>,
    /// Jobs by key.
    jobs: HashMap<String, Arc<Job>>,
    queue: WorkQueue<String>,
    backoff: Backoff<String>,
    cron_listed: Option<HashSet<String>>,
    jobs_listed: Option<HashSet<String>>,
    cron_synced: bool,
    jobs_synced: bool,
    done_tx: mpsc::UnboundedSender<Done>,
}

/// The key of the CronJob controlling `job`.
fn owner_key(job: &Job) -> Option<String> {
    let owner = pods::controller_of(&job.metadata)?;
    (owner.kind == "CronJob" && owner.api_version.starts_with("batch/"))
        .then(|| key(namespace_of(&job.metadata), &owner.name))
}

impl Controller {
    fn new(client: Client, done_tx: mpsc::UnboundedSender<Done>) -> Controller {
        Controller {
            events: Recorder::start(client.clone(), COMPONENT),
            client,
            cron_jobs: HashMap::new(),
            jobs: HashMap::new(),
            queue: WorkQueue::default(),
            backoff: Backoff::new(Duration::from_millis(100), MAX_BACKOFF),
            cron_listed: None,
            jobs_listed: None,
            cron_synced: false,
            jobs_synced: false,
            done_tx,
        }
    }

    fn can_sync(&self) -> bool {
        self.cron_synced
            && self.jobs_synced
            && !self.queue.is_empty()
            && self.queue.active() < SYNCS_IN_FLIGHT
    }

    fn cron_event(&mut self, event: watcher::Event<CronJob>) {
        match event {
            watcher::Event::Init => self.cron_listed = Some(HashSet::new()),
            watcher::Event::InitApply(cj) | watcher::Event::Apply(cj) => {
                let Some(name) = cj.metadata.name.as_deref() else {
                    return;
                };
                let k = key(namespace_of(&cj.metadata), name);
                if let Some(listed) = &mut self.cron_listed {
                    listed.insert(k.clone());
                }
                let newer = self.cron_jobs.get(&k).is_none_or(|old| {
                    old.metadata.uid != cj.metadata.uid
                        || revision(&cj.metadata).unwrap_or(0)
                            >= revision(&old.metadata).unwrap_or(0)
                });
                if newer {
                    self.cron_jobs.insert(k.clone(), Arc::new(cj));
                }
                self.queue.add(k);
            }
            watcher::Event::Delete(cj) => {
                let k = key(
                    namespace_of(&cj.metadata),
                    cj.metadata.name.as_deref().unwrap_or_default(),
                );
                self.cron_jobs.remove(&k);
                self.backoff.reset(&k);
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.cron_listed.take() {
                    self.cron_jobs.retain(|k, _| listed.contains(k));
                }
                self.cron_synced = true;
            }
        }
    }

    fn job_event(&mut self, event: watcher::Event<Job>) {
        match event {
            watcher::Event::Init => self.jobs_listed = Some(HashSet::new()),
            watcher::Event::InitApply(job) | watcher::Event::Apply(job) => {
                let Some(name) = job.metadata.name.as_deref() else {
                    return;
                };
                let k = key(namespace_of(&job.metadata), name);
                if let Some(listed) = &mut self.jobs_listed {
                    listed.insert(k.clone());
                }
                if let Some(owner) = owner_key(&job) {
                    self.queue.add(owner);
                }
                if let Some(old) = self.jobs.insert(k, Arc::new(job))
                    && let Some(owner) = owner_key(&old)
                {
                    self.queue.add(owner);
                }
            }
            watcher::Event::Delete(job) => {
                let k = key(
                    namespace_of(&job.metadata),
                    job.metadata.name.as_deref().unwrap_or_default(),
                );
                self.jobs.remove(&k);
                if let Some(owner) = owner_key(&job) {
                    self.queue.add(owner);
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.jobs_listed.take() {
                    let gone: Vec<Arc<Job>> = self
                        .jobs
                        .iter()
                        .filter(|(k, _)| !listed.contains(*k))
                        .map(|(_, j)| j.clone())
                        .collect();
                    for job in gone {
                        let k = key(
                            namespace_of(&job.metadata),
                            job.metadata.name.as_deref().unwrap_or_default(),
                        );
                        self.jobs.remove(&k);
                        if let Some(owner) = owner_key(&job) {
                            self.queue.add(owner);
                        }
                    }
                }
                self.jobs_synced = true;
            }
        }
    }

    fn sync_next(&mut self) {
        let Some(k) = self.queue.pop() else { return };
        let Some(cron_job) = self.cron_jobs.get(&k).cloned() else {
            self.queue.done(&k);
            return;
        };
        let uid = cron_job.metadata.uid.clone().unwrap_or_default();
        let ns = namespace_of(&cron_job.metadata);
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .values()
            .filter(|j| namespace_of(&j.metadata) == ns)
            .filter(|j| pods::controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
            .cloned()
            .collect();
        let (client, events, done) = (
            self.client.clone(),
            self.events.clone(),
            self.done_tx.clone(),
        );
        tokio::spawn(async move {
            let _ = done.send(sync(client, events, k, cron_job, jobs).await);
        });
    }

    fn done(&mut self, done: Done) {
        let k = done.key;
        if let Some(written) = done.written
            && let Some(current) = self.cron_jobs.get(&k)
            && current.metadata.uid == written.metadata.uid
            && revision(&written.metadata).unwrap_or(0) > revision(&current.metadata).unwrap_or(0)
        {
            self.cron_jobs.insert(k.clone(), Arc::new(written));
        }
        self.queue.done(&k);
        let now = Instant::now();
        if done.retry {
            let delay = self.backoff.failed(&k);
            self.queue.add_after(k.clone(), delay, now);
        } else {
            self.backoff.reset(&k);
        }
        if let Some(requeue) = done.requeue {
            self.queue.add_after(k, requeue, now);
        }
    }
}

/// The finished condition of a Job (`Complete` or `Failed`, status True), if it has one.
pub fn finished_condition(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// The name of the Job for the time `scheduled` (minutes since the epoch).
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

/// RFC 3339 in `tz`, to the second, `Z` for UTC (Go's `time.RFC3339`).
fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let zoned = t.to_zoned(tz.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job for the time `scheduled` (upstream's `getJobFromTemplate2`).
pub fn job_from_template(cron_job: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let spec = cron_job.spec.clone().unwrap_or_default();
    let template = spec.job_template;
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(scheduled, tz));
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cron_job.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cron_job)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

/// What a sync changes of the status.
struct Status {
    active: Vec<ObjectReference>,
    last_schedule: Option<Timestamp>,
    last_successful: Option<Timestamp>,
    changed: bool,
}

/// Upstream's `syncCronJob` and `cleanupFinishedJobs`, then the status write.
async fn sync(
    client: Client,
    events: Recorder,
    k: String,
    cron_job: Arc<CronJob>,
    jobs: Vec<Arc<Job>>,
) -> Done {
    let ns = namespace_of(&cron_job.metadata).to_owned();
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let involved = involved(&*cron_job);
    let record = |warning: bool, reason: &'static str, message: String| {
        events.record(Event {
            object: involved.clone(),
            warning,
            reason,
            message,
        });
    };
    let job_api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let cron_api: Api<CronJob> = Api::namespaced(client.clone(), &ns);
    let current = cron_job.status.clone().unwrap_or_default();
    let mut status = Status {
        active: current.active.clone().unwrap_or_default(),
        last_schedule: current.last_schedule_time.as_ref().map(|t| t.0),
        last_successful: current.last_successful_time.as_ref().map(|t| t.0),
        changed: false,
    };
    let mut done = Done {
        key: k,
        requeue: None,
        written: None,
        retry: false,
    };
    let outcome = reconcile(&cron_job, &jobs, &job_api, &mut status, &record).await;
    match outcome {
        Ok(requeue) => done.requeue = requeue,
        Err(()) => done.retry = true,
    }
    // The history limits.
    let spec = cron_job.spec.clone().unwrap_or_default();
    if spec.successful_jobs_history_limit.is_some() || spec.failed_jobs_history_limit.is_some() {
        for (kind, limit) in [
            ("Complete", spec.successful_jobs_history_limit),
            ("Failed", spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let mut finished: Vec<&Arc<Job>> = jobs
                .iter()
                .filter(|j| finished_condition(j) == Some(kind))
                .collect();
            let keep = usize::try_from(limit).unwrap_or(0);
            if finished.len() <= keep {
                continue;
            }
            finished.sort_by(|a, b| by_start_time(a, b));
            let surplus = finished.len() - keep;
            for job in finished.into_iter().take(surplus) {
                if delete_job(&job_api, job, &mut status, &record)
                    .await
                    .is_err()
                {
                    done.retry = true;
                }
            }
        }
    }
    if status.changed {
        let active = if status.active.is_empty() {
            Value::Null
        } else {
            json!(status.active)
        };
        let patch = json!({
            "metadata": {"resourceVersion": cron_job.metadata.resource_version},
            "status": {
                "active": active,
                "lastScheduleTime": status.last_schedule.map(|t| second(t).to_string()),
                "lastSuccessfulTime": status.last_successful.map(|t| second(t).to_string()),
            }
        });
        match cron_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(written) => done.written = Some(written),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::debug!(cronjob = %done.key, "cannot write the status: {e}");
                done.retry = true;
            }
        }
    }
    done
}

/// `t` to the second (metav1.Time's precision).
fn second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Oldest start first, Jobs not started last, names breaking ties (upstream's `byJobStartTime`).
fn by_start_time(a: &Job, b: &Job) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}

/// Deletes a Job (background propagation) and takes it off the active list.
async fn delete_job(
    api: &Api<Job>,
    job: &Job,
    status: &mut Status,
    record: &impl Fn(bool, &'static str, String),
) -> Result<(), ()> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            record(
                true,
                "FailedDelete",
                format!("Deleted job: {}", api_message(&e)),
            );
            return Err(());
        }
    }
    let before = status.active.len();
    status.active.retain(|r| r.uid != job.metadata.uid);
    status.changed |= status.active.len() != before;
    record(false, "SuccessfulDelete", format!("Deleted job {name}"));
    Ok(())
}

/// Upstream's `syncCronJob`: the active list from the Jobs, then a Job for the most recent unmet schedule
/// time if one is due; when to look again.
async fn reconcile(
    cron_job: &CronJob,
    jobs: &[Arc<Job>],
    job_api: &Api<Job>,
    status: &mut Status,
    record: &impl Fn(bool, &'static str, String),
) -> Result<Option<Duration>, ()> {
    let now = Timestamp::now();
    let mut children = HashSet::new();
    for job in jobs {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        children.insert(uid.clone());
        let name = job.metadata.name.clone().unwrap_or_default();
        let found = status.active.iter().any(|r| r.uid.as_deref() == Some(&uid));
        let finished = finished_condition(job);
        if !found && finished.is_none() {
            record(
                true,
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {name}"),
            );
        } else if found && let Some(condition) = finished {
            status.active.retain(|r| r.uid.as_deref() != Some(&uid));
            status.changed = true;
            record(
                false,
                "SawCompletedJob",
                format!("Saw completed job: {name}, condition: {condition}"),
            );
        }
        if finished == Some("Complete")
            && let Some(completed) = job
                .status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0)
            && status.last_successful.is_none_or(|l| completed > l)
        {
            status.last_successful = Some(completed);
            status.changed = true;
        }
    }
    // Active Jobs that are gone (looked up, in case the watch is behind).
    let missing: Vec<ObjectReference> = status
        .active
        .iter()
        .filter(|r| !r.uid.as_ref().is_some_and(|u| children.contains(u)))
        .cloned()
        .collect();
    for reference in missing {
        let name = reference.name.clone().unwrap_or_default();
        match job_api.get(&name).await {
            Err(e) if is_not_found(&e) => {
                record(
                    false,
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                );
                status.active.retain(|r| r.uid != reference.uid);
                status.changed = true;
            }
            Err(_) => return Err(()),
            Ok(job) if job.metadata.uid != reference.uid => {
                record(
                    false,
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                );
                status.active.retain(|r| r.uid != reference.uid);
                status.changed = true;
            }
            Ok(_) => {}
        }
    }
    if cron_job.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let spec = cron_job.spec.clone().unwrap_or_default();
    let (zone_in_schedule, schedule) = match parse(&spec.schedule) {
        Ok(parsed) => parsed,
        Err(e) => {
            record(
                true,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            );
            return Ok(None);
        }
    };
    if zone_in_schedule.is_some() {
        record(
            true,
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        );
    }
    let zone_name = spec.time_zone.clone().or(zone_in_schedule);
    let tz = match &zone_name {
        Some(name) => match time_zone(name) {
            Ok(tz) => tz,
            Err(e) => {
                record(
                    true,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {name:?}: {e}"),
                );
                return Ok(None);
            }
        },
        None => local_time_zone(),
    };
    if spec.suspend == Some(true) {
        return Ok(None);
    }
    let created = cron_job
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let earliest = status.last_schedule.unwrap_or(created);
    let next_in = |status: &Status| {
        let base = status.last_schedule.unwrap_or(created);
        let from = match most_recent_schedule_time(base, None, now, &schedule, &tz) {
            Ok((_, Some(recent), _)) => recent,
            Ok((earliest, None, _)) => earliest,
            Err(_) => now,
        };
        schedule.next(from, &tz).map(|next| {
            Duration::from_millis(
                u64::try_from(next.as_millisecond() - now.as_millisecond()).unwrap_or(0),
            ) + NEXT_SCHEDULE_DELTA
        })
    };
    let scheduled = match most_recent_schedule_time(
        earliest,
        spec.starting_deadline_seconds,
        now,
        &schedule,
        &tz,
    ) {
        Err(e) => {
            record(
                true,
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", spec.schedule),
            );
            return Ok(None);
        }
        Ok((_, None, _)) => return Ok(next_in(status)),
        Ok((_, Some(scheduled), missed)) => {
            if missed == Missed::Many {
                record(
                    true,
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                );
            }
            scheduled
        }
    };
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled
            .checked_add(deadline.seconds())
            .is_ok_and(|latest| latest < now)
    {
        record(
            true,
            "MissSchedule",
            format!(
                "Missed scheduled time to start a job: {}",
                scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
            ),
        );
        return Ok(next_in(status));
    }
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let wanted = job_name(&name, scheduled);
    if status
        .active
        .iter()
        .any(|r| r.name.as_deref() == Some(&wanted))
        || status
            .last_schedule
            .is_some_and(|l| second(l) == second(scheduled))
    {
        return Ok(next_in(status));
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !status.active.is_empty() => {
            record(
                false,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid"
                    .into(),
            );
            return Ok(next_in(status));
        }
        Some("Replace") => {
            for reference in status.active.clone() {
                let name = reference.name.clone().unwrap_or_default();
                let job = match job_api.get(&name).await {
                    Ok(job) => job,
                    Err(e) if is_not_found(&e) => {
                        status.active.retain(|r| r.uid != reference.uid);
                        status.changed = true;
                        continue;
                    }
                    Err(e) => {
                        record(true, "FailedGet", format!("Get job: {}", api_message(&e)));
                        return Err(());
                    }
                };
                delete_job(job_api, &job, status, record).await?;
            }
        }
        _ => {}
    }
    let request = job_from_template(cron_job, scheduled, &tz);
    let job = match job_api.create(&PostParams::default(), &request).await {
        Ok(job) => {
            record(
                false,
                "SuccessfulCreate",
                format!(
                    "Created job {}",
                    job.metadata.name.clone().unwrap_or_default()
                ),
            );
            job
        }
        Err(e) if is_already_exists(&e) => {
            let existing = job_api.get(&wanted).await.map_err(|_| ())?;
            let ours = pods::controller_of(&existing.metadata)
                .is_some_and(|o| Some(&o.uid) == cron_job.metadata.uid.as_ref());
            let listed = status.active.iter().any(|r| r.uid == existing.metadata.uid);
            if !ours || listed {
                return Ok(next_in(status));
            }
            existing
        }
        Err(e) => {
            record(
                true,
                "FailedCreate",
                format!("Error creating job: {}", api_message(&e)),
            );
            return Err(());
        }
    };
    status.active.push(job_ref(&job));
    status.last_schedule = Some(scheduled);
    status.changed = true;
    Ok(next_in(status))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn cron(spec: &str) -> Schedule {
        parse(spec).unwrap().1
    }

    /// The next `n` times after `from`, in `tz`.
    fn times(spec: &str, from: &str, tz: &TimeZone, n: usize) -> Vec<String> {
        let schedule = cron(spec);
        let mut at = ts(from);
        (0..n)
            .map(|_| {
                at = schedule.next(at, tz).unwrap();
                at.to_string()
            })
            .collect()
    }

    #[test]
    fn cronjob_schedules_parse_as_robfig_cron_does() {
        assert!(parse("* * * * *").is_ok());
        assert!(parse("15,45 9-17 * JAN,jul mon-FRI").is_ok());
        assert_eq!(cron("@daily"), cron("0 0 * * *"));
        assert_eq!(cron("@midnight"), cron("0 0 * * *"));
        assert_eq!(cron("@annually"), cron("0 0 1 1 *"));
        assert_eq!(
            cron("@every 1h30m"),
            Schedule::Every(Duration::from_secs(5400))
        );
        assert_eq!(
            parse("CRON_TZ=Europe/Berlin 0 * * * *")
                .unwrap()
                .0
                .as_deref(),
            Some("Europe/Berlin")
        );
        for (bad, why) in [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            (
                "TZ=UTC",
                "caught panic while parsing cron schedule: runtime error: slice bounds out of range [3:-1]",
            ),
        ] {
            assert_eq!(parse(bad).unwrap_err(), why, "{bad:?}");
        }
        let Schedule::Cron(f) = cron("*/20 1-3,5 * * *") else {
            panic!()
        };
        assert_eq!(f.minutes, 1 | 1 << 20 | 1 << 40);
        assert_eq!(f.hours, 0b10_1110);
        assert!(f.dom_star && f.dow_star);
        let Schedule::Cron(f) = cron("0 0 */2 * 1") else {
            panic!()
        };
        assert!(!f.dom_star && !f.dow_star, "a step above 1 is not a star");
    }

    #[test]
    fn cronjob_next_times_in_utc() {
        let utc = TimeZone::UTC;
        assert_eq!(
            times("* * * * *", "2025-03-01T10:00:30Z", &utc, 2),
            ["2025-03-01T10:01:00Z", "2025-03-01T10:02:00Z"]
        );
        assert_eq!(
            times("*/15 9-10 * * *", "2025-03-01T10:50:00Z", &utc, 2),
            ["2025-03-02T09:00:00Z", "2025-03-02T09:15:00Z"]
        );
        // 2025-03-01 is a Saturday: weekdays only.
        assert_eq!(
            times("30 6 * * mon-fri", "2025-03-01T00:00:00Z", &utc, 2),
            ["2025-03-03T06:30:00Z", "2025-03-04T06:30:00Z"]
        );
        // Day of month OR day of week when neither is a star.
        assert_eq!(
            times("0 0 13 * 5", "2025-06-01T00:00:00Z", &utc, 3),
            [
                "2025-06-06T00:00:00Z",
                "2025-06-13T00:00:00Z",
                "2025-06-20T00:00:00Z"
            ]
        );
        assert_eq!(
            times("@yearly", "2024-02-29T12:00:00Z", &utc, 1),
            ["2025-01-01T00:00:00Z"]
        );
        assert_eq!(
            times("0 12 29 feb *", "2025-01-01T00:00:00Z", &utc, 1),
            ["2028-02-29T12:00:00Z"]
        );
        assert_eq!(
            cron("0 0 31 2 *").next(ts("2025-01-01T00:00:00Z"), &utc),
            None
        );
        assert_eq!(
            times("@every 90s", "2025-01-01T00:00:00.7Z", &utc, 2),
            ["2025-01-01T00:01:30Z", "2025-01-01T00:03:00Z"]
        );
    }

    #[test]
    fn cronjob_next_times_across_dst_in_a_time_zone() {
        let ny = time_zone("America/New_York").unwrap();
        // Spring forward (2025-03-09 02:00 EST → 03:00 EDT): 02:30 does not exist that day.
        assert_eq!(
            times("30 2 * * *", "2025-03-08T12:00:00Z", &ny, 2),
            ["2025-03-10T06:30:00Z", "2025-03-11T06:30:00Z"]
        );
        // Hourly stays hourly in real time.
        assert_eq!(
            times("0 * * * *", "2025-03-09T06:30:00Z", &ny, 2),
            ["2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z"]
        );
        // Fall back (2025-11-02 02:00 EDT → 01:00 EST): 01:00 happens twice, an hour apart.
        assert_eq!(
            times("0 * * * *", "2025-11-02T04:30:00Z", &ny, 3),
            [
                "2025-11-02T05:00:00Z",
                "2025-11-02T06:00:00Z",
                "2025-11-02T07:00:00Z"
            ]
        );
        // 9:00 local is 13:00 UTC in summer, 14:00 in winter.
        assert_eq!(
            times("0 9 * * *", "2025-11-01T00:00:00Z", &ny, 2),
            ["2025-11-01T13:00:00Z", "2025-11-02T14:00:00Z"]
        );
        assert!(time_zone("Mars/Olympus").is_err());
        assert!(time_zone("../etc/passwd").is_err());
        assert_eq!(time_zone("").unwrap(), TimeZone::UTC);
    }

    #[test]
    fn cronjob_missed_schedules_are_counted() {
        let utc = TimeZone::UTC;
        let every_minute = cron("* * * * *");
        let created = ts("2025-01-01T00:00:30Z");
        // Before the first time: nothing.
        let (_, recent, missed) = most_recent_schedule_time(
            created,
            None,
            ts("2025-01-01T00:00:50Z"),
            &every_minute,
            &utc,
        )
        .unwrap();
        assert_eq!((recent, missed), (None, Missed::None));
        // One due.
        let (_, recent, missed) = most_recent_schedule_time(
            created,
            None,
            ts("2025-01-01T00:01:10Z"),
            &every_minute,
            &utc,
        )
        .unwrap();
        assert_eq!(
            (recent, missed),
            (Some(ts("2025-01-01T00:01:00Z")), Missed::None)
        );
        // Ten missed: the most recent is started.
        let (_, recent, missed) = most_recent_schedule_time(
            created,
            None,
            ts("2025-01-01T00:10:10Z"),
            &every_minute,
            &utc,
        )
        .unwrap();
        assert_eq!(
            (recent, missed),
            (Some(ts("2025-01-01T00:10:00Z")), Missed::Few)
        );
        // Over a hundred: too many, still the most recent.
        let (_, recent, missed) = most_recent_schedule_time(
            created,
            None,
            ts("2025-01-01T03:00:10Z"),
            &every_minute,
            &utc,
        )
        .unwrap();
        assert_eq!(
            (recent, missed),
            (Some(ts("2025-01-01T03:00:00Z")), Missed::Many)
        );
        // A starting deadline counts from now - deadline instead.
        let (earliest, recent, missed) = most_recent_schedule_time(
            created,
            Some(200),
            ts("2025-01-01T03:00:10Z"),
            &every_minute,
            &utc,
        )
        .unwrap();
        assert_eq!(earliest, ts("2025-01-01T02:56:50Z"));
        assert_eq!(
            (recent, missed),
            (Some(ts("2025-01-01T03:00:00Z")), Missed::Few)
        );
        // Irregular schedules still find the right most recent time.
        let irregular = cron("30 6-16/4 * * 1-5");
        let (_, recent, _) = most_recent_schedule_time(
            ts("2025-03-03T00:00:00Z"),
            None,
            ts("2025-03-06T15:00:00Z"),
            &irregular,
            &utc,
        )
        .unwrap();
        assert_eq!(recent, Some(ts("2025-03-06T14:30:00Z")));
    }

    #[test]
    fn cronjob_jobs_are_named_by_their_scheduled_minute() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "tick", "namespace": "ns", "uid": "cj-uid"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {
                "metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
                "spec": {"template": {"spec": {"containers": []}}}}}
        }))
        .unwrap();
        let at = ts("2025-01-01T00:01:00Z");
        let berlin = time_zone("Europe/Berlin").unwrap();
        let job = job_from_template(&cj, at, &berlin);
        assert_eq!(job.metadata.name.as_deref(), Some("tick-28928161"));
        let annotations = job.metadata.annotations.unwrap();
        assert_eq!(
            annotations[SCHEDULED_TIMESTAMP],
            "2025-01-01T01:01:00+01:00"
        );
        assert_eq!(annotations["x"], "y");
        assert_eq!(job.metadata.labels.unwrap()["a"], "b");
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("CronJob", "cj-uid")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(rfc3339(at, &TimeZone::UTC), "2025-01-01T00:01:00Z");
    }
}
