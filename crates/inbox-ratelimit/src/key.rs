//! Limiter keys. One helper builds every key, so that keys are namespaced (they can share a
//! Redis with other applications), predictable for operators (in Redis each bucket is a field
//! of the hash [`crate::BUCKETS`]: `redis-cli HSCAN inboxgw:rl:buckets 0 MATCH
//! 'inboxgw:rl:telegram:*'`), and unambiguous: each part is escaped so that an id containing
//! `:` can never make two different buckets share a key.
//!
//! | bucket | key |
//! |---|---|
//! | a budget per account | `inboxgw:rl:{platform}:{budget}:{account}` |
//! | per conversation or recipient of an account | `inboxgw:rl:{platform}:{budget}:{account}:{chat or recipient}` |
//! | per OAuth client (shared by its accounts) | `inboxgw:rl:{platform}:{budget}:app:{client id}` |
//! | an API key | `inboxgw:rl:api:{key id}` |
//!
//! Account, chat and recipient ids are the platform's own, because the platform counts by
//! them (a reconnected account keeps its platform id and so its budget).

use inbox_core::PlatformKind;

/// The namespace every key starts with.
pub const PREFIX: &str = "inboxgw:rl";

/// A key from its parts: `inboxgw:rl:{part}:{part}…`, each part escaped.
pub fn key(parts: &[&str]) -> String {
    let mut key =
        String::with_capacity(PREFIX.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    key.push_str(PREFIX);
    for part in parts {
        key.push(':');
        push_escaped(&mut key, part);
    }
    key
}

/// The key of a platform budget's bucket; `scope` are the ids the budget is counted per
/// (account; account and chat; `app` and the client id).
pub fn budget_key(platform: PlatformKind, budget: &str, scope: &[&str]) -> String {
    let mut parts = Vec::with_capacity(2 + scope.len());
    parts.push(platform.as_str());
    parts.push(budget);
    parts.extend_from_slice(scope);
    key(&parts)
}

/// The key of an API key's bucket, by the key's id (`key_…`), never by the secret.
pub fn api_key_key(key_id: &str) -> String {
    key(&["api", key_id])
}

/// Keeps `[A-Za-z0-9_.@+-]` as is and percent-encodes every other byte, so `:` (the
/// separator), `%`, spaces, braces (Redis Cluster hash tags) and control characters never
/// appear raw. An empty part becomes `%`, distinct from every escaped id.
fn push_escaped(out: &mut String, part: &str) {
    if part.is_empty() {
        out.push('%');
        return;
    }
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'@' | b'+' | b'-') {
            out.push(char::from(byte));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_platform_budget_and_scope() {
        assert_eq!(
            budget_key(
                PlatformKind::Telegram,
                "send_per_chat",
                &["123456", "-100987"]
            ),
            "inboxgw:rl:telegram:send_per_chat:123456:-100987"
        );
        assert_eq!(
            budget_key(PlatformKind::Reddit, "requests", &["app", "AbC_12-x"]),
            "inboxgw:rl:reddit:requests:app:AbC_12-x"
        );
        assert_eq!(api_key_key("key_01jd"), "inboxgw:rl:api:key_01jd");
    }

    #[test]
    fn separators_inside_ids_cannot_collide() {
        let a = key(&["x", "a:b", "c"]);
        let b = key(&["x", "a", "b:c"]);
        assert_ne!(a, b);
        assert_eq!(a, "inboxgw:rl:x:a%3Ab:c");
        assert_eq!(
            key(&["@chan name", "{tag}", "50%"]),
            "inboxgw:rl:@chan%20name:%7Btag%7D:50%25"
        );
        assert_ne!(key(&["", "a"]), key(&["a"]));
        assert_eq!(key(&["é"]), "inboxgw:rl:%C3%A9");
    }
}
