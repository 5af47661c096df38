//! Attachments: images go out by URL; inbound images arrive as image attachments whose URL
//! `fetch_attachment` turns back into the original bytes.

use inbox_core::{AttachmentKind, Error, OutboundAttachment, Platform};

use super::{
    FakeControl, InboundContent, TINY_PNG,
    harness::{Inbox, connect, messages, not_applicable, text},
};

/// Whether the platform takes text with an attachment (a caption limit of 0 says it does not).
fn takes_captions(platform: &dyn Platform) -> bool {
    !platform
        .capabilities()
        .caption_limits
        .iter()
        .flatten()
        .any(|limit| limit.max == 0)
}

/// An image sent by URL reaches the platform as an image with its caption (without one where
/// the platform takes no captions).
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
    let caption = if takes_captions(platform) {
        "a picture"
    } else {
        ""
    };
    let mut message = text(caption);
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
    assert_eq!(record.text, caption);
}

/// An inbound image is an image attachment that downloads to the bytes the participant sent.
pub async fn inbound_images_download_through_fetch_attachment(
    platform: &dyn Platform,
    fake: &dyn FakeControl,
) {
    if !fake.inbound_media() {
        return not_applicable(
            platform,
            "inbound_images_download_through_fetch_attachment",
            "participants cannot send media",
        );
    }
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
        .iter()
        .find(|message| !message.attachments.is_empty())
        .unwrap_or_else(|| panic!("no message with an attachment in {events:#?}"));
    if takes_captions(platform) {
        assert_eq!(message.text, "look", "the caption is the text");
    } else {
        // The caption travels as a message of its own.
        assert!(
            found.iter().any(|message| message.text == "look"),
            "the caption arrives as text: {events:#?}"
        );
    }
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
