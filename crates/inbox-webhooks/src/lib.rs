//! Outbound webhooks: Standard Webhooks signing, SSRF-safe sending, the durable delivery worker.
