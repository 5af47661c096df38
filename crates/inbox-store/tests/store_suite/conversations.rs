//! Cases for reading conversations and messages: order, filters, status changes, keyset
//! pagination in both directions, and tenancy.

use inbox_core::{ConversationStatus, Direction, Error, InboundKind, PageRequest, PlatformKind};
use inbox_store::{ConversationFilter, SortOrder};

use crate::support::*;

pub async fn conversations_order_filter_and_paginate(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let telegram = account(store, &ws, "100").await;
    let reddit = store
        .connect_account(new_account(&ws, PlatformKind::Reddit, "bob"))
        .await
        .unwrap()
        .account;
    // Threads with their newest message at 10, 50, 30, 40, 20 seconds.
    for (n, seconds) in [10, 50, 30, 40, 20].into_iter().enumerate() {
        let owner = if n % 2 == 0 { &telegram } else { &reddit };
        apply(
            store,
            owner,
            vec![incoming(
                &format!("chat-{n}"),
                &format!("m-{n}"),
                "hi",
                seconds,
            )],
        )
        .await;
    }
    let everything = ConversationFilter::default();
    let pages = collect_pages(2, |page| {
        let (store, ws, filter) = (store.clone(), ws.clone(), everything.clone());
        async move { store.list_conversations(&ws, &filter, &page).await.unwrap() }
    })
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let threads: Vec<String> = pages
        .into_iter()
        .flatten()
        .map(|c| c.platform_conversation_id)
        .collect();
    assert_eq!(
        threads,
        ["chat-1", "chat-3", "chat-2", "chat-4", "chat-0"],
        "newest activity first"
    );

    let only_reddit = ConversationFilter {
        platform: Some(PlatformKind::Reddit),
        ..Default::default()
    };
    let listed = store
        .list_conversations(&ws, &only_reddit, &PageRequest::first())
        .await
        .unwrap()
        .data;
    assert_eq!(
        listed
            .iter()
            .map(|c| c.platform_conversation_id.as_str())
            .collect::<Vec<_>>(),
        ["chat-1", "chat-3"]
    );
    let only_telegram_account = ConversationFilter {
        account_id: Some(telegram.id.clone()),
        ..Default::default()
    };
    let listed = store
        .list_conversations(&ws, &only_telegram_account, &PageRequest::first())
        .await
        .unwrap()
        .data;
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|c| c.account_id == telegram.id && c.platform == PlatformKind::Telegram)
    );

    let archived = store
        .set_conversation_status(&ws, &listed[0].id, ConversationStatus::Archived)
        .await
        .unwrap();
    assert_eq!(archived.status, ConversationStatus::Archived);
    let only_archived = ConversationFilter {
        status: Some(ConversationStatus::Archived),
        ..Default::default()
    };
    let listed_archived = store
        .list_conversations(&ws, &only_archived, &PageRequest::first())
        .await
        .unwrap()
        .data;
    assert_eq!(listed_archived, vec![archived.clone()]);
    let only_active = ConversationFilter {
        status: Some(ConversationStatus::Active),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_conversations(&ws, &only_active, &PageRequest::first())
            .await
            .unwrap()
            .data
            .len(),
        4
    );
    // A new message does not unarchive, but it does move the thread to the top.
    apply(
        store,
        &telegram,
        vec![incoming(
            &archived.platform_conversation_id,
            "late",
            "again",
            99,
        )],
    )
    .await;
    let top = store
        .list_conversations(&ws, &everything, &PageRequest::first())
        .await
        .unwrap()
        .data
        .remove(0);
    assert_eq!(top.id, archived.id);
    assert_eq!(top.status, ConversationStatus::Archived);
    assert_eq!(top.unread_count, 2);
    let unarchived = store
        .set_conversation_status(&ws, &top.id, ConversationStatus::Active)
        .await
        .unwrap();
    assert_eq!(unarchived.status, ConversationStatus::Active);
    assert_eq!(
        store
            .mark_conversation_read(&ws, &top.id)
            .await
            .unwrap()
            .unread_count,
        0
    );
    assert_eq!(
        store
            .get_conversation(&ws, &top.id)
            .await
            .unwrap()
            .unread_count,
        0
    );

    // A decodable cursor at a position no row has still pages from there.
    let from_35 = store
        .list_conversations(&ws, &everything, &far_cursor(10, at(35).unix_millis()))
        .await
        .unwrap();
    assert_eq!(
        from_35
            .data
            .iter()
            .map(|c| c.platform_conversation_id.as_str())
            .collect::<Vec<_>>(),
        ["chat-4", "chat-0"],
        "chat-2 moved to the top with its late message"
    );
}

pub async fn conversations_and_messages_of_other_workspaces_are_not_found(db: TestDb) {
    let store = &db.store;
    let acme = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let account = account(store, &acme, "100").await;
    apply(
        store,
        &account,
        vec![incoming("chat-1", "m1", "private", 1)],
    )
    .await;
    let conversation = store
        .list_conversations(&acme, &ConversationFilter::default(), &PageRequest::first())
        .await
        .unwrap()
        .data
        .remove(0);
    let message = store
        .list_messages(
            &acme,
            &conversation.id,
            SortOrder::Desc,
            &PageRequest::first(),
        )
        .await
        .unwrap()
        .data
        .remove(0);

    let not_found = |result: Result<_, Error>, resource: &str| match result {
        Err(Error::NotFound {
            resource: found, ..
        }) => assert_eq!(found, resource),
        Err(other) => panic!("expected NotFound, got {other:?}"),
        Ok(_) => panic!("another workspace's {resource} was visible"),
    };
    not_found(
        store
            .get_conversation(&other, &conversation.id)
            .await
            .map(|_| ()),
        "conversation",
    );
    not_found(
        store
            .set_conversation_status(&other, &conversation.id, ConversationStatus::Archived)
            .await
            .map(|_| ()),
        "conversation",
    );
    not_found(
        store
            .mark_conversation_read(&other, &conversation.id)
            .await
            .map(|_| ()),
        "conversation",
    );
    not_found(
        store
            .list_messages(
                &other,
                &conversation.id,
                SortOrder::Asc,
                &PageRequest::first(),
            )
            .await
            .map(|_| ()),
        "conversation",
    );
    not_found(
        store.get_message(&other, &message.id).await.map(|_| ()),
        "message",
    );
    not_found(
        store
            .get_message(&acme, &unknown_message())
            .await
            .map(|_| ()),
        "message",
    );
    assert!(
        store
            .list_conversations(
                &other,
                &ConversationFilter::default(),
                &PageRequest::first()
            )
            .await
            .unwrap()
            .data
            .is_empty()
    );
    // Filtering by another workspace's account finds nothing either.
    let filter = ConversationFilter {
        account_id: Some(account.id.clone()),
        ..Default::default()
    };
    assert!(
        store
            .list_conversations(&other, &filter, &PageRequest::first())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    // Nothing changed for the owner.
    let unchanged = store
        .get_conversation(&acme, &conversation.id)
        .await
        .unwrap();
    assert_eq!(unchanged.status, ConversationStatus::Active);
    assert_eq!(unchanged.unread_count, 1);
}

pub async fn messages_paginate_in_both_orders(db: TestDb) {
    let store = &db.store;
    let ws = workspace(store, "acme").await;
    let account = account(store, &ws, "100").await;
    // Seven messages; three share one timestamp, so the id breaks the tie.
    let seconds = [5, 1, 3, 3, 3, 7, 2];
    let events: Vec<InboundKind> = seconds
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let direction = if n % 3 == 0 {
                Direction::Outgoing
            } else {
                Direction::Incoming
            };
            InboundKind::Message(message(
                "chat-1",
                &format!("m{n}"),
                direction,
                &format!("text {n}"),
                *s,
            ))
        })
        .collect();
    apply(store, &account, events).await;
    let conversation = store
        .list_conversations(&ws, &ConversationFilter::default(), &PageRequest::first())
        .await
        .unwrap()
        .data
        .remove(0);

    let pages_in = |order: SortOrder| {
        let (store, ws, id) = (store.clone(), ws.clone(), conversation.id.clone());
        collect_pages(3, move |page| {
            let (store, ws, id) = (store.clone(), ws.clone(), id.clone());
            async move { store.list_messages(&ws, &id, order, &page).await.unwrap() }
        })
    };
    let ascending = pages_in(SortOrder::Asc).await;
    assert_eq!(
        ascending.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1]
    );
    let ascending: Vec<_> = ascending.into_iter().flatten().collect();
    let keys: Vec<_> = ascending
        .iter()
        .map(|m| (m.timestamp, m.id.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "timestamp, then id");
    assert_eq!(
        ascending.iter().map(|m| m.timestamp).collect::<Vec<_>>(),
        [1, 2, 3, 3, 3, 5, 7].map(at)
    );

    let descending: Vec<_> = pages_in(SortOrder::Desc)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut reversed = ascending.clone();
    reversed.reverse();
    assert_eq!(descending, reversed);

    // The default order is newest first.
    assert_eq!(SortOrder::default(), SortOrder::Desc);
    // A position between rows: everything strictly after it in the requested order.
    let middle = inbox_core::Cursor {
        sort_key: at(3).unix_millis(),
        id: ascending[3].id.to_string(),
    };
    let after = store
        .list_messages(
            &ws,
            &conversation.id,
            SortOrder::Asc,
            &PageRequest {
                limit: 10,
                after: Some(middle.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(after.data, ascending[4..].to_vec());
    let before = store
        .list_messages(
            &ws,
            &conversation.id,
            SortOrder::Desc,
            &PageRequest {
                limit: 10,
                after: Some(middle),
            },
        )
        .await
        .unwrap();
    let mut expected: Vec<_> = ascending[..3].to_vec();
    expected.reverse();
    assert_eq!(before.data, expected);
    // A cursor from a different list, decodable but meaningless here, just positions.
    let garbage = store
        .list_messages(&ws, &conversation.id, SortOrder::Asc, &far_cursor(10, 0))
        .await
        .unwrap();
    assert_eq!(garbage.data, ascending);
}
