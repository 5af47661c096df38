//! Inbound: platform webhook endpoints, pollers, raw-event persistence and normalisation into events.
