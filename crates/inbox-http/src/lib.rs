//! Shared outbound HTTP for platform adapters: client construction, bounded retries honouring Retry-After, status mapping.
