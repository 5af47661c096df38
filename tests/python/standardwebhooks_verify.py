#!/usr/bin/env python3
"""Checks signed webhooks against the official `standardwebhooks` Python package.

The gateway's Rust tests sign payloads with the gateway's own signer and pipe them here, so a
passing run shows that a customer using the official library verifies what the gateway sends.

Input (a file named as the first argument, or standard input) is JSON:

    {"cases": [{"name": "unicode", "secret": "whsec_...", "body": "{...}",
                "headers": {"webhook-id": "...", "webhook-timestamp": "...",
                            "webhook-signature": "v1,..."},
                "expect": "valid"}]}

`expect` is "valid" (the default) or "invalid" (a tampered case that must be rejected, which
shows the check is not vacuous). The body is the exact text that was signed.

Exit status: 0 when every case behaves as expected, 1 when one does not (each failure is
printed), 2 for unusable input, 3 when the `standardwebhooks` package is not installed.
"""

import json
import sys


def main() -> int:
    try:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    except ImportError as err:
        print(
            f"standardwebhooks is not installed ({err}); "
            "run: pip install -r tests/python/requirements.txt",
            file=sys.stderr,
        )
        return 3

    try:
        source = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
        with source:
            document = json.load(source)
        cases = document["cases"]
        if not isinstance(cases, list) or not cases:
            raise ValueError("`cases` must be a non-empty list")
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"unusable input: {err}", file=sys.stderr)
        return 2

    failures = []
    for index, case in enumerate(cases):
        name = case.get("name", f"case {index}")
        expect = case.get("expect", "valid")
        body = case["body"]
        try:
            parsed = Webhook(case["secret"]).verify(body, case["headers"])
            if expect != "valid":
                failures.append(f"{name}: verified, but it was expected to be rejected")
            elif parsed != json.loads(body):
                failures.append(f"{name}: verified, but the parsed body differs from the JSON sent")
        except WebhookVerificationError as err:
            if expect == "valid":
                failures.append(f"{name}: rejected by standardwebhooks: {err}")
        except Exception as err:  # a malformed header or secret is a failure too, not a crash
            failures.append(f"{name}: {type(err).__name__}: {err}")

    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(cases)} case(s) failed", file=sys.stderr)
        return 1
    print(f"{len(cases)} case(s) behaved as expected with standardwebhooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
