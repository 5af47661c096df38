#!/usr/bin/env python3
"""Fidelity check of the fake Telegram Bot API against the official-style SDK.

python-telegram-bot (PTB) is pointed at a running FakeTelegram
(inbox_testkit::fakes::telegram) and must parse every answer into its own
objects with the expected fields: getMe, getUpdates (text and photo), getFile
plus the file download, sendMessage with a reply, and the error envelopes
(429 RetryAfter, 400 BadRequest, 403 Forbidden, 409 Conflict). PTB posts
application/x-www-form-urlencoded bodies, which the fake must accept.

Usage: telegram_fidelity.py BASE_URL BOT_TOKEN EXPECTED_JSON
Prints "telegram fidelity: ok" and exits 0, or prints what differed and exits 1.
The Rust test crates/inbox-testkit/tests/telegram_fidelity.rs seeds the fake
and runs this script.
"""

import asyncio
import json
import sys

try:
    from telegram import Bot, ReplyParameters
    from telegram.error import BadRequest, Conflict, Forbidden, RetryAfter
except ImportError as err:  # pragma: no cover - environment problem, reported clearly
    print(f"telegram fidelity: FAILED: python-telegram-bot is not installed ({err}); "
          "pip install -r tests/python/requirements.txt", flush=True)
    sys.exit(1)


class Mismatch(Exception):
    """An answer of the fake that PTB read differently than expected."""


def check(condition, what):
    if not condition:
        raise Mismatch(what)


def seconds(value):
    # PTB 22 reports retry_after as int or timedelta depending on its settings.
    return value.total_seconds() if hasattr(value, "total_seconds") else value


async def run(base, token, expected):
    bot = Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")
    async with bot:  # initialize() calls getMe
        me = await bot.get_me()
        check(me.id == expected["bot_id"], f"getMe id {me.id}")
        check(me.is_bot, "getMe is_bot")
        check(me.first_name == expected["bot_first_name"], f"getMe first_name {me.first_name!r}")
        check(me.username == expected["bot_username"], f"getMe username {me.username!r}")

        updates = await bot.get_updates(timeout=0)
        check(len(updates) == 2, f"getUpdates returned {len(updates)} updates")
        text = updates[0].message
        check(text is not None, "the first update has a message")
        check(text.text == expected["text"], f"message text {text.text!r}")
        check(text.from_user.id == expected["user_id"], f"from.id {text.from_user.id}")
        check(text.from_user.full_name == expected["user_full_name"],
              f"from full_name {text.from_user.full_name!r}")
        check(text.from_user.username == expected["user_username"], "from.username")
        check(text.chat.id == expected["user_id"] and text.chat.type == "private", "private chat")
        check(int(text.date.timestamp()) == expected["date"], f"date {text.date}")

        photo = updates[1].message
        check(photo.caption == expected["caption"], f"caption {photo.caption!r}")
        check(len(photo.photo) == 3, f"{len(photo.photo)} photo sizes")
        check(photo.photo[0].width < photo.photo[-1].width, "photo sizes smallest first")
        file = await bot.get_file(photo.photo[-1].file_id)
        data = await file.download_as_bytearray()
        check(bytes(data) == expected["photo_bytes"].encode(), "downloaded photo bytes")

        confirmed = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
        check(confirmed == (), f"offset confirms updates, got {confirmed}")

        try:
            await bot.send_message(chat_id=expected["user_id"], text="too fast")
            raise Mismatch("the injected 429 was not raised")
        except RetryAfter as err:
            check(seconds(err.retry_after) == expected["retry_after"], f"retry_after {err.retry_after}")

        sent = await bot.send_message(
            chat_id=expected["user_id"],
            text=expected["reply_text"],
            reply_parameters=ReplyParameters(message_id=text.message_id),
        )
        check(sent.text == expected["reply_text"], f"sent text {sent.text!r}")
        check(sent.from_user.id == expected["bot_id"] and sent.from_user.is_bot, "sent from the bot")
        check(sent.chat.id == expected["user_id"], "sent chat id")
        check(sent.reply_to_message is not None
              and sent.reply_to_message.message_id == text.message_id, "reply_to_message")
        check(sent.message_id > text.message_id, "message ids increase per chat")

        try:
            await bot.send_message(chat_id=expected["unknown_chat_id"], text="x")
            raise Mismatch("sending to an unknown chat succeeded")
        except BadRequest as err:
            check("chat not found" in err.message.lower(), f"BadRequest message {err.message!r}")
        try:
            await bot.send_message(chat_id=expected["blocked_user_id"], text="x")
            raise Mismatch("sending to a user who blocked the bot succeeded")
        except Forbidden as err:
            check("blocked" in err.message, f"Forbidden message {err.message!r}")

        hook = f"{base}/nowhere"
        check(await bot.set_webhook(url=hook, secret_token="fidelity_secret",
                                    allowed_updates=["message"]), "setWebhook")
        info = await bot.get_webhook_info()
        check(info.url == hook, f"webhook url {info.url!r}")
        check(tuple(info.allowed_updates) == ("message",), f"allowed_updates {info.allowed_updates}")
        try:
            await bot.get_updates(timeout=0)
            raise Mismatch("getUpdates worked while a webhook was set")
        except Conflict:
            pass
        check(await bot.delete_webhook(), "deleteWebhook")
    return {"bot": me.username, "updates": len(updates), "sent_message_id": sent.message_id}


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    base, token, expected = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        summary = asyncio.run(run(base, token, expected))
    except Mismatch as err:
        print(f"telegram fidelity: FAILED: {err}", flush=True)
        return 1
    except Exception as err:  # an SDK parse error is a fidelity failure too
        print(f"telegram fidelity: FAILED: {type(err).__name__}: {err}", flush=True)
        return 1
    print(f"telegram fidelity: ok {json.dumps(summary)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
