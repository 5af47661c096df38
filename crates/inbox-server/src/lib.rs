//! The inboxgw binary: configuration, wiring, adapter registry and subcommands.
