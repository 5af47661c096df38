"""Drives FakeX with X's official Python SDK (`xdk`), so the fake's answers are checked by the
SDK X publishes, not only by our adapter.

Usage: x_fidelity.py BASE_URL EXPECTED_JSON. Prints "x fidelity: ok" when every check passes.
"""

import json
import os
import sys
import urllib.parse

# requests-oauthlib refuses plain http:// unless told this is a test.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

import requests  # noqa: E402
from xdk import Client  # noqa: E402
from xdk.direct_messages.models import CreateByParticipantIdRequest  # noqa: E402

base, expected = sys.argv[1], json.loads(sys.argv[2])


def check(condition, what):
    if not condition:
        raise SystemExit(f"x fidelity: FAILED: {what}")


def get(value, name):
    """A field of an SDK model or of a plain dict (xdk returns both, by nesting level)."""
    return value[name] if isinstance(value, dict) else getattr(value, name)


# OAuth 2.0 with PKCE: the consent page redirects with a code; the SDK exchanges it (HTTP
# Basic, since it has the client secret) at base_url + /2/oauth2/token.
client = Client(
    base_url=base,
    client_id=expected["client_id"],
    client_secret=expected["client_secret"],
    redirect_uri="https://app.example/callback",
    scope=["dm.read", "dm.write", "tweet.read", "users.read", "offline.access"],
    authorization_base_url=base + "/i",
)
auth_url = client.get_authorization_url(state="state-1")
consent = requests.get(auth_url, allow_redirects=False, timeout=10)
check(consent.status_code == 302, f"the consent page redirects: {consent.status_code} {consent.text}")
callback = urllib.parse.urlparse(consent.headers["location"])
query = urllib.parse.parse_qs(callback.query)
check(query["state"] == ["state-1"], f"state comes back: {query}")
token = client.exchange_code(query["code"][0])
check(token["expires_in"] == 7200 and token["refresh_token"], f"token answer: {token}")

# Refresh tokens rotate: the SDK gets a new pair, and the old refresh token is dead.
old_refresh = token["refresh_token"]
renewed = client.refresh_token()
check(renewed["refresh_token"] != old_refresh, "the refresh token rotated")
reused = requests.post(
    base + "/2/oauth2/token",
    data={"grant_type": "refresh_token", "refresh_token": old_refresh},
    auth=(expected["client_id"], expected["client_secret"]),
    timeout=10,
)
check(reused.status_code == 400, f"a spent refresh token is refused: {reused.status_code}")
check(reused.json()["error"] == "invalid_request", f"X's error body: {reused.text}")

user = Client(base_url=base, access_token=renewed["access_token"])
me = user.users.get_me(user_fields=["name", "username"])
check(get(me.data, "id") == expected["account_id"], f"get_me: {me}")
check(get(me.data, "username") == expected["account_username"], f"get_me: {me}")

alice = user.users.get_by_username("alice")
check(get(alice.data, "id") == expected["alice_id"], f"get_by_username: {alice}")

# DM events: newest first, with the fields and expansions asked for; the SDK follows
# `meta.next_token` page by page until X sends none.
pages = list(
    user.direct_messages.get_events(
        max_results=2,
        dm_event_fields=["id", "text", "created_at", "dm_conversation_id", "event_type"],
        expansions=["sender_id", "participant_ids"],
        user_fields=["name", "username"],
    )
)
check(len(pages) == 2, f"two pages of two and one: {pages}")
page, rest = pages
events = page.data
check(len(events) == 2, f"two events on the first page: {page}")
check(get(events[0], "text") == expected["texts"][-1], f"newest first: {events}")
check(
    get(events[0], "dm_conversation_id") == expected["conversation_id"],
    f"conversation id: {events[0]}",
)
check(get(page.meta, "next_token"), f"a next_token: {page.meta}")
users = {get(u, "id"): u for u in get(page.includes, "users")}
check(get(users[expected["alice_id"]], "name") == "Alice", f"includes.users: {page.includes}")
check(
    [get(e, "text") for e in rest.data] == list(reversed(expected["texts"][:-2])),
    f"second page: {rest}",
)

sent = user.direct_messages.create_by_participant_id(
    expected["alice_id"], CreateByParticipantIdRequest(text="hello from xdk")
)
check(get(sent.data, "dm_conversation_id") == expected["conversation_id"], f"send: {sent}")
check(get(sent.data, "dm_event_id").isdigit(), f"send: {sent}")

# Throttling comes back as 429 with X's headers.
try:
    list(user.direct_messages.get_events(max_results=1))
    check(False, "the third lookup in the window was not refused")
except requests.HTTPError as err:
    check(err.response.status_code == 429, f"429: {err}")
    check(err.response.headers["x-rate-limit-remaining"] == "0", f"headers: {err.response.headers}")

print("x fidelity: ok")
