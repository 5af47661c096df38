//! Attachments: images go out by URL; inbound images arrive as image attachments whose URL
//! `fetch_attachment` turns back into the original bytes.

use inbox_core::{AttachmentKind, Error, OutboundAttachment, Platform};

use super::{
    FakeControl, InboundContent, TINY_PNG,
    harness::{Inbox, connect, messages, not_applicable, text},
};

/// An image sent by URL reaches the platform as an image with its caption.
pub async fn images_are_sent_by_url(platform: &dyn Platform, fake: &dyn FakeControl) {
    if !platform
        .capabilities()
        .outbound_attachments
        .contains(&AttachmentKind::Image)
    {
        return not_applicable(platform, "images_are_sent_by_url", "no outbound images");
    }
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let url = fake.host_media("conformance.png", TINY_PNG.to_vec(), "image/png");
    let mut message = text("a picture");
    message.attachments = vec![OutboundAttachment {
        kind: AttachmentKind::Image,
        url,
        name: None,
    }];
    let sent = platform
        .send(&account.context, &conversation.target, &message)
        .await
        .unwrap_or_else(|err| panic!("sending an image failed: {err:?}"));
    let record = fake
        .sent(&account.seeded)
        .pop()
        .expect("the image was recorded");
    assert_eq!(record.platform_message_id, sent.platform_message_id);
    assert_eq!(record.attachments, [AttachmentKind::Image]);
    assert_eq!(record.text, "a picture");
}

/// An inbound image is an image attachment that downloads to the bytes the participant sent.
pub async fn inbound_images_download_through_fetch_attachment(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    let account = connect(platform, fake).await;
    let conversation = fake.seed_conversation(&account.seeded).await;
    let mut inbox = Inbox::open(platform, fake, &account, None).await;
    let image = InboundContent::Image {
        bytes: TINY_PNG.to_vec(),
        mime: "image/png".into(),
        caption: Some("look".into()),
    };
    fake.push_inbound(&account.seeded, &conversation, image)
        .await;
    let events = inbox.receive().await;
    let found = messages(&events);
    let message = found
        .first()
        .unwrap_or_else(|| panic!("no message in {events:#?}"));
    assert_eq!(message.text, "look", "the caption is the text");
    let attachment = message.attachments.first().expect("an attachment");
    assert_eq!(attachment.kind, AttachmentKind::Image);

    let bytes = match platform
        .fetch_attachment(&account.context, &attachment.url)
        .await
    {
        Ok(media) => media.bytes,
        // Public media (no credentials needed) may be fetched directly instead.
        Err(Error::NotSupported { .. }) if attachment.url.starts_with("http") => {
            reqwest::get(&attachment.url)
                .await
                .and_then(reqwest::Response::error_for_status)
                .expect("the public attachment URL answers")
                .bytes()
                .await
                .expect("its body")
                .to_vec()
        }
        Err(err) => panic!("fetch_attachment({}) failed: {err:?}", attachment.url),
    };
    assert_eq!(bytes, TINY_PNG, "the original bytes come back");

    let result = platform
        .fetch_attachment(&account.context, "unknown-scheme:xyz")
        .await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput { .. } | Error::NotSupported { .. })
        ),
        "a URL the adapter did not produce is refused: {result:?}"
    );
}
