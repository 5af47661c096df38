"""Drives FakeBluesky with the `atproto` Python SDK (`Client(base_url=…)`), so the fake's
sessions, JWTs, chat proxy and log shapes are checked by the SDK Bluesky bots use.

Usage: bluesky_fidelity.py BASE_URL EXPECTED_JSON. Prints "bluesky fidelity: ok".
"""

import json
import sys

from atproto import Client, models
from atproto_client.exceptions import BadRequestError

base, expected = sys.argv[1], json.loads(sys.argv[2])


def check(condition, what):
    if not condition:
        raise SystemExit(f"bluesky fidelity: FAILED: {what}")


client = Client(base_url=base)
profile = client.login(expected["handle"], expected["app_password"])
check(profile.did == expected["did"], f"login: {profile}")
check(profile.display_name == expected["display_name"], f"profile: {profile}")

# Chat goes through the PDS with the proxy header the SDK adds.
dm = client.with_bsky_chat_proxy().chat.bsky.convo
log = dm.get_log(models.ChatBskyConvoGetLog.Params())
check(log.cursor, f"a cursor from getLog: {log}")
created = [entry for entry in log.logs if entry.py_type == "chat.bsky.convo.defs#logCreateMessage"]
check([entry.message.text for entry in created] == expected["texts"], f"log messages: {created}")
check(created[0].message.sender.did == expected["alice"], f"sender: {created[0].message}")
names = {p.did: p.display_name for p in created[0].related_profiles}
check(names.get(expected["alice"]) == "Alice", f"relatedProfiles: {created[0].related_profiles}")
later = dm.get_log(models.ChatBskyConvoGetLog.Params(cursor=log.cursor))
check(later.logs == [], f"nothing after the cursor: {later}")

convo = dm.get_convo_for_members(models.ChatBskyConvoGetConvoForMembers.Params(members=[expected["alice"]])).convo
check(convo.id == created[0].convo_id, f"the same convo: {convo.id}")
sent = dm.send_message(
    models.ChatBskyConvoSendMessage.Data(
        convo_id=convo.id, message=models.ChatBskyConvoDefs.MessageInput(text="hello from atproto")
    )
)
check(sent.text == "hello from atproto" and sent.sender.did == expected["did"], f"sent: {sent}")
echo = dm.get_log(models.ChatBskyConvoGetLog.Params(cursor=log.cursor))
check([entry.message.id for entry in echo.logs] == [sent.id], f"the echo in the log: {echo}")

try:
    dm.send_message(
        models.ChatBskyConvoSendMessage.Data(
            convo_id=convo.id, message=models.ChatBskyConvoDefs.MessageInput(text="a" * 1001)
        )
    )
    check(False, "1001 graphemes must be refused")
except BadRequestError as err:
    check(err.response.content.error == "InvalidRequest", f"error: {err.response.content}")

# The session refreshes with the refresh JWT (what the gateway persists); the SDK does this
# itself 15 minutes before the access JWT's `exp`, which it reads from the fake's JWT.
refreshed = client._refresh_and_set_session()
check(refreshed.did == expected["did"] and refreshed.access_jwt, f"refresh: {refreshed}")

# Without the proxy header the PDS has no chat service to route to.
try:
    client.chat.bsky.convo.get_log(models.ChatBskyConvoGetLog.Params())
    check(False, "chat without atproto-proxy must fail")
except BadRequestError as err:
    check("No service configured" in (err.response.content.message or ""), f"{err.response.content}")

print("bluesky fidelity: ok")
