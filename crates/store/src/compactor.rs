//! Periodic compaction, as kube-apiserver does it: every interval, compact to the revision that was current one
//! interval earlier, so that history is kept for at least one interval (watchers that fall further behind get
//! 410 Gone and re-list) and disk use stays bounded under churn.

use std::sync::Arc;
use std::time::Duration;

use crate::{Store, StoreError};

/// Compacts `store` every `interval`, forever; run it as a task. Failures are logged and retried next time.
pub async fn compact_periodically(store: Arc<dyn Store>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous = None;
    loop {
        ticker.tick().await;
        if let Some(revision) = previous {
            match store.compact(revision).await {
                // Already compacted that far (another server did, or nothing was written).
                Ok(()) | Err(StoreError::Compacted { .. }) => {}
                Err(e) => tracing::warn!(error = %e, revision, "periodic compaction failed"),
            }
        }
        match store.current_revision().await {
            Ok(current) => previous = Some(current),
            Err(e) => tracing::warn!(error = %e, "cannot read the current revision for compaction"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn history_older_than_one_interval_is_compacted() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let first = store.create("/k".into(), "1".into()).await.unwrap();
        let second = store
            .update("/k".into(), "2".into(), first.mod_revision)
            .await
            .unwrap();
        let task = tokio::spawn(compact_periodically(
            store.clone(),
            Duration::from_millis(50),
        ));
        // The first tick records the head; the second compacts to it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match store.get(b"/k", Some(first.mod_revision)).await {
                Err(StoreError::Compacted { compacted, .. }) => {
                    assert_eq!(compacted, second.mod_revision);
                    break;
                }
                Ok(_) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "nothing was compacted within 5 s"
                ),
                Err(e) => panic!("{e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The latest value is still there.
        assert_eq!(store.get(b"/k", None).await.unwrap(), Some(second));
        task.abort();
    }
}
