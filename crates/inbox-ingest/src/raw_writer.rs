//! Group commit for verified inbound payloads.
//!
//! Every inbound request waits until its raw payload is durable before it is acknowledged. One
//! transaction per request caps SQLite at a few thousand requests per second
//! (reference/performance.md); instead one writer task takes whatever has queued — up to
//! `max_batch` payloads — and stores them in a single transaction, then answers every waiting
//! request. Under light load a batch is one payload and nothing waits for company; under heavy
//! load batches grow by themselves.

use inbox_core::{Error, RawEventId, Result};
use inbox_store::{NewRawEvent, Store};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<RawEventId>>;

/// Handle for storing raw payloads through the group-commit writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RawWriter {
    queue: mpsc::Sender<(NewRawEvent, Reply)>,
}

impl RawWriter {
    /// Starts the writer task. `max_batch` bounds one transaction; the queue holds up to
    /// `4 × max_batch` waiting payloads before callers wait for room (backpressure).
    pub fn start(store: Arc<dyn Store>, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (queue, receiver) = mpsc::channel(max_batch * 4);
        tokio::spawn(run_writer(store, receiver, max_batch));
        RawWriter { queue }
    }

    /// Stores one payload durably and returns its id.
    ///
    /// # Errors
    /// `Unavailable` when the writer has stopped or the database failed; the caller answers
    /// the platform with a retryable status so the platform redelivers.
    pub async fn write(&self, event: NewRawEvent) -> Result<RawEventId> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((event, reply))
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> Error {
    Error::Unavailable {
        message: "the inbound writer has stopped (the gateway is shutting down)".into(),
        retry_after: None,
    }
}

async fn run_writer(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<(NewRawEvent, Reply)>,
    max_batch: usize,
) {
    let mut events = Vec::with_capacity(max_batch);
    let mut replies = Vec::with_capacity(max_batch);
    while let Some((event, reply)) = receiver.recv().await {
        events.push(event);
        replies.push(reply);
        while events.len() < max_batch {
            match receiver.try_recv() {
                Ok((event, reply)) => {
                    events.push(event);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("inbox_inbound_batch_size").record(events.len() as f64);
        match store.insert_raw_events(std::mem::take(&mut events)).await {
            Ok(ids) => {
                for (reply, id) in replies.drain(..).zip(ids) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, batch = replies.len(), "storing inbound payloads failed");
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(Error::Unavailable {
                        message: format!("storing the payload failed: {err}"),
                        retry_after: None,
                    }));
                }
            }
        }
    }
}
