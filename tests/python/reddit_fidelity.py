"""Drives FakeReddit with PRAW (`praw.Reddit(oauth_url=…, reddit_url=…)`), so the fake's token
endpoint, listings, write answers, errors and rate-limit headers are checked by the SDK most
Reddit bots use.

Usage: reddit_fidelity.py BASE_URL EXPECTED_JSON. Prints "reddit fidelity: ok".
"""

import json
import sys

import praw
from praw.exceptions import RedditAPIException

base, expected = sys.argv[1], json.loads(sys.argv[2])


def check(condition, what):
    if not condition:
        raise SystemExit(f"reddit fidelity: FAILED: {what}")


reddit = praw.Reddit(
    client_id=expected["client_id"],
    client_secret=expected["client_secret"],
    refresh_token=expected["refresh_token"],
    user_agent=expected["user_agent"],
    oauth_url=base,
    reddit_url=base,
    check_for_updates=False,
)
me = reddit.user.me()
check(me.name == expected["username"], f"me: {me}")

# The inbox, newest first, without marking anything read (PRAW sends mark=false).
unread = list(reddit.inbox.unread(limit=None))
check([m.body for m in unread] == expected["unread_bodies"], f"unread: {[m.body for m in unread]}")
messages = [item for item in reddit.inbox.all(limit=None) if isinstance(item, praw.models.Message)]
check(len(messages) == 2, f"the inbox's private messages (the comment reply is a Comment): {messages}")
root = messages[-1]
check(root.author.name == expected["alice"], f"author: {root.author}")
check(root.first_message_name is None, f"the root starts its thread: {root.first_message_name}")
reply_in_thread = messages[0]
check(reply_in_thread.first_message_name == root.fullname, "replies name their thread root")

# Replying to a message answers the new message (a t4 in json.data.things).
answer = root.reply("answer from praw")
check(answer.fullname.startswith("t4_"), f"reply: {answer}")
check(answer.body == "answer from praw", f"reply body: {answer.body}")

# Composing a new thread answers no id; errors come back as RedditAPIException.
reddit.redditor(expected["alice"]).message(subject="Hello", message="a new thread")
try:
    reddit.redditor("nobody_here").message(subject="Hello", message="x")
    check(False, "messaging a missing user must fail")
except RedditAPIException as err:
    check(err.items[0].error_type == "USER_DOESNT_EXIST", f"error: {err.items}")
try:
    root.reply("x" * 10001)
    check(False, "a reply over 10,000 characters must fail")
except RedditAPIException as err:
    check(err.items[0].error_type == "TOO_LONG", f"error: {err.items}")

# Marking read is explicit.
root.mark_read()
print("reddit fidelity: ok")
