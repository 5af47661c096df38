#!/usr/bin/env python3
"""Fidelity check of the fake Graph API (WhatsApp Cloud API) against pywa.

pywa, the most complete Python WhatsApp SDK, is pointed at a running FakeGraph
(inbox_testkit::fakes::graph). pywa has no base-URL option: it pins
https://graph.facebook.com/v{version} on its httpx session, so the script sets
`wa.api._session.base_url` after construction, the way pywa itself sets it
(shared/reference/platforms-meta.md, D1). pywa must then:

* send a text, an image by link, and a template, and read the fake's answers
  (`messages[].id`);
* mark a message read;
* resolve a media id to its URL and download the bytes with the same token;
* raise its own error classes for the fake's error envelopes (131026
  MessageUndeliverable, 190 ExpiredAccessToken);
* accept the fake's signed webhook deliveries with its signature validator
  (and reject a tampered one), and parse them into a Message and a failed
  MessageStatus with its error code.

Usage: whatsapp_fidelity.py BASE_URL CONFIG_JSON_FILE
Prints "whatsapp fidelity: ok" and exits 0, or prints what differed and exits 1.
The Rust test crates/inbox-testkit/tests/whatsapp_fidelity.rs seeds the fake
and runs this script.
"""

import json
import sys

try:
    from pywa import WhatsApp
    from pywa.errors import ExpiredAccessToken, MessageUndeliverable
    from pywa.types import Message, MessageStatus
    from pywa.types.message_status import MessageStatusType
except ImportError as err:  # pragma: no cover - environment problem, reported clearly
    print(f"whatsapp fidelity: FAILED: pywa is not installed ({err}); "
          "pip install -r tests/python/requirements.txt", flush=True)
    sys.exit(1)


class Mismatch(Exception):
    """An answer of the fake that pywa read differently than expected."""


def check(condition, what):
    if not condition:
        raise Mismatch(what)


def client(base, config, token):
    wa = WhatsApp(
        phone_id=config["phone_id"],
        token=token,
        app_secret=config["app_secret"],
        verify_token=config["verify_token"],
        validate_updates=True,
    )
    # pywa has no base-URL argument; it sets this attribute itself in GraphAPI.__init__.
    wa.api._session.base_url = f"{base}/{config['version']}"
    return wa


def run(base, config):
    wa = client(base, config, config["token"])
    contact = config["contact"]

    sent = wa.send_message(to=contact, text="hello from pywa")
    check(sent.id.startswith("wamid."), f"send_message id {sent.id!r}")

    image = wa.send_image(to=contact, image="https://cdn.example.com/fidelity.png", caption="look")
    check(image.id.startswith("wamid.") and image.id != sent.id, f"send_image id {image.id!r}")

    template = wa.api.send_message(
        sender=config["phone_id"], to=contact, recipient=None, recipient_type="individual",
        typ="template", msg={"name": "hello_world", "language": {"code": "en_US"}},
    )
    check(template["messages"][0]["id"].startswith("wamid."), f"template answer {template}")

    read = wa.mark_message_as_read(message_id=config["inbound_id"])
    check(bool(read), f"mark_message_as_read answered {read!r}")

    media = wa.get_media_url(config["media_id"])
    check(media.mime_type == "image/jpeg", f"media mime {media.mime_type!r}")
    data = wa.get_media_bytes(url=media.url)
    check(data == config["media_bytes"].encode(), f"media bytes {data!r}")

    try:
        wa.send_message(to=config["blocked"], text="anyone?")
        raise Mismatch("a blocked contact was sent to")
    except MessageUndeliverable as err:
        check(err.code == 131026, f"undeliverable code {err.code}")

    revoked = client(base, config, "EAAGrevoked")
    try:
        revoked.send_message(to=contact, text="with a bad token")
        raise Mismatch("a bad token was accepted")
    except ExpiredAccessToken as err:
        check(err.code == 190, f"token error code {err.code}")

    got = {"messages": [], "statuses": []}

    @wa.on_message()
    def on_message(_client, message: Message):
        got["messages"].append(message)

    @wa.on_message_status()
    def on_status(_client, status: MessageStatus):
        got["statuses"].append(status)

    for delivery in config["deliveries"]:
        body = delivery["body"].encode()
        check(wa.webhook_update_validator(body, delivery["signature"]) is None,
              "pywa rejected the fake's signature")
        tampered = wa.webhook_update_validator(body + b" ", delivery["signature"])
        check(tampered is not None and tampered[1] in (401, 403), f"tampered body: {tampered!r}")
        answer = wa.webhook_update_handler(body)
        check(answer == ("ok", 200), f"webhook_update_handler answered {answer!r}")

    check(len(got["messages"]) == 1, f"{len(got['messages'])} messages parsed")
    message = got["messages"][0]
    check(message.id == config["inbound_id"], f"message id {message.id!r}")
    check(message.text == config["inbound_text"], f"message text {message.text!r}")
    check(message.from_user.wa_id == contact, f"from wa_id {message.from_user.wa_id!r}")
    check(message.from_user.name == config["contact_name"], f"from name {message.from_user.name!r}")
    check(len(got["statuses"]) == 1, f"{len(got['statuses'])} statuses parsed")
    status = got["statuses"][0]
    check(status.status == MessageStatusType.FAILED, f"status {status.status!r}")
    check(status.id == config["failed_id"], f"status id {status.id!r}")
    check(status.error is not None and status.error.code == 131047, f"status error {status.error!r}")


def main():
    base, config_path = sys.argv[1], sys.argv[2]
    with open(config_path, encoding="utf-8") as file:
        config = json.load(file)
    try:
        run(base, config)
    except Mismatch as err:
        print(f"whatsapp fidelity: FAILED: {err}", flush=True)
        sys.exit(1)
    print("whatsapp fidelity: ok", flush=True)


if __name__ == "__main__":
    main()
