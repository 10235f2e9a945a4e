//! How many queries run at once: at most so many in all and so many per tenant; the rest wait
//! in a bounded queue for a bounded time, then are refused with a hint of when to retry.
//!
//! Every face (the native API, Jaeger, Tempo, the explorer, Flight SQL) reaches the engine
//! through [`QueryEngine`](crate::QueryEngine), which admits each query here, so they share the
//! limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use spanlake_storage::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Gauge of queries running on the query threads.
pub const RUNNING: &str = "spanlake_queries_running";
/// Gauge of queries waiting for a turn.
pub const QUEUED: &str = "spanlake_queries_queued";
/// Counter of queries by outcome: `ok`, `error`, `refused` (queue full or waited too long),
/// `too_large` (refused at planning), `timeout`, `memory`, `cancelled` (the client went away or
/// the server stopped).
pub const QUERIES: &str = "spanlake_queries_total";

/// Tenants whose turns are kept while idle.
const KEPT_TENANTS: usize = 1024;

/// The admission limits.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Queries running at once, all tenants together.
    pub max_running: usize,
    /// Queries of one tenant running at once.
    pub max_running_per_tenant: usize,
    /// Queries waiting for a turn, all tenants together; one more is refused at once.
    pub max_queued: usize,
    /// How long a query waits for a turn before it is refused.
    pub queue_timeout: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            max_running: 8,
            max_running_per_tenant: 8,
            max_queued: 64,
            queue_timeout: Duration::from_secs(10),
        }
    }
}

/// Hands out turns to run queries.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    total: Arc<Semaphore>,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
    queued: AtomicUsize,
}

/// A turn to run one query; the next one waiting gets it when this is dropped.
#[derive(Debug)]
pub struct Permit {
    _tenant: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl Permit {
    fn new(tenant: OwnedSemaphorePermit, total: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(RUNNING).increment(1.0);
        Self {
            _tenant: tenant,
            _total: total,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        metrics::gauge!(RUNNING).decrement(1.0);
    }
}

/// Counts a query in the queue until it leaves it, however it leaves.
struct InQueue<'a>(&'a AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!(QUEUED).decrement(1.0);
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        let limits = AdmissionLimits {
            max_running: limits.max_running.max(1),
            max_running_per_tenant: limits.max_running_per_tenant.max(1),
            ..limits
        };
        Self {
            limits,
            total: Arc::new(Semaphore::new(limits.max_running)),
            tenants: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
        }
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Waits for a turn of `tenant`'s, or says why there is none.
    pub async fn admit(&self, tenant: &TenantId) -> Result<Permit> {
        if self.total.is_closed() {
            return Err(Error::ShuttingDown);
        }
        let own = self.tenant(tenant);
        if let Ok(mine) = Arc::clone(&own).try_acquire_owned()
            && let Ok(any) = Arc::clone(&self.total).try_acquire_owned()
        {
            return Ok(Permit::new(mine, any));
        }
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.limits.max_queued {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(self.refuse(format!(
                "the queue is full ({} queries wait at most)",
                self.limits.max_queued
            )));
        }
        metrics::gauge!(QUEUED).increment(1.0);
        let _in_queue = InQueue(&self.queued);
        let turn = async {
            // The tenant's own turn first, so a tenant at its limit holds none of the others'.
            let mine = own.acquire_owned().await;
            let any = Arc::clone(&self.total).acquire_owned().await;
            match (mine, any) {
                (Ok(mine), Ok(any)) => Some(Permit::new(mine, any)),
                _ => None,
            }
        };
        match tokio::time::timeout(self.limits.queue_timeout, turn).await {
            Ok(Some(permit)) => Ok(permit),
            Ok(None) => Err(Error::ShuttingDown),
            Err(_) => Err(self.refuse(format!(
                "no turn within {:?} (at most {} queries run at once, {} per tenant)",
                self.limits.queue_timeout,
                self.limits.max_running,
                self.limits.max_running_per_tenant
            ))),
        }
    }

    /// `tenant`'s turns. Tenants come from a request header: past [`KEPT_TENANTS`] the idle
    /// ones are forgotten.
    fn tenant(&self, tenant: &TenantId) -> Arc<Semaphore> {
        let mut tenants = self.tenants.lock();
        if !tenants.contains_key(tenant) && tenants.len() >= KEPT_TENANTS {
            let all = self.limits.max_running_per_tenant;
            tenants.retain(|_, turns| turns.available_permits() < all);
        }
        Arc::clone(
            tenants
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limits.max_running_per_tenant))),
        )
    }

    /// Refuses every query from now on, those waiting included (a stopping server).
    pub fn close(&self) {
        self.total.close();
        for turns in self.tenants.lock().values() {
            turns.close();
        }
    }

    fn refuse(&self, why: String) -> Error {
        metrics::counter!(QUERIES, "outcome" => "refused").increment(1);
        Error::Busy {
            message: format!("too many queries: {why}; retry later"),
            retry_after: self
                .limits
                .queue_timeout
                .clamp(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(running: usize, per_tenant: usize, queued: usize, wait_ms: u64) -> AdmissionLimits {
        AdmissionLimits {
            max_running: running,
            max_running_per_tenant: per_tenant,
            max_queued: queued,
            queue_timeout: Duration::from_millis(wait_ms),
        }
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).unwrap()
    }

    #[tokio::test]
    async fn a_tenant_at_its_limit_leaves_turns_to_the_others() {
        let admission = Admission::new(limits(3, 2, 10, 50));
        let a = tenant("a");
        let _one = admission.admit(&a).await.unwrap();
        let _two = admission.admit(&a).await.unwrap();
        let third = admission.admit(&a).await.unwrap_err();
        assert!(matches!(third, Error::Busy { .. }), "{third:?}");
        assert!(third.to_string().contains("2 per tenant"), "{third}");
        admission.admit(&tenant("b")).await.unwrap();
    }

    #[tokio::test]
    async fn a_waiting_query_runs_when_a_turn_comes_free() {
        let admission = Arc::new(Admission::new(limits(1, 1, 10, 5_000)));
        let first = admission.admit(&tenant("a")).await.unwrap();
        let waiting = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit(&tenant("a")).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert_eq!(admission.queued.load(Ordering::SeqCst), 1);
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(admission.queued.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn closing_answers_the_waiting_and_refuses_the_rest() {
        let admission = Arc::new(Admission::new(limits(1, 1, 10, 5_000)));
        let _running = admission.admit(&tenant("a")).await.unwrap();
        let waiting = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit(&tenant("a")).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        admission.close();
        let answered = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(answered, Err(Error::ShuttingDown)), "{answered:?}");
        let refused = admission.admit(&tenant("b")).await.map(drop);
        assert!(matches!(refused, Err(Error::ShuttingDown)), "{refused:?}");
    }

    #[tokio::test]
    async fn idle_tenants_are_forgotten_past_the_bound() {
        let admission = Admission::new(limits(2, 1, 10, 50));
        let busy = admission.admit(&tenant("busy")).await.unwrap();
        for n in 0..KEPT_TENANTS {
            drop(admission.admit(&tenant(&format!("t{n}"))).await.unwrap());
        }
        let kept = admission.tenants.lock().len();
        assert_eq!(kept, 2, "the busy tenant and the newest one are kept");
        // The busy tenant's turn is still counted.
        assert!(admission.admit(&tenant("busy")).await.is_err());
        drop(busy);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_a_retry_hint() {
        let admission = Arc::new(Admission::new(limits(1, 1, 1, 5_000)));
        let _running = admission.admit(&tenant("a")).await.unwrap();
        let queued = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit(&tenant("b")).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let refused = admission.admit(&tenant("c")).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        match refused {
            Error::Busy {
                message,
                retry_after,
            } => {
                assert!(
                    message.contains("the queue is full (1 queries wait"),
                    "{message}"
                );
                assert_eq!(retry_after, Duration::from_secs(5));
            }
            other => panic!("{other:?}"),
        }
        queued.abort();
        let _ = queued.await;
        // The aborted waiter left the queue.
        assert_eq!(admission.queued.load(Ordering::SeqCst), 0);
    }
}
