//! The store conformance suite: every case runs against SQLite (a temporary file) and
//! PostgreSQL (a real server started for this test process, a fresh database per test), as
//! `sqlite::<case>` and `postgres::<case>`. Both backends must behave identically.
//!
//! Cases take a [`support::TestDb`]: the `Arc<dyn Store>` under test, plus the database's
//! configuration for the few cases that look underneath the store (encryption at rest, a
//! second store with another key).

mod accounts;
mod batches;
mod conversations;
mod deliveries;
mod endpoints;
mod inbound;
mod operations;
mod refresh;
mod support;

/// Expands `module::case` paths into one named test per case per backend.
macro_rules! store_suite {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::$module::$case(crate::support::sqlite_db().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // `None` only after the testkit reported PostgreSQL missing (fatal in CI).
                    if let Some(db) = crate::support::postgres_db().await {
                        crate::$module::$case(db).await;
                    }
                }
            )*
        }
    };
}

store_suite! {
    operations::ping_backend_and_migrations,
    operations::workspaces_and_api_keys,
    operations::idempotency_keys_move_through_their_states,
    operations::leases_are_exclusive_until_released_or_expired,
    operations::raw_events_are_batched_claimed_and_finished,
    operations::polls_store_payloads_and_cursor_together,
    operations::housekeeping_prunes_processed_payloads_and_stale_idempotency_keys,
    accounts::accounts_connect_list_and_stay_in_their_workspace,
    accounts::accounts_paginate_oldest_first,
    accounts::reconnecting_a_deleted_account_revives_its_history,
    accounts::an_account_connected_elsewhere_conflicts,
    accounts::reauth_is_recorded_once_under_concurrent_failures,
    accounts::secrets_are_encrypted_at_rest,
    accounts::a_different_key_cannot_read_secrets,
    inbound::a_first_message_starts_a_conversation,
    inbound::a_redelivered_message_is_stored_and_announced_once,
    inbound::an_echo_and_the_send_record_one_message_in_either_order,
    inbound::edits_apply_only_when_content_changes,
    inbound::deletions_and_reactions,
    inbound::delivery_statuses_only_move_forward,
    inbound::read_watermarks_mark_outgoing_messages_read,
    inbound::replies_link_and_participants_refresh,
    inbound::starting_a_conversation_records_it_once,
    batches::a_batch_ends_as_applying_its_raw_events_one_at_a_time,
    batches::a_failing_item_is_rolled_back_alone_and_retried,
    batches::redeliveries_in_one_batch_and_across_batches_store_one_message,
    conversations::conversations_order_filter_and_paginate,
    conversations::conversations_and_messages_of_other_workspaces_are_not_found,
    conversations::messages_paginate_in_both_orders,
    endpoints::endpoints_crud_and_tenancy,
    endpoints::events_fan_out_to_subscribed_enabled_endpoints_only,
    endpoints::a_failed_operation_queues_nothing,
    endpoints::rotated_secrets_sign_alongside_until_they_expire,
    deliveries::claims_lease_expire_and_are_reclaimed,
    deliveries::attempts_are_recorded_and_listed,
    deliveries::concurrent_claimers_never_share_a_delivery,
    deliveries::retry_and_recover,
    deliveries::test_events_go_to_one_endpoint,
    deliveries::deleted_endpoints_get_nothing_more,
    deliveries::deliveries_paginate_newest_first,
    deliveries::commits_with_deliveries_wake_the_worker,
    refresh::refreshes_come_due_in_order_and_can_be_postponed,
    refresh::oauth_states_are_single_use_expire_and_keep_verifiers_secret,
    refresh::conversations_are_found_by_platform_id_within_their_account,
}
